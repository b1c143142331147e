"""A whole demo cycle creates a bounded number of series, and none churn.

Every new label value is a new Prometheus series (memory in Prometheus for as long as the
series is retained). The demo pipeline (real HTTP engine scrapes, rates, roofline, verdicts,
exposition) runs two full load cycles on a fake clock; the series of every rendered snapshot are
collected. The second cycle must add no series the first did not have, every label value of a
fixed-set label must be one of its documented values, and the total must stay under the bound
the label table implies for this node (2 GPUs, 2 engines).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator

import pytest

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.demo.node import DemoNode
from rooftop.exporter.metrics import LABELS, METRICS
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.settings import EngineConfig, Settings
from rooftop.exporter.sources.exposition import parse_exposition
from rooftop.exporter.sources.nvml import NvmlSource

CYCLE_SECONDS = 40.0
GPUS = 2
ENGINES = 2
CLOCK_REASON = re.compile(r"^[a-z_]+$|^bit_\d+$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def demo_pipeline() -> Iterator[tuple[Sampler, FakeClock]]:
    clock = FakeClock()
    node = DemoNode(gpus=GPUS, engines=ENGINES, cycle_seconds=CYCLE_SECONDS, seed=3, clock=clock)
    node.start()
    engines = tuple(
        EngineConfig(
            url=url, name=node.engine_name(i), gpus=(node.engine_gpu(i),), pid=node.engine_pid(i)
        )
        for i, url in enumerate(node.engine_urls())
    )
    settings = Settings(demo=True, engines=engines, rate_window_seconds=5.0)
    nvml = NvmlSource(node.backend, settings.gpu_call_deadline_seconds, clock=clock)
    nvml.start()
    sampler = Sampler(
        settings,
        nvml,
        process_stats=node,
        before_cycle=node.advance,
        monotonic=clock,
        wall_clock=lambda: 1_700_000_000.0 + clock.now,
    )
    try:
        yield sampler, clock
    finally:
        sampler.stop()
        node.stop()


def _series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    found = set()
    for family in parse_exposition(text).values():
        for sample in family.samples:
            if sample.name.startswith("rooftop_"):
                found.add((sample.name, tuple(sorted(sample.labels.items()))))
    return found


def _bound_for_this_node() -> int:
    """Series the label table allows on a node of GPUS GPUs and ENGINES engines: for each
    metric, the product of its labels' value counts, where a label bounded by an entity takes
    one value per entity of the row (a target is one GPU with one engine)."""
    total = 0
    for metric in METRICS:
        fixed = 1
        for label in metric.labels:
            values = LABELS[label].values
            if values:
                fixed *= len(values)
            elif LABELS[label].one_per == "clock-event bit (at most 64)":
                fixed *= 64
        if "source" in metric.labels:
            rows = 1 + ENGINES  # nvml and each engine
        elif "gpu" in metric.labels and "engine" in metric.labels:
            rows = GPUS + ENGINES  # each engine on its GPU, and each GPU without one
        elif "gpu" in metric.labels or "uuid" in metric.labels:
            rows = GPUS
        elif "engine" in metric.labels:
            rows = ENGINES
        else:
            rows = 1
        total += rows * fixed
    return total


@pytest.mark.timeout(120)
def test_two_demo_cycles_create_a_bounded_set_of_series(
    demo_pipeline: tuple[Sampler, FakeClock],
) -> None:
    sampler, clock = demo_pipeline
    per_cycle: list[set[tuple[str, tuple[tuple[str, str], ...]]]] = [set(), set()]
    values: dict[str, set[str]] = defaultdict(set)
    states_seen: set[str] = set()
    steps = int(CYCLE_SECONDS)
    for step in range(2 * steps):
        snapshot = sampler.run_cycle()
        clock.now += 1.0
        series = _series(render_snapshot(snapshot).decode())
        per_cycle[step // steps] |= series
        for _, labels in series:
            for name, value in labels:
                values[name].add(value)
        states_seen |= {t.verdict.state for t in snapshot.targets if t.verdict is not None}

    assert states_seen == {"idle", "memory", "compute", "latency"}, "the cycle was not whole"
    first, second = per_cycle
    # A later cycle may combine fixed-set values anew (a state with another cause), but every
    # series it adds has the entity labels of a series seen before: nothing grows with time.
    fixed = {name for name, label in LABELS.items() if label.values}

    def entities(series: tuple[str, tuple[tuple[str, str], ...]]) -> tuple[object, ...]:
        name, labels = series
        return (name, tuple((k, v) for k, v in labels if k not in fixed))

    known = {entities(series) for series in first}
    churned = sorted(series for series in second - first if entities(series) not in known)
    assert churned == [], f"series that churn: {churned[:10]}"
    for name, seen in values.items():
        label = LABELS.get(name)
        assert label is not None, f"label {name!r} is not in the label table"
        if label.values:
            assert seen <= set(label.values), (name, sorted(seen - set(label.values)))
        elif name == "reason":
            assert all(CLOCK_REASON.match(value) for value in seen), seen
    for name in ("gpu", "uuid"):
        assert len(values[name] - {""}) <= GPUS, values[name]
    assert len(values["engine"] - {""}) <= ENGINES, values["engine"]
    assert len(values["model"] - {""}) <= ENGINES, values["model"]
    total = len(first | second)
    assert total <= _bound_for_this_node(), (total, _bound_for_this_node())
    print(f"{total} distinct rooftop_* series over two {CYCLE_SECONDS:g} s demo cycles")
