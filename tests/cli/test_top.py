"""`rooftop top`: the pure exposition-to-rows parser, cell text, and the command against a real
exporter server on loopback."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from rich.console import Console

from rooftop.exporter.cli import main
from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.commands.top import metrics_url, render_table
from rooftop.exporter.server import ExporterHTTPServer
from rooftop.exporter.top import (
    NotRooftopError,
    TopRow,
    format_intensity,
    format_rate,
    format_ratio,
    node_totals,
    parse_top,
    reason_text,
    sort_rows,
    sparkline,
    verdict_text,
)
from rooftop.exporter.webconfig import load_web_config
from tests.conftest import FIXTURES, REPO_ROOT
from tests.serving.test_collector import DOWN_URL, MODEL, UUID_0, UUID_1, golden_snapshot
from tests.serving.test_server import start_server


def golden_text(demo: bool = False) -> str:
    snapshot = dataclasses.replace(golden_snapshot(), demo=demo)
    cache = ExpositionCache(lambda: snapshot, lambda: snapshot.unix_seconds + 0.5)
    return cache.body().decode()


def test_rows_from_the_golden_exposition() -> None:
    view = parse_top(golden_text())
    assert view.version == "0.1.0" and not view.demo
    assert view.snapshot_age_seconds == 0.5
    assert view.sources_down == (DOWN_URL,)
    first, second = view.rows
    assert (first.gpu, first.uuid, first.engine, first.model) == ("0", UUID_0, "vllm-0", MODEL)
    assert first.gpu_up is True
    assert (first.state, first.evidence) == ("memory", "gpm")
    assert first.decode_tokens_per_second == 150.0
    assert first.prefill_tokens_per_second == 0.0
    assert first.batch == 1.0
    # 150 tok/s over SOL 3.35e12 / 15,148,935,680 = 221.14 tok/s.
    assert first.decode_speed_of_light_ratio == pytest.approx(0.67831, rel=1e-4)
    assert first.decode_arithmetic_intensity == pytest.approx(1.02622, rel=1e-4)
    assert first.ridge_point_flops_per_byte == pytest.approx(295.343, rel=1e-5)
    # The lost GPU (its engine down too) has no target series, yet it has a row.
    assert (second.gpu, second.uuid, second.engine) == ("1", UUID_1, "")
    assert second.gpu_up is False and second.state is None
    assert verdict_text(second) == "GPU down"


def test_demo_is_marked() -> None:
    assert parse_top(golden_text(demo=True)).demo


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ((FIXTURES / "engines" / "vllm-v1-dynamo-metrics-examples.prom").read_text(), "vllm"),
        ("# TYPE node_load1 gauge\nnode_load1 0.5\ngo_goroutines 8\n", "go, node"),
        ("<html><body>Grafana</body></html>", "HTML"),
        ('{"status": "ok"}', "JSON"),
        ("", "no metrics at all"),
    ],
)
def test_not_a_rooftop_exporter(text: str, expected: str) -> None:
    with pytest.raises(NotRooftopError, match=expected):
        parse_top(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (0.0, "0"),
        (3.14159, "3.1"),
        (150.0, "150"),
        (12_345.0, "12.3k"),
        (2.5e6, "2.5M"),
    ],
)
def test_format_rate(value: float | None, text: str) -> None:
    assert format_rate(value) == text


def test_format_ratio() -> None:
    assert format_ratio(0.678) == "68%"
    assert format_ratio(None) == "–"


def _row(**values: Any) -> TopRow:
    base: dict[str, Any] = {
        "gpu": "0",
        "uuid": "u",
        "engine": "e",
        "model": "m",
        "gpu_up": True,
        "state": None,
        "evidence": None,
        "reason": None,
        "prefill_tokens_per_second": None,
        "decode_tokens_per_second": None,
        "batch": None,
        "decode_speed_of_light_ratio": None,
        "decode_arithmetic_intensity": None,
        "ridge_point_flops_per_byte": None,
    }
    return TopRow(**{**base, **values})


@pytest.mark.parametrize(
    ("ai", "ridge", "text"),
    [
        (1.026, 295.34, "1.0 < 295"),
        (322.0, 295.34, "322 ≥ 295"),
        (None, 295.34, "? vs 295"),
        (None, None, "–"),
    ],
)
def test_format_intensity(ai: float | None, ridge: float | None, text: str) -> None:
    row = _row(decode_arithmetic_intensity=ai, ridge_point_flops_per_byte=ridge)
    assert format_intensity(row) == text


def test_reason_drops_the_state_prefix_only() -> None:
    assert reason_text(_row(state="memory", reason="memory: DRAM 70%")) == "DRAM 70%"
    engine_only = "engine-only evidence (no GPU counters, no model): memory: decode 5 tok/s"
    assert reason_text(_row(state="memory", reason=engine_only)) == engine_only
    assert reason_text(_row()) == ""
    assert verdict_text(_row()) == "–"


@pytest.fixture
def exporter() -> Iterator[ExporterHTTPServer]:
    running = start_server(golden_snapshot())
    yield running
    running.shutdown()
    running.server_close()


def _url(server: Any, path: str = "/metrics") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("ROOFTOP_TOP_USER", raising=False)
    monkeypatch.delenv("ROOFTOP_TOP_PASSWORD", raising=False)


def test_once_prints_the_table(
    exporter: ExporterHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--url", _url(exporter), "--once"]) == 0
    out = capsys.readouterr().out
    for cell in ("vllm-0", MODEL, "150", "68%", "1.0 < 295", "memory", "DRAM 70% of peak"):
        assert cell in out, cell
    assert "GPU down" in out
    assert f"down: {DOWN_URL}" in out
    assert "DEMO" not in out


def test_once_marks_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    running = start_server(dataclasses.replace(golden_snapshot(), demo=True))
    try:
        assert main(["top", "--url", _url(running), "--once"]) == 0
    finally:
        running.shutdown()
        running.server_close()
    assert "DEMO: simulated data" in capsys.readouterr().out


def test_url_that_is_not_rooftop(
    exporter: ExporterHTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--url", _url(exporter, "/healthz"), "--once"]) == 1
    assert "not a rooftop exporter" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["", "/"])
def test_base_url_means_its_metrics(
    exporter: ExporterHTTPServer, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--url", _url(exporter, path), "--once"]) == 0
    out = capsys.readouterr().out
    assert "vllm-0" in out and _url(exporter, "/metrics") in out


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:9753", "http://localhost:9753/metrics"),
        ("http://localhost:9753/", "http://localhost:9753/metrics"),
        ("https://h:1/?x=1", "https://h:1/metrics?x=1"),
        ("http://h/rooftop/metrics", "http://h/rooftop/metrics"),
    ],
)
def test_metrics_url(url: str, expected: str) -> None:
    assert metrics_url(url) == expected


def test_sparkline_is_on_a_fixed_scale() -> None:
    assert sparkline([0.0, 0.5, 1.0, None, 0.99], 5) == "▁▅█ █"
    assert sparkline([0.2], 4) == "   ▂"
    assert sparkline([0.1] * 20, 3) == "▁▁▁"
    assert sparkline([float("nan")], 1) == " "


def test_sort_keys() -> None:
    rows = (
        _row(gpu="1", engine="b", state="memory", decode_speed_of_light_ratio=0.7, batch=1.0),
        _row(gpu="0", engine="a", state="latency", decode_speed_of_light_ratio=0.2, batch=8.0),
        _row(gpu="2", engine="c", state="compute", decode_speed_of_light_ratio=None),
    )
    assert [r.gpu for r in sort_rows(rows, "gpu")] == ["0", "1", "2"]
    assert [r.gpu for r in sort_rows(rows, "gpu", reverse=True)] == ["2", "1", "0"]
    assert [r.gpu for r in sort_rows(rows, "sol")] == ["1", "0", "2"]  # unknown last
    assert [r.gpu for r in sort_rows(rows, "sol", reverse=True)] == ["0", "1", "2"]
    assert [r.gpu for r in sort_rows(rows, "batch")] == ["0", "1", "2"]
    assert [r.state for r in sort_rows(rows, "verdict")] == ["compute", "memory", "latency"]
    with pytest.raises(ValueError, match="sort key must be one of"):
        sort_rows(rows, "cpu")


def test_node_totals_count_each_engine_once() -> None:
    """An engine at TP 2 has a row per GPU; its tokens are counted once."""
    view = parse_top(golden_text())
    tp2 = (
        _row(gpu="0", uuid="u0", engine="e", state="memory", decode_tokens_per_second=100.0),
        _row(gpu="1", uuid="u1", engine="e", state="memory", decode_tokens_per_second=100.0),
        _row(gpu="2", uuid="u2", engine="", model="", gpu_up=False),
    )
    totals = node_totals(dataclasses.replace(view, rows=tp2))
    assert (totals.gpus, totals.gpus_down, totals.engines) == (3, 1, 1)
    assert totals.decode_tokens_per_second == 100.0
    assert totals.states == {"memory": 2}


@pytest.mark.parametrize("columns", [80, 100, 132, 200])
def test_every_line_fits_the_terminal(columns: int) -> None:
    console = Console(width=columns, record=True, color_system=None)
    console.print(render_table(parse_top(golden_text(demo=True)), "http://h:9753/metrics", columns))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("rooftop 0.1.0 DEMO")
    assert all(len(line) <= columns for line in lines), max(map(len, lines))
    assert any(line.lstrip().startswith("0 vllm-0") for line in lines)


def test_engine_url_is_not_rooftop(capsys: pytest.CaptureFixture[str]) -> None:
    body = (FIXTURES / "engines" / "vllm-v1-dynamo-metrics-examples.prom").read_bytes()

    class Engine(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert main(["top", "--url", _url(server), "--once"]) == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "no rooftop_build_info" in err and "vllm" in err


def test_nothing_listening(capsys: pytest.CaptureFixture[str]) -> None:
    running = start_server(None)
    url = _url(running)
    running.shutdown()
    running.server_close()
    assert main(["top", "--url", url, "--once"]) == 1
    assert "cannot connect" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--url", "localhost:9753"], "is not an http(s) URL"),
        (["--interval", "0"], "--interval"),
        (["--ca-file", "/nonexistent/ca.pem"], "--ca-file"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--once", *args]) == 2
    assert expected in capsys.readouterr().err


@pytest.fixture
def auth_exporter(tmp_path: Path) -> Iterator[ExporterHTTPServer]:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    running = start_server(golden_snapshot(), load_web_config(config))
    yield running
    running.shutdown()
    running.server_close()


def test_basic_auth(
    auth_exporter: ExporterHTTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _url(auth_exporter)
    assert main(["top", "--url", url, "--once"]) == 1
    assert "401 Unauthorized" in capsys.readouterr().err
    monkeypatch.setenv("ROOFTOP_TOP_PASSWORD", "wrong")
    assert main(["top", "--url", url, "--once", "--user", "prometheus"]) == 1
    monkeypatch.setenv("ROOFTOP_TOP_PASSWORD", "pw")
    assert main(["top", "--url", url, "--once", "--user", "prometheus"]) == 0
    monkeypatch.setenv("ROOFTOP_TOP_USER", "prometheus")
    assert main(["top", "--url", url, "--once"]) == 0
    assert "vllm-0" in capsys.readouterr().out


def test_user_without_password_and_no_terminal_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO())  # not a terminal: nothing to prompt on
    assert main(["top", "--once", "--user", "prometheus"]) == 2
    assert "ROOFTOP_TOP_PASSWORD" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_live_mode_refreshes_until_interrupted(exporter: ExporterHTTPServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rooftop.exporter",
            "top",
            "--url",
            _url(exporter),
            "--interval",
            "0.2",
        ],
        cwd=REPO_ROOT,
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.0)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 0, err
    assert "vllm-0" in out and "Traceback" not in err


def test_unknown_verdict_has_its_own_style() -> None:
    """``unknown`` (nothing to judge on) is a state of its own in `rooftop top`, styled apart
    from ``idle``; every exported state has a style."""
    from rooftop.classifiers.verdict import STATES
    from rooftop.exporter.roofline_svg import STATE_COLORS

    assert set(STATE_COLORS) == set(STATES)
    assert STATE_COLORS["unknown"] != STATE_COLORS["idle"]
    row = _row(state="unknown", reason="unknown: nothing to judge on: no engine token counts")
    assert verdict_text(row) == "unknown"
    assert reason_text(row) == "nothing to judge on: no engine token counts"
