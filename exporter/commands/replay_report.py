"""``rooftop probe --replay FILE``: what a recording holds and what rooftop makes of it.

Prints the header (who recorded it, the driver and GPUs, the engines), replays every cycle as
fast as possible through the real pipeline, and prints each target's verdict timeline as runs
(``idle x12, memory x40``) and whether every cycle's verdicts and exposition (timestamps aside)
match what the recording rooftop published. ``--json`` prints the same as one object.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, TextIO

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.recording.format import RecordingError, read_recording, rooftop_version
from rooftop.exporter.recording.session import ReplaySession, ReplaySummary
from rooftop.exporter.settings import ConfigError


def runs(states: list[str | None]) -> list[tuple[str, int]]:
    """Consecutive equal states as ``(state, count)``; no verdict shows as ``none``."""
    out: list[tuple[str, int]] = []
    for state in states:
        name = state or "none"
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + 1)
        else:
            out.append((name, 1))
    return out


def report(header: dict[str, Any], summary: ReplaySummary) -> dict[str, Any]:
    nvml = header.get("nvml") or {}
    settings = header.get("settings") or {}
    return {
        "recorded_by": header.get("rooftop_version"),
        "replayed_by": rooftop_version(),
        "format": header.get("format"),
        "driver_version": nvml.get("driver_version"),
        "gpus": [
            {"index": g.get("index"), "name": g.get("name"), "uuid": g.get("uuid")}
            for g in nvml.get("gpus", [])
        ],
        "engines": [e.get("url") for e in settings.get("engines", [])],
        "cycles": summary.cycles,
        "verdicts": {key: runs(states) for key, states in summary.verdicts.items()},
        "reproduced": summary.reproduced,
        "verdicts_reproduced": summary.verdicts_reproduced,
        "differences": [{"cycle": d.cycle, "what": d.what} for d in summary.differences],
    }


def render(data: dict[str, Any]) -> str:
    lines = [
        f"recording:  format {data['format']}, rooftop {data['recorded_by']} "
        f"(replayed by {data['replayed_by']}), {data['cycles']} cycles",
        f"driver:     {data['driver_version'] or 'not recorded (no NVML)'}",
    ]
    for gpu in data["gpus"]:
        lines.append(f"gpu {gpu['index']}:      {gpu['name']} {gpu['uuid']}")
    for url in data["engines"]:
        lines.append(f"engine:     {url}")
    for key, timeline in data["verdicts"].items():
        shown = ", ".join(f"{state} x{count}" for state, count in timeline)
        lines.append(f"verdicts:   {key}\n            {shown}")
    if data["reproduced"]:
        lines.append("reproduced: yes, every cycle's verdicts and exposition match the recording")
    elif data["verdicts_reproduced"]:
        lines.append(
            "reproduced: verdicts yes; the exposition differs (this rooftop publishes other "
            f"series than rooftop {data['recorded_by']} did), {len(data['differences'])} cycles"
        )
    else:
        lines.append(f"reproduced: no, {len(data['differences'])} difference(s):")
        lines.extend(f"  cycle {d['cycle']}: {d['what']}" for d in data["differences"][:20])
    return "\n".join(lines) + "\n"


def run_replay(
    path: Path, out: TextIO, err: TextIO, *, json_output: bool = False, exposition: bool = False
) -> int:
    # The replayed pipeline's warnings are the recording's, not this run's: quiet them for the
    # replay only, and give the level back (an in-process caller keeps its own logging).
    logger = logging.getLogger("rooftop")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return _replay(path, out, err, json_output=json_output, exposition=exposition)
    finally:
        logger.setLevel(previous)


def _replay(path: Path, out: TextIO, err: TextIO, *, json_output: bool, exposition: bool) -> int:
    try:
        recording = read_recording(path)
        session = ReplaySession(recording)
    except (RecordingError, ConfigError) as error:
        err.write(f"rooftop probe: {error}\n")
        return 2
    try:
        summary = session.run(0.0)
    finally:
        session.close()
    data = report(recording.header, summary)
    if json_output:
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        out.write(render(data))
    if exposition and session.last is not None:
        out.write(render_snapshot(session.last).decode())
    return 0 if summary.verdicts_reproduced else 1


__all__ = ["render", "report", "run_replay", "runs"]
