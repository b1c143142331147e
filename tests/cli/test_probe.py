"""``rooftop probe``: text and JSON reports, exit codes, and reset-aware ``--watch`` rates."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rooftop.exporter.cli import main
from rooftop.exporter.commands.probe import JSON_KEYS, window_rates
from rooftop.exporter.sources.engines.base import EngineReading

FIXTURES = Path(__file__).parents[1] / "fixtures" / "engines"
NIM = FIXTURES / "nim-llm-datadog-fixture.prom"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["probe", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_has_exactly_the_documented_leading_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([str(NIM), "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert tuple(document)[: len(JSON_KEYS)] == JSON_KEYS
    assert document["engine"] == "nim"
    assert document["model"] == "meta/llama-3.1-8b-instruct"
    assert (document["prompt_tokens_total"], document["generation_tokens_total"]) == (109, 174)
    assert (document["requests_running"], document["requests_waiting"]) == (1, 0)
    assert document["kv_usage_ratio"] == pytest.approx(0.0002848191398461977)
    assert document["kv_capacity_tokens"] is None  # NIM exports none: null, not 0
    assert "kv_capacity_tokens" in document["missing"]
    assert document["missing_hints"]["kv_capacity_tokens"] == "NIM exports no KV capacity"


def test_text_report_says_engine_reason_values_and_hints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run([str(FIXTURES / "vllm-v1-dynamo-metrics-examples.prom")], capsys)
    assert code == 0
    assert "vllm (vllm-v1)" in out
    assert "vllm:num_requests_running" in out  # why it was recognised
    assert "Qwen/Qwen3-0.6B" in out
    assert "95,088 tokens" in out  # KV capacity
    assert "--enable-mfu-metrics" in out  # how to get the engine's own estimates


def test_unrecognised_exits_2_with_prefixes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "node.prom"
    path.write_text(
        "# TYPE node_load1 gauge\nnode_load1 0.5\n# TYPE go_threads gauge\ngo_threads 4\n"
    )
    code, out, err = run([str(path)], capsys)
    assert (code, out) == (2, "")
    assert "go_, node_" in err


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"<html>hi</html>", "HTML"), (b"\x00\x01\x02binary", "binary"), (b"\xff\xfe\x00", "UTF-8")],
)
def test_garbage_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, match: str
) -> None:
    path = tmp_path / "x.prom"
    path.write_bytes(content)
    code, _, err = run([str(path)], capsys)
    assert code == 2
    assert match in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(tmp_path / "nope.prom")], capsys)
    assert code == 2
    assert "cannot read" in err


def test_unreachable_url_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run([f"http://127.0.0.1:{port}/metrics", "--timeout", "1"], capsys)
    assert code == 1
    assert "connection refused" in err


@pytest.mark.parametrize("bad", ["0", "-1", "nan"])
def test_bad_watch_exits_2(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(NIM), "--watch", bad], capsys)
    assert code == 2
    assert "--watch" in err


def test_window_rates_are_reset_aware() -> None:
    base = EngineReading(
        "vllm",
        "vllm-v1",
        "test",
        generation_tokens_total=1000.0,
        prompt_tokens_total=50.0,
        inter_token_latency_sum_count=(10.0, 1000.0),
    )
    later = replace(
        base,
        generation_tokens_total=40.0,  # restarted engine
        prompt_tokens_total=70.0,
        inter_token_latency_sum_count=(10.5, 1020.0),
    )
    rates = window_rates(base, later, 2.0)
    assert rates.per_second["generation_tokens_total"] == 20.0  # 40 / 2, not negative
    assert rates.per_second["prompt_tokens_total"] == 10.0
    assert rates.per_second["estimated_flops_total"] is None
    assert rates.window_means["inter_token_latency_sum_count"] == pytest.approx(0.5 / 20)
    assert rates.resets == ("generation_tokens_total",)
    with pytest.raises(ValueError):
        window_rates(base, later, 0.0)


BODY = (
    "# TYPE vllm:generation_tokens_total counter\n"
    'vllm:generation_tokens_total{{engine="0",model_name="m"}} {gen}\n'
    "# TYPE vllm:prompt_tokens_total counter\n"
    'vllm:prompt_tokens_total{{engine="0",model_name="m"}} {prompt}\n'
)


@pytest.fixture
def restarting_engine() -> Iterator[str]:
    """Serves a high counter on the first scrape and a reset (lower) one afterwards."""
    bodies = [BODY.format(gen=5000, prompt=700), BODY.format(gen=30, prompt=710)]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (bodies.pop(0) if len(bodies) > 1 else bodies[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def test_watch_over_a_counter_reset(
    restarting_engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([restarting_engine, "--watch", "0.2", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    seconds = document["window_seconds"]
    # The window is the measured time between the two reads, at least the asked 0.2 s; how
    # much longer depends on the machine's load, which a test must not assert.
    assert seconds >= 0.2
    rates = document["rates_per_second"]
    assert rates["generation_tokens_total"] == pytest.approx(30 / seconds)
    assert rates["prompt_tokens_total"] == pytest.approx(10 / seconds)
    assert document["counter_resets"] == ["generation_tokens_total"]
    assert document["generation_tokens_total"] == 30  # the second read is reported


def test_watch_text_mentions_the_reset(
    restarting_engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([restarting_engine, "--watch", "0.1"], capsys)
    assert code == 0
    assert "counter reset seen" in out
    assert "/s" in out
