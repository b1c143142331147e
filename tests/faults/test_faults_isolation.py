"""One bad engine never freezes the node (issue 14, items 1-3): poisoned values dropped at the
source boundary, per-series reset detection, identity changes, hung engines.

The sampler runs for real (stages, threads per poll, the join stage, the exposition) on a fake
clock, with engines scripted by ``tests/faults/scripted.py`` through ``EngineSource``'s fetch.
docs/reliability.md lists these tests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait
from typing import Any

import pytest

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.pipeline import join as join_module
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.server import ExporterHTTPServer, make_handler, serve_in_thread
from rooftop.exporter.settings import load_settings
from rooftop.exporter.snapshot import EngineView, Snapshot, SourceStatus
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.sources.http import Fetch
from tests.faults.scripted import ScriptedVllm


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """A sampler over scripted engines named ``e0``, ``e1`` …, one fake second per cycle.

    An engine's answer is timed at the fake second it was rendered in, as a real engine's is
    timed when its body is in: the clock's step (with the engines' counters) and a render
    never interleave, so a poll that a thread finishes late still reads true rates."""

    def __init__(self, engines: list[ScriptedVllm], **settings: Any) -> None:
        self.clock = Clock()
        self._step = threading.Lock()
        self._rendered = threading.local()
        self.engines = {f"e{i}": engine for i, engine in enumerate(engines)}
        config = {
            "engines": [
                {"url": f"http://10.0.0.{i + 1}:8000/metrics", "name": name}
                for i, name in enumerate(self.engines)
            ],
            "rate_window_seconds": 5.0,
            "nvml": False,
            **settings,
        }
        self.sampler = Sampler(
            load_settings(config),
            None,
            engine_factory=lambda c: EngineSource(c.label, c.url, fetch=self._fetch(c.label)),
            monotonic=self.clock,
            wall_clock=lambda: 1.7e9 + self.clock.now,
            engine_answer_clock=lambda: self._rendered.at,
        )
        self.sequence = 0

    def _fetch(self, name: str) -> Fetch:
        engine = self.engines[name]

        def fetch(url: str, timeout_seconds: float, max_bytes: int) -> str:
            engine.wait_while_hung()
            with self._step:
                text = engine.answer(url)
                self._rendered.at = self.clock.now
            return text

        return fetch

    def settle(self, name: str, timeout_seconds: float = 5.0) -> None:
        """Wait until engine ``name``'s outstanding poll (a released hang) has answered, so that
        its answer is rendered and timed before the fake clock moves on: one fake second per
        cycle would otherwise turn a thread's microseconds into a second of counters."""
        stage = self.sampler._engines
        tracker = next(t for t in stage.trackers if t.name == name)
        if tracker.pending is not None:
            wait([tracker.pending], timeout=timeout_seconds)

    def cycle(self) -> Snapshot:
        with self._step:
            self.clock.now += 1.0
            for engine in self.engines.values():
                engine.advance(self.clock.now)
        snapshot = self.sampler.run_cycle()
        assert snapshot.sequence == self.sequence + 1, "the snapshot must advance every cycle"
        self.sequence = snapshot.sequence
        return snapshot


def view(snapshot: Snapshot, name: str) -> EngineView:
    return next(e for e in snapshot.engines if e.name == name)


def status(snapshot: Snapshot, index: int) -> SourceStatus:
    # An engine's source label is its engine label: the configured name e0, e1, ...
    return next(s for s in snapshot.sources if s.source == f"e{index}")


def rooftop_series(snapshot: Snapshot) -> set[str]:
    families = parse_exposition(render_snapshot(snapshot).decode())
    return {name for name in families if name.startswith("rooftop_")}


# ---------------------------------------------------------------- 1. poisoned values


