"""Renders the latest snapshot in the Prometheus text format. Never calls a device or engine.

The body of a snapshot is rendered once and reused by every scrape of that snapshot; only
``rooftop_snapshot_age_seconds`` and the process metrics are computed per scrape.
"""

from __future__ import annotations

import gzip
import math
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Final

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
    from the first :meth:`prepare` on, a scrape serves the last body rendered and never waits
    for a render (one that comes before any renders it itself). The process metrics (RSS, CPU,
    open files) are read with each render, so they are as fresh as the snapshot. A gzipped
    scrape is the cached gzip member of the body followed by a small member for the age line: a
    multi-member gzip stream, which Prometheus' and every other gzip reader decode as one body.
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
        """Held while a body is rendered (one render at a time)."""
        self._rendered: tuple[Snapshot, bytes, bytes] | None = None
        """The last snapshot rendered, its body, and the body gzipped: replaced whole."""
        self._prepared = False
        """Whether :meth:`prepare` was called: from then on the sampler renders each snapshot
        as it publishes it, and scrapes serve the last rendering, never render."""
        self._process_registry: CollectorRegistry | None = None
        if include_process_metrics:
            self._process_registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process_registry)

    def prepare(self, snapshot: Snapshot | None = None) -> None:
        """Render ``snapshot`` (default: the latest) now, off the scrape path."""
        snapshot = snapshot if snapshot is not None else self._latest()
        if snapshot is not None:
            with self._lock:
                self._prepared = True
                if self._rendered is None or self._rendered[0] is not snapshot:
                    self._rendered = self._render(snapshot)

    def _rendered_for(self, snapshot: Snapshot) -> tuple[Snapshot, bytes, bytes]:
        """``snapshot`` rendered, or the rendering before it while another thread renders it:
        a scrape never waits for a render (the sampler renders each snapshot just after it
        publishes it, and a scrape in that window would otherwise wait the whole render)."""
        rendered = self._rendered
        if rendered is not None and (rendered[0] is snapshot or self._prepared):
            return rendered  # prepared: the sampler renders every snapshot it publishes
        if not self._lock.acquire(blocking=rendered is None):
            assert rendered is not None
            return rendered  # being rendered: the previous body, with its own age
        try:
            rendered = self._rendered
            if rendered is None or rendered[0] is not snapshot:
                rendered = self._rendered = self._render(snapshot)
            return rendered
        finally:
            self._lock.release()

    def _render(self, snapshot: Snapshot) -> tuple[Snapshot, bytes, bytes]:
        body = render_snapshot(snapshot)
        if self._process_registry is not None:
            body += generate_latest(self._process_registry)
        return snapshot, body, gzip.compress(body, compresslevel=1)

    def body(self, gzipped: bool = False) -> bytes:
        """The exposition; ``gzipped`` gives it gzip-encoded."""
        snapshot = self._latest()
        if snapshot is None:
            body = b""
            if self._process_registry is not None:
                body = generate_latest(self._process_registry)
            return gzip.compress(body, compresslevel=1) if gzipped else body
        snapshot, plain, packed = self._rendered_for(snapshot)
        if self._monotonic is not None:
            age = max(0.0, self._monotonic() - snapshot.monotonic_seconds)
        else:
            age = max(0.0, self._wall_clock() - snapshot.unix_seconds)
        if gzipped:
            return packed + stored_gzip_member(_age_lines(age))
        return plain + _age_lines(age)


def _age_head() -> bytes:
    definition = next(m for m in METRICS if m.name == "rooftop_snapshot_age_seconds")
    return (
        f"# HELP {definition.name} {definition.help}\n"
        f"# TYPE {definition.name} gauge\n"
        f"{definition.name} "
    ).encode()


_AGE_HEAD: Final = _age_head()


def _age_lines(age_seconds: float) -> bytes:
    return _AGE_HEAD + f"{age_seconds!r}\n".encode()


_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""RFC 1952: magic, deflate, no flags, no mtime, no extra flags, unknown OS."""


def stored_gzip_member(data: bytes) -> bytes:
    """``data`` (under 64 KiB) as a gzip member of one stored deflate block (RFC 1951 §3.2.4):
    what ``gzip.decompress`` reads back as ``data``, made without zlib's compressor. zlib lets
    the GIL go and takes it back, and a scrape's every wait for the GIL is behind the sampler
    and the other scrapes; the age line is a hundred bytes, nothing to compress."""
    size = len(data)
    if size > 0xFFFF:
        raise ValueError("a stored block holds at most 65535 bytes")
    block = struct.pack("<BHH", 1, size, size ^ 0xFFFF)  # BFINAL=1, BTYPE=00 (stored)
    trailer = struct.pack("<II", zlib.crc32(data), size)
    return _GZIP_HEADER + block + data + trailer
