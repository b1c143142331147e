"""The GPU validation script's dry run: the whole orchestration (rooftop serve and record as
processes, phases, scrapes, checks, replay, report) against the scripted fake NVML backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_dry_run_passes_and_writes_report_and_recording(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "validate_gpu.py"),
            "--dry-run",
            "--work-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "nvidia-h200-fake-dryrun.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    phases = [row.split("|")[1].strip() for row in rows[1:]]
    assert phases == ["copy", "matmul", "tiny", "idle", "decode-b1", "decode-b64"]
    assert all(row.rstrip().endswith("| yes |") for row in rows[1:]), report
    assert "reproduced = True" in report and "Result: PASS" in report
    assert (tmp_path / "nvidia-h200-fake-dryrun.jsonl.gz").stat().st_size < 200_000
    assert (tmp_path / "nvidia-h200-fake-dryrun.prom").read_text().startswith("# HELP")
    # Nothing was written into the checkout by a dry run.
    assert not (REPO_ROOT / "docs" / "validation" / "nvidia-h200-fake-dryrun.md").exists()