@pytest.mark.parametrize(
    ("metric", "raw"),
    [
        ("vllm:num_requests_running", "-8"),
        ("vllm:num_requests_running", "NaN"),
        ("vllm:num_requests_running", "+Inf"),
        ("vllm:num_requests_running", "1e300"),
        ("vllm:kv_cache_usage_perc", "7.5"),
        ("vllm:kv_cache_usage_perc", "-Inf"),
        ("vllm:generation_tokens_total", "-9.223372036854776e18"),
        ("vllm:generation_tokens_total", "NaN"),
        ("vllm:generation_tokens_total", "1e300"),
    ],
)
def test_a_poisoned_value_is_dropped_and_named_and_nothing_else_stops(
    metric: str, raw: str
) -> None:
    poisoned, healthy = ScriptedVllm(), ScriptedVllm()
    node = Node([poisoned, healthy])
    for _ in range(3):
        node.cycle()
    poisoned.poison[metric] = raw
    for _ in range(4):
        snapshot = node.cycle()
        bad = view(snapshot, "e0")
        assert bad.up, "the rest of the poisoned engine's values are kept"
        assert status(snapshot, 0).up
        assert status(snapshot, 0).rejected, "the dropped value is named in the source status"
        assert status(snapshot, 1).rejected == ()
        good = view(snapshot, "e1")
        assert good.decode_tokens_per_second == pytest.approx(healthy.truth)
        if metric != "vllm:generation_tokens_total":
            assert bad.decode_tokens_per_second == pytest.approx(poisoned.truth)
        else:
            rate = bad.decode_tokens_per_second
            assert rate is None or 0 <= rate <= poisoned.truth * 1.01
        for value in (bad.requests_running, bad.kv_usage_ratio):
            assert value is None or (math.isfinite(value) and value >= 0)
        assert bad.kv_usage_ratio is None or bad.kv_usage_ratio <= 1.0
    family = parse_exposition(render_snapshot(snapshot).decode())["rooftop_source_rejected_values"]
    counts = {s.labels["source"]: s.value for s in family.samples}
    assert counts["e0"] >= 1.0  # the value (and any counter held)
    assert counts["e1"] == 0.0
    poisoned.poison.clear()
    for _ in range(6):
        snapshot = node.cycle()
    assert status(snapshot, 0).rejected == ()
    assert view(snapshot, "e0").decode_tokens_per_second == pytest.approx(poisoned.truth)


def test_a_poisoned_value_at_start_up_still_gives_every_rooftop_series() -> None:
    clean = Node([ScriptedVllm()])
    for _ in range(3):
        expected = rooftop_series(clean.cycle())
    poisoned = ScriptedVllm(poison={"vllm:num_requests_running": "-8"})
    node = Node([poisoned])
    for _ in range(3):
        snapshot = node.cycle()
    assert rooftop_series(snapshot) >= expected
    # rank 0's -8 is dropped; rank 1's 4 running requests are what is known
    assert view(snapshot, "e0").requests_running == 4.0
    assert status(snapshot, 0).rejected


def test_the_poisoned_value_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    node = Node([ScriptedVllm(poison={"vllm:num_requests_running": "-8"})])
    with caplog.at_level("WARNING"):
        for _ in range(5):
            node.cycle()
    lines = [
        r.getMessage() for r in caplog.records if "dropped impossible values" in r.getMessage()
    ]
    assert len(lines) == 1
    assert "requests_running" in lines[0] and "-8" in lines[0]


def test_one_targets_failure_in_the_join_stage_costs_only_that_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = Node([ScriptedVllm(ranks=1, running=13.0), ScriptedVllm()])
    real = join_module.classify

    def classify(evidence: Any, thresholds: Any, previous: Any = None) -> Any:
        if evidence.batch_size == 13.0:
            raise ValueError("batch_size must be a finite number >= 0")
        return real(evidence, thresholds, previous)

    monkeypatch.setattr(join_module, "classify", classify)
    for _ in range(3):
        snapshot = node.cycle()
    by_engine = {t.engine: t for t in snapshot.targets}
    assert by_engine["e0"].verdict is None
    assert by_engine["e1"].verdict is not None


def test_healthz_turns_unhealthy_when_the_snapshot_is_stale_and_says_why() -> None:
    node = Node([ScriptedVllm()])
    node.cycle()
    assert node.sampler.health_problem() is None
    node.clock.now += 60.0  # no cycle for a minute: the sampler stalled
    problem = node.sampler.health_problem()
    assert problem is not None and "snapshot is 60.0 s old" in problem
    server = ExporterHTTPServer(
        ("127.0.0.1", 0),
        make_handler(_NoCache(), lambda: None, None, health=node.sampler.health_problem),
        max_workers=2,
    )
    serve_in_thread(server)
    try:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 503
        assert "snapshot is 60.0 s old" in body
        connection.close()
    finally:
        server.shutdown()
        server.server_close()


