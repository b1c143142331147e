"""Latency quantiles from an engine's buckets, as Prometheus' histogram_quantile computes them."""

from __future__ import annotations

import math

import pytest

from rooftop.exporter.histograms import (
    WindowedHistogram,
    bucket_increase,
    histogram_quantile,
)
from rooftop.exporter.sources.exposition import histogram_buckets, parse_exposition

INF = math.inf


@pytest.mark.parametrize(
    ("quantile", "buckets", "expected"),
    [
        # rank 20 in (0.1, 0.5]: 0.1 + 0.4 x (20 - 10) / (30 - 10) = 0.3
        (0.5, ((0.1, 10.0), (0.5, 30.0), (INF, 40.0)), 0.3),
        # rank 5 in the first bucket, which starts at 0: 0.1 x 5 / 10 = 0.05
        (0.125, ((0.1, 10.0), (0.5, 30.0), (INF, 40.0)), 0.05),
        # rank 39.6 in the +Inf bucket: the highest finite bound
        (0.99, ((0.1, 10.0), (0.5, 30.0), (INF, 40.0)), 0.5),
        (0.5, ((0.1, 0.0), (INF, 0.0)), None),  # no observation
        (0.5, ((0.1, 3.0),), None),  # no +Inf bucket: not a histogram
    ],
)
def test_histogram_quantile(
    quantile: float, buckets: tuple[tuple[float, float], ...], expected: float | None
) -> None:
    got = histogram_quantile(quantile, buckets)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_window_uses_the_increase_and_restarts_after_a_reset() -> None:
    window = WindowedHistogram(window_seconds=10.0)
    assert window.observe(0.0, ((0.1, 100.0), (1.0, 100.0), (INF, 100.0)))[0.5] is None
    # 10 new requests, all between 0.1 and 1 s: the old 100 fast ones are outside the window.
    q = window.observe(1.0, ((0.1, 100.0), (1.0, 110.0), (INF, 110.0)))
    assert q[0.5] == pytest.approx(0.1 + 0.9 * 5 / 10)
    # The engine restarted (buckets went down): no quantile until two samples again.
    assert window.observe(2.0, ((0.1, 1.0), (1.0, 1.0), (INF, 1.0)))[0.5] is None
    assert bucket_increase(((0.1, 2.0), (INF, 2.0)), ((0.2, 2.0), (INF, 2.0))) is None


def test_buckets_summed_over_series_and_replicas_collapsed() -> None:
    text = """# TYPE x histogram
x_bucket{engine="0",tp_rank="0",le="0.1"} 1
x_bucket{engine="0",tp_rank="0",le="+Inf"} 2
x_bucket{engine="0",tp_rank="1",le="0.1"} 1
x_bucket{engine="0",tp_rank="1",le="+Inf"} 2
x_bucket{engine="1",le="0.5"} 4
x_bucket{engine="1",le="+Inf"} 5
x_sum{engine="0"} 1
x_count{engine="0"} 2
"""
    buckets = histogram_buckets(parse_exposition(text)["x"])
    # engine 0 (one tp replica) + engine 1 on the union of bounds
    assert buckets == ((0.1, 1.0), (0.5, 5.0), (INF, 7.0))
