"""Shared test helpers.

Tests that need a real part (promtool, a Prometheus server, kubectl, the llama.cpp server) call
:func:`require_real_part`: it skips with the reason on a developer machine that lacks the part,
and fails instead when ``ROOFTOP_REQUIRE_REAL_PARTS=1`` (set by ``scripts/test.sh`` in its full
run, and so in CI), so a missing install step can never turn into a silent skip there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 and localhost, made by the openssl CLI."""
    openssl = shutil.which("openssl")
    require_real_part(openssl is not None, "the openssl CLI is needed to make a test certificate")
    assert openssl is not None
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key
