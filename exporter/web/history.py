"""A bounded ring of recent snapshot points: the landing page's trail and verdict timeline.

The sampler publishes one snapshot per cycle; :meth:`SnapshotHistory.record` keeps from each
only what the page draws from the past (per target: the verdict state and the two operating
points), for ``window_seconds`` and at most ``max_entries`` snapshots of at most
``max_targets`` targets each, so its memory is bounded whatever the interval or the node's
size: measured by ``benchmarks/landing.py``, 600 entries hold 0.33 MB for one GPU and 9 MB
for 64 GPUs (the default cap of 900 entries is reached only below a 0.67 s interval).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from rooftop.exporter.snapshot import Snapshot, TargetView

TargetKey = tuple[str, str, str, str]
"""``(gpu, uuid, engine, model)``, the labels of a roofline target."""

DEFAULT_WINDOW_SECONDS = 600.0
DEFAULT_MAX_ENTRIES = 900
DEFAULT_MAX_TARGETS = 64


def target_key(target: TargetView) -> TargetKey:
    return (target.gpu, target.uuid, target.engine, target.model)


@dataclass(frozen=True)
class PastPoint:
    """One target in one past snapshot. Intensities FLOP/byte, FLOP/s; ``None``: not known."""

    state: str
    decode_intensity: float | None = None
    decode_flops_per_second: float | None = None
    prefill_intensity: float | None = None
    prefill_flops_per_second: float | None = None
    decode_speed_of_light_ratio: float | None = None


@dataclass(frozen=True)
class HistoryEntry:
    unix_seconds: float
    targets: dict[TargetKey, PastPoint]


def past_point(target: TargetView) -> PastPoint:
    point = target.point
    state = target.verdict.state if target.verdict is not None else "unknown"
    if point is None:
        return PastPoint(state)
    return PastPoint(
        state=state,
        decode_intensity=point.decode_arithmetic_intensity,
        decode_flops_per_second=point.decode_achieved_flops_per_second,
        prefill_intensity=point.prefill_arithmetic_intensity,
        prefill_flops_per_second=point.prefill_achieved_flops_per_second,
        decode_speed_of_light_ratio=point.decode_speed_of_light_ratio,
    )


class SnapshotHistory:
    """Thread-safe: the sampler thread records, HTTP workers read."""

    def __init__(
        self,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_targets: int = DEFAULT_MAX_TARGETS,
    ) -> None:
        if window_seconds <= 0 or max_entries < 1 or max_targets < 1:
            raise ValueError(
                "SnapshotHistory needs window_seconds > 0, max_entries >= 1 and max_targets >= 1"
            )
        self.window_seconds = window_seconds
        self.max_targets = max_targets
        self._entries: deque[HistoryEntry] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def record(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot``'s points; forget entries older than the window (or out of order:
        a clock stepped back restarts the ring rather than drawing time backwards)."""
        targets = {target_key(t): past_point(t) for t in snapshot.targets[: self.max_targets]}
        entry = HistoryEntry(snapshot.unix_seconds, targets)
        with self._lock:
            if self._entries and self._entries[-1].unix_seconds > entry.unix_seconds:
                self._entries.clear()
            self._entries.append(entry)
            oldest = entry.unix_seconds - self.window_seconds
            while self._entries and self._entries[0].unix_seconds < oldest:
                self._entries.popleft()

    def entries(self) -> tuple[HistoryEntry, ...]:
        """Oldest first."""
        with self._lock:
            return tuple(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
