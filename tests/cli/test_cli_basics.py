"""The top-level ``rooftop`` command."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from rooftop.exporter.cli import main


def test_version_flag_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"rooftop {version('rooftop')}"


def test_version_flag_as_a_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rooftop ") and result.stdout.split()[1][0].isdigit()
