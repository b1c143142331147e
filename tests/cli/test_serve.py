"""`rooftop serve` as a process: bad input exits 2 naming what to fix; TLS+auth demo scrape."""

from __future__ import annotations

import base64
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from rooftop.exporter.cli import build_parser, main
from tests.cli.test_demo import clean_env, free_port
from tests.conftest import REPO_ROOT, make_self_signed


def rooftop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rooftop.exporter", *args],
        cwd=REPO_ROOT,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().out


def test_serve_help_lists_its_flags() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    serve_help = subparsers.choices["serve"].format_help()  # type: ignore[attr-defined]
    for flag in ("--web.listen-address", "--config", "--engine", "--interval", "--demo"):
        assert flag in serve_help


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--interval", "0"), "interval_seconds:"),
        (("--engine", "gopher://x/metrics"), "engines.0.url:"),
        (("--web.listen-address", "localhost"), "listen_address:"),
        (("--demo", "--demo-gpus", "0"), "demo_gpus:"),
        (("--gpu-model", "h100-xyz"), "gpu_model:"),
        (("--dcgm-url", "dcgm:9400"), "dcgm_url:"),
    ],
)
def test_bad_flag_values_exit_2_naming_the_field(args: tuple[str, ...], expected: str) -> None:
    result = rooftop("serve", *args)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_exits_2() -> None:
    result = rooftop("serve", env=clean_env(ROOFTOP_INTERVAL_SECONDS="soon"))
    assert result.returncode == 2 and "interval_seconds:" in result.stderr


def test_bad_web_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    result = rooftop("serve", "--demo", "--web.config.file", str(config))
    assert result.returncode == 2
    assert "basic_auth_users.prometheus is not a bcrypt hash" in result.stderr


def test_missing_tls_files_exit_2_at_start(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n")
    result = rooftop("serve", "--demo", "--web.config.file", str(config))
    assert result.returncode == 2 and "cannot load TLS files" in result.stderr


def test_port_in_use_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = rooftop("serve", "--demo", "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.timeout(60)
def test_demo_over_tls_with_basic_auth(tmp_path: Path) -> None:
    cert, key = make_self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key.name}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rooftop.exporter",
            "serve",
            "--demo",
            "--interval",
            "0.25",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--web.config.file",
            str(config),
        ],
        cwd=REPO_ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        context = ssl.create_default_context(cafile=str(cert))
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}/metrics",
            headers={"Authorization": "Basic " + base64.b64encode(b"prometheus:pw").decode()},
        )
        body = ""
        deadline = time.monotonic() + 20
        while "rooftop_gpu_up" not in body and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:
                    body = response.read().decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        assert 'rooftop_build_info{demo="true"' in body
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=context, timeout=5)
        assert denied.value.code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert process.stderr is not None and "https://" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_malloc_arena_cap_is_harmless() -> None:
    """glibc takes it (True); another C library leaves it (False); neither raises."""
    from rooftop.exporter.memory import limit_malloc_arenas

    assert limit_malloc_arenas() in (True, False)
