"""Windowed, reset-aware counter rates (exporter.rates)."""

from __future__ import annotations

import pytest

from rooftop.exporter.rates import RatioOfCounters, WindowedCounter, counter_increase


def test_first_sample_has_no_rate_second_gives_increase_over_elapsed() -> None:
    counter = WindowedCounter(window_seconds=10)
    assert counter.observe(100.0, 1000.0) is None
    # 1000 -> 1300 over 2 s: 150 /s.
    assert counter.observe(102.0, 1300.0) == pytest.approx(150.0)


def test_steady_counter_over_several_samples() -> None:
    counter = WindowedCounter(window_seconds=10)
    for step in range(6):
        rate = counter.observe(float(step), 50.0 * step)
    assert rate == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # 100 -> 160 (+60), reset to 20 (+20, the new value, as Prometheus' rate() counts it),
        # 20 -> 80 (+60): 140 over 3 s.
        ((100.0, 160.0, 20.0, 80.0), 140.0 / 3),
        # Reset to 0 then nothing: +10, +0 over 2 s.
        ((0.0, 10.0, 0.0), 10.0 / 2),
        # A counter that only goes down (repeated restarts): each new value counts.
        ((500.0, 30.0, 10.0), (30.0 + 10.0) / 2),
    ],
)
def test_reset_counts_new_value_and_is_never_negative(
    values: tuple[float, ...], expected: float
) -> None:
    counter = WindowedCounter(window_seconds=60)
    rate = None
    for at, value in enumerate(values):
        rate = counter.observe(float(at), value)
    assert rate is not None
    assert rate >= 0
    assert rate == pytest.approx(expected)


def test_window_trims_old_samples_but_keeps_two() -> None:
    counter = WindowedCounter(window_seconds=2)
    # 10 /s for 10 s, then 100 /s: once the window holds only the fast part the rate is 100.
    value = 0.0
    for at in range(11):
        value = 10.0 * at
        counter.observe(float(at), value)
    assert counter.rate() == pytest.approx(10.0)
    for at in range(11, 14):
        value += 100.0
        rate = counter.observe(float(at), value)
    # At 13 s the horizon is 11 s: the sample at 10 s goes (the one at 11 s is the left edge),
    # so the window holds 11-13 s, all at 100 /s.
    assert rate == pytest.approx(100.0)


def test_window_shorter_than_interval_still_gives_a_rate_from_two_samples() -> None:
    counter = WindowedCounter(window_seconds=0.5)
    counter.observe(0.0, 0.0)
    assert counter.observe(5.0, 50.0) == pytest.approx(10.0)
    assert counter.observe(10.0, 150.0) == pytest.approx(20.0)


def test_none_clears_history() -> None:
    counter = WindowedCounter(window_seconds=60)
    counter.observe(0.0, 0.0)
    counter.observe(1.0, 100.0)
    assert counter.observe(2.0, None) is None
    # The next rate must not span the gap: a single sample after the gap has no rate.
    assert counter.observe(3.0, 1000.0) is None
    assert counter.observe(4.0, 1010.0) == pytest.approx(10.0)


@pytest.mark.parametrize("at", [1.0, 0.5])
def test_clock_that_does_not_advance_adds_nothing(at: float) -> None:
    counter = WindowedCounter(window_seconds=60)
    counter.observe(0.0, 0.0)
    assert counter.observe(1.0, 10.0) == pytest.approx(10.0)
    # Same or earlier timestamp with a new value: ignored, the rate stands, never a division by 0.
    assert counter.observe(at, 99999.0) == pytest.approx(10.0)
    assert counter.observe(2.0, 20.0) == pytest.approx(10.0)


def test_same_timestamp_twice_at_start_gives_no_rate() -> None:
    counter = WindowedCounter(window_seconds=60)
    assert counter.observe(5.0, 1.0) is None
    assert counter.observe(5.0, 2.0) is None


def test_reset_method_forgets_everything() -> None:
    counter = WindowedCounter(window_seconds=60)
    counter.observe(0.0, 0.0)
    counter.observe(1.0, 5.0)
    counter.reset()
    assert counter.rate() is None


def test_ratio_of_counters_is_mean_of_a_histogram_over_the_window() -> None:
    # Inter-token latency: sum 0.0 -> 0.5 s over count 0 -> 100 tokens: 5 ms per token.
    ratio = RatioOfCounters(window_seconds=60)
    assert ratio.observe(0.0, (0.0, 0.0)) is None
    assert ratio.observe(1.0, (0.5, 100.0)) == pytest.approx(0.005)


def test_ratio_of_counters_without_new_observations_is_none() -> None:
    ratio = RatioOfCounters(window_seconds=60)
    ratio.observe(0.0, (1.0, 10.0))
    # Count did not move: no tokens in the window, the mean is undefined.
    assert ratio.observe(1.0, (1.0, 10.0)) is None


def test_ratio_of_counters_none_clears_both() -> None:
    ratio = RatioOfCounters(window_seconds=60)
    ratio.observe(0.0, (0.0, 0.0))
    ratio.observe(1.0, (1.0, 100.0))
    assert ratio.observe(2.0, None) is None
    assert ratio.observe(3.0, (5.0, 200.0)) is None
    assert ratio.observe(4.0, (5.2, 300.0)) == pytest.approx(0.002)


@pytest.mark.parametrize(
    ("before", "after", "increase"),
    [
        (100.0, 160.0, 60.0),  # normal growth
        (100.0, 100.0, 0.0),
        (600.0, 100.0, 100.0),  # reset: counted from zero, never -500
        (600.0, 0.0, 0.0),
        (600.0, -5.0, 0.0),  # a negative read after a reset still never counts down
    ],
)
def test_counter_increase(before: float, after: float, increase: float) -> None:
    assert counter_increase(before, after) == increase
