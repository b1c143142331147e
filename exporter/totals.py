"""rooftop's own counters: monotonic totals that PromQL can window with ``rate()`` and
``increase()``, whatever rooftop's own rate window is.

The gauges (tokens/s over the last few seconds) serve the live view; a scrape every 15 s sees
only a third of a 5 s window. These totals add up every increase rooftop observed, so
``increase(rooftop_engine_decode_tokens_total[1d])`` is the day's tokens. A total never goes
down while rooftop runs; a restart of rooftop starts it again from 0, which ``rate()`` treats
as a counter reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CounterTotal:
    """The sum of a source counter's increases, reset-aware.

    An engine restart (its counter goes down) adds the new value, as Prometheus' ``rate()``
    counts it; a missing value (engine down) adds nothing and forgets the last value, so the
    next increase is counted from the first value after the gap, never across it.
    """

    total: float = 0.0
    _last: float | None = None

    def observe(self, value: float | None) -> float:
        """Take the source counter's current value; the total so far."""
        if value is None:
            self._last = None
            return self.total
        if self._last is not None:
            self.total += value - self._last if value >= self._last else value
        self._last = value
        return self.total

    def forget(self) -> None:
        """The source changed identity (another model): the next value starts a new run."""
        self._last = None


@dataclass
class AmountTotal:
    """A running sum of non-negative amounts (bytes moved in one cycle, seconds in a state)."""

    total: float = 0.0

    def add(self, amount: float | None) -> float:
        if amount is not None and amount > 0:
            self.total += amount
        return self.total


@dataclass
class StateSeconds:
    """Seconds spent in each verdict state, for ``rooftop_gpu_bound_seconds_total``."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, state: str | None, seconds: float) -> None:
        if state is not None and seconds > 0:
            self.seconds[state] = self.seconds.get(state, 0.0) + seconds
