"""rooftop's own counters and the one-snapshot consistency of every view, over the demo cycle.

Counters: tokens per phase, model bytes and FLOPs by phase, seconds per verdict state are real
``_total`` counters (never down, counted across cycles), so PromQL can window them. Views: the
numbers beside a verdict (top's batch and intensity, the landing page's SOL) are the numbers
the verdict used, from the same snapshot.
"""

from __future__ import annotations

import itertools
import math
import urllib.request

import pytest

from rooftop.classifiers.verdict import CAUSE_DESCRIPTIONS
from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.server import landing_page
from rooftop.exporter.snapshot import Snapshot
from rooftop.exporter.sources.exposition import parse_exposition, sum_values
from rooftop.exporter.top import parse_top
from tests.pipeline.test_series_bound import CYCLE_SECONDS, FakeClock, demo_pipeline  # noqa: F401


def _engine_counter(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as reply:
        families = parse_exposition(reply.read().decode())
    value = sum_values(families[name])
    assert value is not None
    return value


def _run(sampler: Sampler, clock: FakeClock, cycles: int) -> list[Snapshot]:
    snapshots = []
    for _ in range(cycles):
        snapshots.append(sampler.run_cycle())
        clock.now += 1.0
    return snapshots


@pytest.mark.timeout(120)
def test_counters_never_go_down_and_add_up(demo_pipeline: tuple[Sampler, FakeClock]) -> None:  # noqa: F811
    sampler, clock = demo_pipeline
    snapshots = _run(sampler, clock, int(CYCLE_SECONDS) + 5)
    for before, after in itertools.pairwise(snapshots):
        for old, new in zip(before.engines, after.engines, strict=True):
            for name in ("decode_tokens_total", "prefill_tokens_total"):
                a, b = getattr(old, name), getattr(new, name)
                assert a is None or b is None or b >= a, name
        for old_t, new_t in zip(before.targets, after.targets, strict=True):
            for name in ("bound_seconds_total", "model_bytes_total", "model_flops_total"):
                for key, value in getattr(old_t, name).items():
                    assert getattr(new_t, name).get(key, 0.0) >= value, (name, key)

    last = snapshots[-1]
    # Seconds per state: every cycle after the first adds the 1 s that passed, to one state.
    for target in last.targets:
        if target.engine:
            assert sum(target.bound_seconds_total.values()) == pytest.approx(len(snapshots) - 1)
    # All four states were spent time in over a whole cycle.
    engine0 = next(t for t in last.targets if t.engine == "demo-vllm-0")
    assert set(engine0.bound_seconds_total) == {"idle", "memory", "compute", "latency"}

    # Decode bytes of the last cycle: the tokens it generated x the model's bytes per token.
    previous = next(t for t in snapshots[-2].targets if t.engine == "demo-vllm-0")
    prev_engine = next(e for e in snapshots[-2].engines if e.name == "demo-vllm-0")
    engine = next(e for e in last.engines if e.name == "demo-vllm-0")
    assert engine.decode_tokens_total is not None and prev_engine.decode_tokens_total is not None
    tokens = engine.decode_tokens_total - prev_engine.decode_tokens_total
    assert engine0.point is not None
    moved = engine0.model_bytes_total.get("decode", 0.0) - previous.model_bytes_total.get(
        "decode", 0.0
    )
    assert moved == pytest.approx(tokens * engine0.point.decode_bytes_per_token)

    # rooftop's decode total is the engine's own counter's increase since the first cycle.
    url = sampler._settings.engines[0].url  # the demo engine's /metrics
    generated = _engine_counter(url, "vllm:generation_tokens")
    first = next(e for e in snapshots[0].engines if e.name == "demo-vllm-0")
    assert first.decode_tokens_total == 0.0
    assert engine.decode_tokens_total <= generated

    # Exposed as counters, with the engine's memory and the window's latency quantiles.
    text = render_snapshot(last).decode()
    families = parse_exposition(text)
    for name in (
        "rooftop_engine_decode_tokens",
        "rooftop_engine_prefill_tokens",
        "rooftop_gpu_bound_seconds",
        "rooftop_model_bytes",
        "rooftop_model_flops",
    ):
        assert families[name].type == "counter", name
    memory = {
        s.labels["engine"]: s.value
        for s in families["rooftop_engine_gpu_memory_used_bytes"].samples
    }
    assert memory == {"demo-vllm-0": 70e9, "demo-vllm-1": 70e9}


@pytest.mark.timeout(120)
def test_every_view_shows_the_numbers_its_verdict_used(
    demo_pipeline: tuple[Sampler, FakeClock],  # noqa: F811
) -> None:
    sampler, clock = demo_pipeline
    held_seen = 0
    hit_ratios: list[float] = []
    for snapshot in _run(sampler, clock, int(CYCLE_SECONDS) + 5):
        engines = {e.name: e for e in snapshot.engines}
        top = {(r.gpu, r.engine): r for r in parse_top(render_snapshot(snapshot).decode()).rows}
        page = landing_page(snapshot)
        for target in snapshot.targets:
            verdict, point = target.verdict, target.point
            if verdict is None or not target.engine:
                continue
            engine = engines[target.engine]
            row = top[(target.gpu, target.engine)]
            # top's batch and intensity are the verdict's own inputs
            assert row.batch == engine.requests_running_mean
            if point is not None:
                assert row.decode_arithmetic_intensity == pytest.approx(
                    point.workload_arithmetic_intensity
                )
            held = verdict.cause == "held"
            if engine.requests_running_mean is not None and not held and "batch" in verdict.reason:
                assert f"batch {engine.requests_running_mean:g}" in verdict.reason
            # an idle verdict beside flowing decode is a state held by hysteresis, and says so
            sol = point.decode_speed_of_light_ratio if point is not None else None
            if verdict.state == "idle" and sol is not None and sol > 0.01:
                assert verdict.cause == "held", verdict
                assert "this cycle looks" in verdict.reason
                assert row.cause == "held" and CAUSE_DESCRIPTIONS["held"]
                held_seen += 1
            assert verdict.reason.replace("&", "&amp;").replace("<", "&lt;")[:20] in page
            if engine.prefix_cache_hit_ratio is not None and engine.prefill_tokens_per_second:
                hit_ratios.append(engine.prefix_cache_hit_ratio)
    assert held_seen > 0, "the cycle's idle → decode step should be held for two samples"
    # The demo serves 20 % of prompt tokens from its prefix cache (85 % in its prefix phase).
    assert hit_ratios and all(0.0 <= r <= 1.0 for r in hit_ratios)
    assert any(math.isclose(r, 0.2, abs_tol=0.02) for r in hit_ratios), hit_ratios
