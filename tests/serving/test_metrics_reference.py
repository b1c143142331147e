"""The README's metric reference is generated from the one metric table."""

from __future__ import annotations

import re

from rooftop.exporter.metrics import METRICS, metric_reference_markdown
from tests.conftest import REPO_ROOT


def test_readme_metric_table_is_the_generated_one() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert metric_reference_markdown() in readme, (
        "README's metric table is out of date: paste `python -m rooftop.exporter.metrics` into it"
    )


def test_metric_names_follow_the_conventions() -> None:
    names = [metric.name for metric in METRICS]
    assert len(names) == len(set(names))
    for metric in METRICS:
        assert re.fullmatch(r"rooftop_[a-z0-9_]+", metric.name), metric.name
        assert not metric.name.endswith("_total") or metric.type == "counter", metric.name
        assert metric.type != "info" or metric.name.endswith("_info"), metric.name
        if metric.unit == "ratio":
            assert metric.name.endswith("_ratio"), metric.name
        for label in metric.labels:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", label), (metric.name, label)
        assert "hostname" not in metric.labels and "pid" not in metric.labels


def test_headline_names_exist() -> None:
    names = {metric.name for metric in METRICS}
    for headline in (
        "rooftop_gpu_bound",
        "rooftop_decode_speed_of_light_ratio",
        "rooftop_gpu_ridge_point_flops_per_byte",
        "rooftop_decode_bytes_per_token",
        "rooftop_decode_observed_bytes_per_token",
        "rooftop_arithmetic_intensity_flops_per_byte",
        "rooftop_source_up",
    ):
        assert headline in names
