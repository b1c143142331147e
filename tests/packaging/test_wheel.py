"""The built wheel: one namespace in site-packages, and ``pip install rooftop`` without extras
runs ``rooftop serve`` (the demo answers ``/metrics``) while the extras' commands say what to
install.

A real wheel is built from this checkout (``pip wheel``) and installed into a fresh virtual
environment with pip's own resolver, so the runtime dependencies in ``pyproject.toml`` are
exactly what the daemon gets; nothing from the test environment leaks in.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

GENERIC_NAMES = ("exporter", "classifiers", "dashboards")


def _pip(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = _pip("wheel", "--no-deps", "--wheel-dir", str(out), str(REPO_ROOT))
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("rooftop-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv (no pip of its own) with the wheel installed, no extras."""
    root = tmp_path_factory.mktemp("venv") / "env"
    venv.create(root, with_pip=False, symlinks=True)
    python = root / "bin" / "python"
    done = _pip("--python", str(python), "install", "--no-compile", str(wheel))
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_wheel_holds_only_the_rooftop_namespace(wheel: Path) -> None:
    version = metadata.version("rooftop")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
        names = archive.namelist()
    assert tops == {"rooftop", f"rooftop-{version}.dist-info"}, tops
    # The packages are all there, under their namespaced names, data files included.
    for expected in (
        "rooftop/exporter/cli.py",
        "rooftop/classifiers/verdict.py",
        "rooftop/dashboards/rooftop-overview.json",
        "rooftop/dashboards/rules/rooftop.rules.yaml",
    ):
        assert expected in names, expected
    assert not [n for n in names if n.startswith("rooftop/__init__")], "rooftop is a namespace"
    # Every package of the checkout is in the wheel (pyproject.toml lists them one by one).
    for folder in GENERIC_NAMES:
        for init in sorted((REPO_ROOT / folder).rglob("__init__.py")):
            relative = init.relative_to(REPO_ROOT).as_posix()
            assert f"rooftop/{relative}" in names, f"{relative}: add its package to pyproject.toml"


def test_fresh_install_has_no_generic_names_and_no_extras(fresh_venv: Path) -> None:
    (site,) = (fresh_venv / "lib").glob("python3*/site-packages")
    present = {path.name for path in site.iterdir()}
    assert not present & set(GENERIC_NAMES), present & set(GENERIC_NAMES)
    for module in ("rich", "grafana_foundation_sdk", "grpc"):
        found = subprocess.run(
            [str(fresh_venv / "bin" / "python"), "-c", f"import {module}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert found.returncode != 0, f"{module} was installed without its extra"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def demo_node(fresh_venv: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOFTOP_", "PYTHON"))}
    process = subprocess.Popen(
        [
            str(fresh_venv / "bin" / "rooftop"),
            "serve",
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        cwd=fresh_venv,  # not the checkout: only the installed package can be imported
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def test_rooftop_serve_without_extras_answers_metrics(demo_node: str) -> None:
    deadline = time.monotonic() + 60
    body = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(demo_node, timeout=5) as response:
                body = response.read().decode()
                if response.status == 200 and "rooftop_gpu_bound" in body:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    (build_info,) = [line for line in body.splitlines() if line.startswith("rooftop_build_info{")]
    assert f'version="{metadata.version("rooftop")}"' in build_info and 'demo="true"' in build_info
    assert "\nrooftop_gpu_bound{" in body, body[:2000]


@pytest.mark.parametrize(
    ("argv", "extra"),
    [(["top", "--url", "http://127.0.0.1:9/metrics"], "top"), (["dashboards"], "dashboards")],
)
def test_extra_commands_name_their_extra(fresh_venv: Path, argv: list[str], extra: str) -> None:
    done = subprocess.run(
        [str(fresh_venv / "bin" / "rooftop"), *argv],
        cwd=fresh_venv,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"pip install 'rooftop[{extra}]'" in done.stderr and "Traceback" not in done.stderr
