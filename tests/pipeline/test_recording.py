"""Record/replay: a recording of the real pipeline replays to the same exposition.

Recordings are made here against fakes injected at the boundaries (the fake NVML backend, a
local HTTP engine that really serves vLLM's format, the demo node), then replayed through the
same sources and sampler; the replayed exposition must equal the live one (timestamp series
aside), cycle by cycle.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rooftop.exporter.cli import main
from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.demo.engine import DemoEngineState
from rooftop.exporter.demo.node import DemoNode
from rooftop.exporter.demo.nvml_fake import FakeNvmlBackend
from rooftop.exporter.recording.codec import TextDeltas
from rooftop.exporter.recording.fetch import public_url, redact_text
from rooftop.exporter.recording.format import (
    FORMAT_VERSION,
    RecordingError,
    RecordingWriter,
    read_recording,
    rooftop_version,
)
from rooftop.exporter.recording.session import (
    RecordSession,
    ReplaySession,
    normalized_exposition,
)
from rooftop.exporter.settings import EngineConfig, Settings
from rooftop.exporter.snapshot import Snapshot
from tests.conftest import FIXTURES

NVML_FIXTURE = FIXTURES / "nvml" / "h100_sxm_x2_l40s.json"
DECODE_TOKENS = "rooftop_engine_decode_tokens_total{"
SECRET_USER, SECRET_PASSWORD, SECRET_TOKEN = "scraper", "hunter2-secret", "tok-987654321"


class _Engine:
    """A vLLM-format endpoint that requires basic auth; counters advance on each scrape."""

    def __init__(self) -> None:
        self.state = DemoEngineState("meta-llama/Llama-3.1-8B-Instruct", num_gpu_blocks=27_000)
        self.state.requests_running = 8
        self.state.kv_usage_ratio = 0.25
        self.authorizations: list[str] = []
        self.gate: threading.Event | None = None
        """Set: the next scrape waits for it (a slow answer), then it is cleared."""
        self.answered = threading.Event()
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                engine.authorizations.append(self.headers.get("Authorization", ""))
                gate, engine.gate = engine.gate, None
                if gate is not None:
                    gate.wait(10)
                engine.state.advance(0.1, 0.0, 800.0)
                body = engine.state.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                engine.answered.set()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine() -> Iterator[_Engine]:
    served = _Engine()
    yield served
    served.stop()


def _settings(engine: _Engine) -> Settings:
    url = (
        f"http://{SECRET_USER}:{SECRET_PASSWORD}@127.0.0.1:{engine.port}/metrics"
        f"?token={SECRET_TOKEN}"
    )
    return Settings.model_validate(
        {
            "interval_seconds": 0.1,
            "verdict_hold_samples": 2,
            "engines": [{"url": url, "name": "vllm-a", "gpus": ["0"]}],
            "discover_engines": False,
        }
    )


def _record(
    tmp_path: Path, settings: Settings, backend: FakeNvmlBackend, cycles: int, script: Any = None
) -> tuple[Path, list[Snapshot]]:
    out = tmp_path / "run.jsonl.gz"
    live: list[Snapshot] = []
    session = RecordSession(settings, out, nvml_backend=backend, on_publish=live.append)
    for number in range(cycles):
        if script is not None:
            script(number, backend)
        session.cycle()
        time.sleep(0.11)  # GPM needs windows over 100 ms
    session.close()
    return out, live


def _replay(path: Path) -> tuple[ReplaySession, list[Snapshot]]:
    replayed: list[Snapshot] = []
    session = ReplaySession(read_recording(path), on_publish=replayed.append)
    session.run(0.0)
    session.close()
    return session, replayed


def _text(snapshot: Snapshot) -> str:
    return render_snapshot(snapshot).decode()


def test_record_then_replay_reproduces_every_cycles_exposition(
    tmp_path: Path, engine: _Engine
) -> None:
    backend = FakeNvmlBackend.from_json(NVML_FIXTURE)

    def script(number: int, fake: FakeNvmlBackend) -> None:
        # memory-bound, then compute-bound, then GPU 1 falls off the bus for two cycles.
        if number == 6:
            fake.set_activity(0, dram_active=0.2, tensor_active=0.8, sm_active=0.9)
        if number == 12:
            fake.gpu(1).fail("*", "gpu_is_lost", times=8)

    path, live = _record(tmp_path, _settings(engine), backend, 16, script)
    session, replayed = _replay(path)

    assert session.summary.cycles == 16
    assert session.summary.reproduced, session.summary.differences
    assert len(replayed) == len(live)
    for ours, theirs in zip(replayed, live, strict=True):
        assert normalized_exposition(_text(ours)) == normalized_exposition(_text(theirs))
    # The scripted story is in the replay: a memory verdict, then compute, GPU 1 down.
    states = session.summary.verdicts
    engine_target = next(key for key in states if "engine=vllm-a" in key)
    assert "memory" in states[engine_target][:6]
    assert states[engine_target][-1] == "compute"
    assert 'rooftop_gpu_up{gpu="1"' in _text(replayed[-1])
    assert any(
        line.startswith('rooftop_gpu_up{gpu="1"') and line.endswith(" 0.0")
        for line in _text(replayed[-1]).splitlines()
    )
    # Engine rates were computed from the recorded counters at the recorded times.
    assert "rooftop_engine_decode_tokens_per_second" in _text(replayed[-1])


def test_an_answer_that_outlives_its_cycle_replays_as_recorded(
    tmp_path: Path, engine: _Engine
) -> None:
    """A slow engine's answer misses its cycle (which keeps the last answer) and is taken by the
    next; real time decided that, and the replay, whose polls answer at once, must see it the
    same way, with the answer and its time in the cycle its poll began in."""
    backend = FakeNvmlBackend.from_json(NVML_FIXTURE)
    out = tmp_path / "slow.jsonl.gz"
    live: list[Snapshot] = []
    session = RecordSession(_settings(engine), out, nvml_backend=backend, on_publish=live.append)
    for number in range(8):
        gate = None
        if number in (3, 5):
            gate = engine.gate = threading.Event()
        session.cycle()
        if gate is not None:  # the cycle stopped waiting, and was written: now it answers
            engine.answered.clear()
            gate.set()
            assert engine.answered.wait(10)
            time.sleep(0.05)  # the poll thread reads its answer and its clock
        time.sleep(0.11)
    recorded = session.close()
    assert recorded.late_events == 0
    recording = read_recording(out)
    late = [cycle["late"] for cycle in recording.cycles if "late" in cycle]
    assert [sorted(answers) for answers in late] == [["3"], ["5"]]

    replay, replayed = _replay(out)
    assert replay.summary.reproduced, replay.summary.differences
    assert replay.summary.gaps == 0
    texts = [normalized_exposition(_text(s)) for s in live]
    assert texts == [normalized_exposition(_text(s)) for s in replayed]
    # The slow cycles published the previous answer again (their decode rate is unchanged).
    tokens = [
        [line for line in text.splitlines() if line.startswith(DECODE_TOKENS)] for text in texts
    ]
    assert tokens[3] == tokens[2] and tokens[4] != tokens[3]


def test_recording_holds_no_secret(tmp_path: Path, engine: _Engine) -> None:
    backend = FakeNvmlBackend.from_json(NVML_FIXTURE)
    path, _ = _record(tmp_path, _settings(engine), backend, 3)
    raw = gzip.decompress(path.read_bytes()).decode()
    credentials = base64.b64encode(f"{SECRET_USER}:{SECRET_PASSWORD}".encode()).decode()
    # The engine did receive the credentials (as basic auth) ...
    assert engine.authorizations and all(a == f"Basic {credentials}" for a in engine.authorizations)
    # ... and none of them, in any spelling, is in the file.
    for secret in (SECRET_USER, SECRET_PASSWORD, SECRET_TOKEN, credentials, "Authorization"):
        assert secret not in raw
    header = read_recording(path).header
    assert header["settings"]["engines"][0]["url"] == (
        f"http://127.0.0.1:{engine.port}/metrics?token=redacted"
    )
    assert header["settings"]["web_config_file"] is None


def test_header_holds_driver_and_gpu_identity(tmp_path: Path, engine: _Engine) -> None:
    backend = FakeNvmlBackend.from_json(NVML_FIXTURE)
    backend.driver_version = "550.54.15"
    path, _ = _record(tmp_path, _settings(engine), backend, 1)
    header = read_recording(path).header
    assert header["format"] == FORMAT_VERSION
    assert header["rooftop_version"] == rooftop_version()
    assert header["nvml"]["driver_version"] == "550.54.15"
    assert [g["uuid"] for g in header["nvml"]["gpus"]] == [g.uuid for g in backend.gpus]
    assert header["nvml"]["gpus"][0]["pci_device_id"] == 0x2330


def test_demo_recording_replays_at_recorded_clock(tmp_path: Path) -> None:
    demo = DemoNode(gpus=1, engines=1, cycle_seconds=10)
    demo.start()
    try:
        engines = tuple(
            EngineConfig(url=url, name=demo.engine_name(i), gpus=(demo.engine_gpu(i),))
            for i, url in enumerate(demo.engine_urls())
        )
        settings = Settings.model_validate(
            {"demo": True, "interval_seconds": 0.1, "engines": [e.model_dump() for e in engines]}
        )
        live: list[Snapshot] = []
        session = RecordSession(settings, tmp_path / "demo.gz", demo=demo, on_publish=live.append)
        for _ in range(8):
            session.cycle()
        session.close()
    finally:
        demo.stop()
    replay, replayed = _replay(tmp_path / "demo.gz")
    assert replay.summary.reproduced
    # The sampler's clocks come from the recording: even the timestamps are the live ones.
    assert [s.unix_seconds for s in replayed] == [s.unix_seconds for s in live]
    assert _text(replayed[-1]) == _text(live[-1])


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    writer = RecordingWriter(path)
    for record in records:
        writer.write(record)
    writer.close()


def test_newer_format_fails_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "future.gz"
    _write(path, [{"kind": "header", "format": FORMAT_VERSION + 1, "rooftop_version": "9.0.0"}])
    with pytest.raises(RecordingError) as error:
        read_recording(path)
    message = str(error.value)
    assert "9.0.0" in message and rooftop_version() in message
    assert f"format {FORMAT_VERSION + 1}" in message


def test_settings_this_version_cannot_load_fail_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "other.gz"
    header = {
        "kind": "header",
        "format": FORMAT_VERSION,
        "rooftop_version": "0.0.1-old",
        "settings": {"interval_seconds": 1.0, "a_setting_from_another_version": 3},
        "nvml": {"available": False},
    }
    _write(path, [header, {"kind": "end"}])
    with pytest.raises(RecordingError) as error:
        ReplaySession(read_recording(path))
    assert "0.0.1-old" in str(error.value) and rooftop_version() in str(error.value)
    assert "a_setting_from_another_version" in str(error.value)


def test_other_version_with_loadable_settings_replays(
    tmp_path: Path, engine: _Engine, caplog: pytest.LogCaptureFixture
) -> None:
    backend = FakeNvmlBackend.from_json(NVML_FIXTURE)
    path, _ = _record(tmp_path, _settings(engine), backend, 4)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header = json.loads(lines[0])
    header["rooftop_version"] = "0.0.9"
    older = tmp_path / "older.gz"
    older.write_bytes(gzip.compress(("\n".join([json.dumps(header), *lines[1:]]) + "\n").encode()))
    session, _ = _replay(older)
    assert session.summary.cycles == 4
    assert "0.0.9" in caplog.text and rooftop_version() in caplog.text


def test_recording_cut_short_reads_back_to_its_last_cycle(tmp_path: Path, engine: _Engine) -> None:
    backend = FakeNvmlBackend.from_json(NVML_FIXTURE)
    path, _ = _record(tmp_path, _settings(engine), backend, 5)
    data = gzip.decompress(path.read_bytes()).decode().splitlines()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(("\n".join(data[:-2]) + "\n").encode())[:-20])
    recording = read_recording(cut)
    assert not recording.complete
    assert 1 <= len(recording.cycles) <= 4


@pytest.mark.parametrize(
    "content",
    [b"not gzip at all", gzip.compress(b"{}\n"), gzip.compress(b'{"kind": "cycle"}\n')],
)
def test_not_a_recording_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match="recording"):
        read_recording(path)


def test_text_deltas_round_trip() -> None:
    bodies = ["a 1\nb 2\nc 3\n", "a 1\nb 5\nc 3\n", "x\n", "x\n", "a 1\nb 2\nc 3\n"]
    encoder, decoder = TextDeltas(), TextDeltas()
    encoded = [encoder.encode("k", body) for body in bodies]
    assert "delta" in encoded[1]
    assert [decoder.decode("k", item) for item in encoded] == bodies


@pytest.mark.parametrize(
    ("url", "public"),
    [
        ("http://u:p@h:1/metrics", "http://h:1/metrics"),
        ("https://h/m?token=abc&x=1", "https://h/m?token=redacted&x=1"),
        (
            "http://h/m?format=text&api_key=k1&Sig=z",
            "http://h/m?format=text&api_key=redacted&Sig=redacted",
        ),
        ("http://[::1]:8000/metrics", "http://[::1]:8000/metrics"),
    ],
)
def test_public_url(url: str, public: str) -> None:
    assert public_url(url) == public
    assert redact_text(f"fetch {url}: refused") == f"fetch {public}: refused"


def test_cli_record_then_probe_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.gz"
    code = main(
        [
            "record",
            "--demo",
            "--out",
            str(out),
            "--seconds",
            "1.5",
            "--interval",
            "0.25",
            "--log-level",
            "error",
        ]
    )
    assert code == 0
    assert main(["probe", "--replay", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["reproduced"] is True
    assert report["cycles"] >= 4
    assert report["driver_version"] == "fake"
    assert main(["probe", "--replay", str(tmp_path / "missing.gz")]) == 2
