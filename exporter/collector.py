"""Renders the latest snapshot in the Prometheus text format. Never calls a device or engine.

The body of a snapshot is rendered once and reused by every scrape of that snapshot; only
``rooftop_snapshot_age_seconds`` and the process metrics are computed per scrape.
"""

from __future__ import annotations

import gzip
import math
import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from rooftop.exporter.exposition_writer import write_snapshot
from rooftop.exporter.metrics import METRICS, MetricDef
from rooftop.exporter.snapshot import Snapshot

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
    """The exposition of a snapshot, without the per-scrape age line (the direct writer)."""
    return write_snapshot(snapshot)


def render_snapshot_with_client(snapshot: Snapshot) -> bytes:
    """The same through ``prometheus_client`` (metric families + ``generate_latest``): what
    :func:`render_snapshot` is tested against, byte for byte."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StaticCollector(list(metric_families(snapshot))))
    return generate_latest(registry)


class ExpositionCache:
    """Renders each snapshot once, plain and gzipped; a scrape appends only the live age.

    The sampler thread calls :meth:`prepare` after each cycle, so scrapes find the body ready;
    a scrape that comes first renders it itself. The process metrics (RSS, CPU, open files) are
    read with each render, so they are as fresh as the snapshot. A gzipped scrape is the cached
    gzip member of the body followed by a small member for the age line: a multi-member gzip
    stream, which Prometheus' and every other gzip reader decode as one body.
    """

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
        self._rendered_gzip: bytes = b""
        self._process_registry: CollectorRegistry | None = None
        if include_process_metrics:
            self._process_registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process_registry)

    def prepare(self, snapshot: Snapshot | None = None) -> None:
        """Render ``snapshot`` (default: the latest) now, off the scrape path."""
        snapshot = snapshot if snapshot is not None else self._latest()
        if snapshot is not None:
            self._rendered_for(snapshot)

    def _rendered_for(self, snapshot: Snapshot) -> tuple[bytes, bytes]:
        with self._lock:
            if self._rendered_sequence != snapshot.sequence:
                body = render_snapshot(snapshot)
                if self._process_registry is not None:
                    body += generate_latest(self._process_registry)
                self._rendered = body
                self._rendered_gzip = gzip.compress(body, compresslevel=1)
                self._rendered_sequence = snapshot.sequence
            return self._rendered, self._rendered_gzip

    def body(self, gzipped: bool = False) -> bytes:
        """The exposition; ``gzipped`` gives it gzip-encoded."""
        snapshot = self._latest()
        if snapshot is None:
            body = b""
            if self._process_registry is not None:
                body = generate_latest(self._process_registry)
            return gzip.compress(body, compresslevel=1) if gzipped else body
        plain, packed = self._rendered_for(snapshot)
        if self._monotonic is not None:
            age = max(0.0, self._monotonic() - snapshot.monotonic_seconds)
        else:
            age = max(0.0, self._wall_clock() - snapshot.unix_seconds)
        if gzipped:
            return packed + gzip.compress(_age_lines(age), compresslevel=1)
        return plain + _age_lines(age)


def _age_lines(age_seconds: float) -> bytes:
    definition = next(m for m in METRICS if m.name == "rooftop_snapshot_age_seconds")
    return (
        f"# HELP {definition.name} {definition.help}\n"
        f"# TYPE {definition.name} gauge\n"
        f"{definition.name} {age_seconds!r}\n"
    ).encode()
