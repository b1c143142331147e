"""Golden recordings: every recording under tests/fixtures/recordings replays to the
exposition committed beside it, and every cycle reproduces what the recording rooftop published.

Regenerate the ``.prom`` files with ``ROOFTOP_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
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
    assert summary.reproduced, summary.differences[:5]
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
