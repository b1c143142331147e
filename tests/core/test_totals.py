"""rooftop's own counters never go down, count across engine restarts, never across gaps."""

from __future__ import annotations

from rooftop.exporter.totals import AmountTotal, CounterTotal, StateSeconds


def test_counter_total_is_reset_aware_and_skips_gaps() -> None:
    total = CounterTotal()
    assert total.observe(100.0) == 0.0  # the first value only anchors
    assert total.observe(150.0) == 50.0
    assert total.observe(20.0) == 70.0  # the engine restarted: +20 counted from 0
    assert total.observe(None) == 70.0  # engine down: nothing added
    assert total.observe(500.0) == 70.0  # first value after the gap only anchors
    assert total.observe(510.0) == 80.0
    total.forget()
    assert total.observe(5.0) == 80.0


def test_amounts_and_state_seconds() -> None:
    moved = AmountTotal()
    moved.add(3.0)
    moved.add(None)
    moved.add(-1.0)
    assert moved.add(2.0) == 5.0
    states = StateSeconds()
    states.add("memory", 1.0)
    states.add("memory", 0.5)
    states.add(None, 1.0)
    states.add("idle", 1.0)
    assert states.seconds == {"memory": 1.5, "idle": 1.0}