class _NoCache:
    def body(self, gzipped: bool = False) -> bytes:
        return b""


# ---------------------------------------------------------------- 2. independent series


def test_one_data_parallel_rank_restarting_never_spikes_the_rate() -> None:
    engine = ScriptedVllm(ranks=2, decode_per_rank=200.0)
    engine.generation = [1_000_000.0, 1_240_000.0]
    node = Node([engine])
    for _ in range(6):
        node.cycle()
    engine.restart_rank(0)
    for _ in range(8):
        rate = view(node.cycle(), "e0").decode_tokens_per_second
        assert rate is not None and 0 <= rate <= engine.truth * 1.01, rate
    assert rate == pytest.approx(engine.truth)


def test_an_engine_identity_change_restarts_the_rate_windows() -> None:
    engine = ScriptedVllm()
    node = Node([engine])
    for _ in range(6):
        node.cycle()
    # blue/green: a new instance, started later, answers with *higher* counters
    engine.replace_instance(start_time=engine.start_time + 3600, counter=5e9)
    for _ in range(8):
        rate = view(node.cycle(), "e0").decode_tokens_per_second
        assert rate is None or 0 <= rate <= engine.truth * 1.01, rate
    assert rate == pytest.approx(engine.truth)


def test_a_vanished_series_restarts_the_windows_instead_of_a_spike() -> None:
    engine = ScriptedVllm(ranks=3)
    node = Node([engine])
    for _ in range(6):
        node.cycle()
    engine.ranks = 2  # rank 2 is gone: the sum drops by its value
    engine.generation = engine.generation[:2]
    for _ in range(8):
        rate = view(node.cycle(), "e0").decode_tokens_per_second
        assert rate is None or 0 <= rate <= 600 * 1.01, rate
    assert rate == pytest.approx(engine.truth)


# ---------------------------------------------------------------- 3. hung engines


@pytest.fixture
def released() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let the hung polls' threads finish


def test_four_hung_engines_do_not_delay_the_cycle(released: threading.Event) -> None:
    healthy = ScriptedVllm()
    node = Node([healthy] + [ScriptedVllm(hang=released) for _ in range(4)])
    walls = []
    for cycle in range(6):
        if cycle == 3:
            healthy.running = 9.0  # a change on the healthy engine shows in the next cycle
        started = time.monotonic()
        snapshot = node.cycle()
        walls.append(time.monotonic() - started)
        assert view(snapshot, "e0").up
    assert view(snapshot, "e0").requests_running == 18.0  # two ranks of 9
    # interval 1 s: the cycle waits at most half of it for engines, never the 2 s timeout
    assert max(walls) < 0.9, walls
    assert not any(view(snapshot, f"e{i}").up for i in range(1, 5))


def test_many_hung_engines_cannot_starve_the_healthy_ones(released: threading.Event) -> None:
    engines = [ScriptedVllm(hang=released) for _ in range(36)]
    engines += [ScriptedVllm() for _ in range(14)]
    node = Node(engines, interval_seconds=0.2)
    up = 0
    for _ in range(5):
        snapshot = node.cycle()
        up += sum(view(snapshot, f"e{i}").up for i in range(36, 50))
    assert up == 14 * 5, "the 14 healthy engines are up in every scrape"


def test_a_slow_engine_keeps_its_last_answer_within_its_timeout(
    released: threading.Event,
) -> None:
    engine = ScriptedVllm()
    node = Node([engine])
    for _ in range(3):
        node.cycle()
    engine.hang = released  # the next poll takes longer than the cycle waits
    snapshot = node.cycle()
    assert view(snapshot, "e0").up, "one slow answer within the 2 s timeout is not down"
    assert status(snapshot, 0).up
    node.cycle()
    snapshot = node.cycle()
    assert not view(snapshot, "e0").up, "past its timeout the engine is down"
    assert "no answer within" in (status(snapshot, 0).error or "")
    engine.hang = None
    released.set()
    node.settle("e0")  # cycles are an interval apart: the released poll's thread finishes
    for _ in range(4):
        snapshot = node.cycle()
    assert view(snapshot, "e0").up
