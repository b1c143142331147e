"""Renders the latest snapshot in the Prometheus text format. Never calls a device or engine.

The body of a snapshot is rendered once and reused by every scrape of that snapshot; only
``rooftop_snapshot_age_seconds`` and the process metrics are computed per scrape.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from exporter.metrics import METRICS, MetricDef
from exporter.snapshot import Snapshot

SnapshotGetter = Callable[[], Snapshot | None]


def metric_families(snapshot: Snapshot) -> Iterator[Metric]:
    """One family per table row, holding the row's samples for this snapshot."""
    for definition in METRICS:
        if definition.name == "rooftop_snapshot_age_seconds":
            continue  # per scrape (ExpositionCache); a second HELP line breaks the text format
        family = _family(definition)
        for labels, value in definition.samples(snapshot):
            if value is None or math.isnan(value):
                continue
            family.add_metric(list(labels), value)
        yield family


def _family(definition: MetricDef) -> GaugeMetricFamily | CounterMetricFamily:
    labels = list(definition.labels)
    if definition.type == "counter":
        return CounterMetricFamily(definition.name, definition.help, labels=labels)
    # Info rows keep their ``_info`` name and render as gauges of 1, the text-format convention.
    return GaugeMetricFamily(definition.name, definition.help, labels=labels)


class _StaticCollector:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render_snapshot(snapshot: Snapshot) -> bytes:
    """The exposition of a snapshot, without the per-scrape age line."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(list(metric_families(snapshot))))
    return generate_latest(registry)


class ExpositionCache:
    """Renders each snapshot once; a scrape appends the live age and process metrics."""

    def __init__(
        self,
        latest: SnapshotGetter,
        wall_clock: Callable[[], float],
        include_process_metrics: bool = True,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._latest = latest
        self._wall_clock = wall_clock
        # The sampler's monotonic clock, when given: the age then survives host clock jumps.
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._rendered_sequence: int | None = None
        self._rendered: bytes = b""
        self._process_registry: CollectorRegistry | None = None
        if include_process_metrics:
            self._process_registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process_registry)

    def body(self) -> bytes:
        snapshot = self._latest()
        parts: list[bytes] = []
        if snapshot is not None:
            with self._lock:
                if self._rendered_sequence != snapshot.sequence:
                    self._rendered = render_snapshot(snapshot)
                    self._rendered_sequence = snapshot.sequence
                parts.append(self._rendered)
            if self._monotonic is not None:
                age = max(0.0, self._monotonic() - snapshot.monotonic_seconds)
            else:
                age = max(0.0, self._wall_clock() - snapshot.unix_seconds)
            parts.append(_age_lines(age))
        if self._process_registry is not None:
            parts.append(generate_latest(self._process_registry))
        return b"".join(parts)


def _age_lines(age_seconds: float) -> bytes:
    definition = next(m for m in METRICS if m.name == "rooftop_snapshot_age_seconds")
    return (
        f"# HELP {definition.name} {definition.help}\n"
        f"# TYPE {definition.name} gauge\n"
        f"{definition.name} {age_seconds!r}\n"
    ).encode()
