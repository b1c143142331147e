"""Windowed, reset-aware rates from cumulative counters.

A counter that goes down is a reset (the engine restarted): the increase across the reset is the
new value, as Prometheus' ``rate()`` counts it, never a negative rate. A rate needs at least two
samples in the window; until then it is ``None``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def counter_increase(before: float, after: float) -> float:
    """Increase of a cumulative counter from ``before`` to ``after``. A decrease is a reset, so
    the increase is ``after`` (counted from zero), as in Prometheus' ``rate()``; never negative."""
    if after < before:
        return max(after, 0.0)
    return after - before


@dataclass
class WindowedCounter:
    """Samples ``(monotonic seconds, cumulative value)`` over the last ``window_seconds``."""

    window_seconds: float
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def observe(self, at_seconds: float, value: float | None) -> float | None:
        """Record a sample and return the rate per second over the window.

        ``value`` None (the engine stopped exporting it) clears the history, so a later rate
        never spans a gap in which the counter's meaning may have changed.
        """
        if value is None:
            self._samples.clear()
            return None
        if self._samples and at_seconds <= self._samples[-1][0]:
            # A clock that did not advance (or went back) gives no new information.
            return self.rate()
        self._samples.append((at_seconds, value))
        horizon = at_seconds - self.window_seconds
        while len(self._samples) > 2 and self._samples[1][0] <= horizon:
            self._samples.popleft()
        return self.rate()

    def rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        increase = 0.0
        previous = self._samples[0][1]
        for _, value in list(self._samples)[1:]:
            increase += counter_increase(previous, value)
            previous = value
        elapsed = self._samples[-1][0] - self._samples[0][0]
        return increase / elapsed if elapsed > 0 else None

    def previous_sample_seconds(self) -> float | None:
        """When the sample before the latest was taken, or None with fewer than two."""
        return self._samples[-2][0] if len(self._samples) >= 2 else None

    def span_seconds(self) -> float:
        """Seconds the current rate covers (first to last sample in the window); 0 before two
        samples."""
        if len(self._samples) < 2:
            return 0.0
        return self._samples[-1][0] - self._samples[0][0]

    def reset(self) -> None:
        self._samples.clear()


@dataclass
class RatioOfCounters:
    """Windowed ratio of two counters' increases, e.g. a histogram's sum over its count."""

    window_seconds: float
    _numerator: WindowedCounter = field(init=False)
    _denominator: WindowedCounter = field(init=False)

    def __post_init__(self) -> None:
        self._numerator = WindowedCounter(self.window_seconds)
        self._denominator = WindowedCounter(self.window_seconds)

    def observe(self, at_seconds: float, pair: tuple[float, float] | None) -> float | None:
        numerator = self._numerator.observe(at_seconds, None if pair is None else pair[0])
        denominator = self._denominator.observe(at_seconds, None if pair is None else pair[1])
        if numerator is None or denominator is None or denominator <= 0:
            return None
        return numerator / denominator


@dataclass
class WindowedMean:
    """Mean of a gauge's samples over the last ``window_seconds``.

    Token rates are averages over the rate window, so the batch and context they are compared
    with must be averaged over the same window: an instantaneous batch against a windowed rate
    gives nonsense at every change of load (a rate from batch 512 against the roof of batch 2).
    """

    window_seconds: float
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def observe(self, at_seconds: float, value: float | None) -> float | None:
        if value is None:
            self._samples.clear()
            return None
        if not self._samples or at_seconds > self._samples[-1][0]:
            self._samples.append((at_seconds, value))
        horizon = at_seconds - self.window_seconds
        while len(self._samples) > 1 and self._samples[0][0] < horizon:
            self._samples.popleft()
        return sum(sample for _, sample in self._samples) / len(self._samples)

    def reset(self) -> None:
        self._samples.clear()
