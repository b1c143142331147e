"""Golden recordings: every recording under tests/fixtures/recordings replays to the
exposition committed beside it, and every cycle reproduces what the recording rooftop published.

Regenerate the ``.prom`` files with ``ROOFTOP_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.recording.format import read_recording
from rooftop.exporter.recording.session import ReplaySession, normalized_exposition
from tests.conftest import FIXTURES

RECORDINGS = sorted((FIXTURES / "recordings").glob("*.jsonl.gz"))


def test_there_are_recordings() -> None:
    assert RECORDINGS, "tests/fixtures/recordings holds no recording"


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_recording_replays_to_its_golden_exposition(path: Path) -> None:
    recording = read_recording(path)
    assert recording.complete
    session = ReplaySession(recording)
    summary = session.run(0.0)
    session.close()
    assert summary.cycles == len(recording.cycles) > 0
    # Verdicts must match what the recording rooftop published; the exposition is compared
    # with the .prom golden instead (it grows when rooftop adds a metric: regenerate it).
    assert summary.verdicts_reproduced, summary.differences[:5]
    assert session.last is not None
    text = normalized_exposition(render_snapshot(session.last).decode())
    golden = path.with_name(path.name.removesuffix(".jsonl.gz") + ".prom")
    if os.environ.get("ROOFTOP_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), (
        f"{golden.name} differs; if intended, regenerate with ROOFTOP_UPDATE_GOLDEN=1"
    )


def test_dry_run_recording_shows_every_phase_verdict() -> None:
    """The dry-run recording's verdict timeline holds each phase's verdict in phase order."""
    path = FIXTURES / "recordings" / "nvidia-h200-fake-dryrun.jsonl.gz"
    session = ReplaySession(read_recording(path))
    summary = session.run(0.0)
    session.close()
    timeline = next(v for k, v in summary.verdicts.items() if "engine=validate-llama" in k)
    runs: list[str] = []
    for state in timeline:
        if state is not None and (not runs or runs[-1] != state):
            runs.append(state)
    # copy, matmul, tiny, idle, decode (b1 and b64 are both memory-bound)
    assert runs[-5:] == ["memory", "compute", "latency", "idle", "memory"]
    header = session.recording.header
    assert header["nvml"]["gpus"][0]["name"] == "NVIDIA H200"
    assert header["nvml"]["driver_version"] == "fake"


def _rooftop_lines(text: str) -> list[str]:
    """The ``rooftop_*`` families of an exposition (HELP, TYPE, samples), timestamps aside."""
    out = []
    for line in normalized_exposition(text).splitlines():
        name = line.split(" ", 3)[2] if line.startswith("#") else line.split("{", 1)[0]
        if name.startswith("rooftop_") and not name.startswith("rooftop_snapshot_age"):
            out.append(line)
    return out


def test_serve_replay_serves_the_golden_exposition() -> None:
    """``rooftop serve --replay`` as a process: once the replay has reached its end, /metrics
    carries exactly the golden exposition's rooftop series (timestamps aside)."""
    path = FIXTURES / "recordings" / "nvidia-h200-fake-dryrun.jsonl.gz"
    golden = _rooftop_lines(path.with_name("nvidia-h200-fake-dryrun.prom").read_text())
    assert len(golden) > 50
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rooftop.exporter",
            "serve",
            "--replay",
            str(path),
            "--replay-speed",
            "0",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and served != golden:
            time.sleep(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    served = _rooftop_lines(r.read().decode())
            except OSError:
                continue
    finally:
        process.terminate()
        process.wait(10)
    assert served == golden
