"""Quantiles of an engine's latency histograms over rooftop's rate window.

An engine exports cumulative buckets ``(le, count)``. The increase of each bucket over the
window is a histogram of the requests in the window; its quantile is estimated as Prometheus'
``histogram_quantile`` does: find the bucket the rank falls in and interpolate linearly inside
it, the first bucket starting at 0, a rank in the ``+Inf`` bucket answering the highest finite
bound. A bucket that went down means the engine restarted: the window starts again from there.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

Buckets = tuple[tuple[float, float], ...]
"""Cumulative ``(upper bound, count)`` pairs, bounds ascending, ``+Inf`` last."""

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)
"""The quantiles rooftop exports (median, p90, p99: what vLLM's dashboards plot)."""


def histogram_quantile(quantile: float, buckets: Buckets) -> float | None:
    """The ``quantile`` (0-1) of a cumulative histogram; ``None`` when it holds no observation.

    Worked example: buckets ``(0.1, 10), (0.5, 30), (+Inf, 40)``, quantile 0.5: rank 20 falls in
    the second bucket (10 < 20 ≤ 30), so 0.1 + (0.5 - 0.1) x (20 - 10) / (30 - 10) = 0.3.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    if not buckets or buckets[-1][0] != math.inf:
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == math.inf:
                finite = [b for b, _ in buckets if b != math.inf]
                return finite[-1] if finite else None
            if count == lower_count:
                return bound
            if bound <= 0:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None


def bucket_increase(start: Buckets, end: Buckets) -> Buckets | None:
    """``end - start`` per bucket, or ``None`` when the layout changed or a bucket went down."""
    if [b for b, _ in start] != [b for b, _ in end]:
        return None
    increase = []
    for (bound, before), (_, after) in zip(start, end, strict=True):
        if after < before:
            return None
        increase.append((bound, after - before))
    return tuple(increase)


@dataclass
class WindowedHistogram:
    """Cumulative bucket samples over the last ``window_seconds``; quantiles of the window."""

    window_seconds: float
    _samples: deque[tuple[float, Buckets]] = field(default_factory=deque)

    def observe(self, at_seconds: float, buckets: Buckets | None) -> dict[float, float | None]:
        """Record a sample; the :data:`QUANTILES` of the window (``None`` each when unknown)."""
        if buckets is None:
            self._samples.clear()
            return dict.fromkeys(QUANTILES)
        if self._samples and at_seconds <= self._samples[-1][0]:
            return self.quantiles()
        if self._samples and bucket_increase(self._samples[-1][1], buckets) is None:
            self._samples.clear()  # reset or new layout: the window starts here
        self._samples.append((at_seconds, buckets))
        horizon = at_seconds - self.window_seconds
        while len(self._samples) > 2 and self._samples[1][0] <= horizon:
            self._samples.popleft()
        return self.quantiles()

    def quantiles(self) -> dict[float, float | None]:
        if len(self._samples) < 2:
            return dict.fromkeys(QUANTILES)
        window = bucket_increase(self._samples[0][1], self._samples[-1][1])
        if window is None:
            return dict.fromkeys(QUANTILES)
        return {q: histogram_quantile(q, window) for q in QUANTILES}

    def reset(self) -> None:
        self._samples.clear()
