"""Shared test helpers.

Tests that need a real part (promtool, a Prometheus server, kubectl, the llama.cpp server) call
:func:`require_real_part`: it skips with the reason on a developer machine that lacks the part,
and fails instead when ``ROOFTOP_REQUIRE_REAL_PARTS=1`` (set by ``scripts/test.sh`` in its full
run, and so in CI), so a missing install step can never turn into a silent skip there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def require_real_part(available: bool, reason: str) -> None:
    if available:
        return
    if os.environ.get("ROOFTOP_REQUIRE_REAL_PARTS") == "1":
        pytest.fail(f"real part missing in a full run: {reason}")
    pytest.skip(reason)
