"""The README's metric reference is generated from the one metric table."""

from __future__ import annotations

import re

from rooftop.classifiers.verdict import CAUSES
from rooftop.exporter.metrics import (
    LABELS,
    METRICS,
    metric_reference_markdown,
    metrics_doc_markdown,
)
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


def test_docs_metrics_is_the_generated_one() -> None:
    committed = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert committed == metrics_doc_markdown(), (
        "docs/metrics.md is out of date: run `python scripts/regenerate_reference.py`"
    )


def test_every_label_is_documented_and_bounded() -> None:
    used = {label for metric in METRICS for label in metric.labels}
    assert used <= set(LABELS), f"document these labels in LABELS: {sorted(used - set(LABELS))}"
    assert set(LABELS) <= used, f"LABELS documents unused labels: {sorted(set(LABELS) - used)}"
    for name, label in LABELS.items():
        assert label.meaning, name
        assert bool(label.values) != bool(label.one_per), f"{name}: a fixed set or one_per"
    # The verdict's sentence is never a label: it would be a new series for every number.
    (bound_info,) = (metric for metric in METRICS if metric.name == "rooftop_gpu_bound_info")
    assert "reason" not in bound_info.labels and "decided_by" in bound_info.labels
    assert LABELS["decided_by"].values == CAUSES


def test_docs_list_every_metric_with_its_labels_and_every_cause() -> None:
    doc = metrics_doc_markdown()
    for metric in METRICS:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        assert f"| `{metric.name}` |" in doc and labels in doc, metric.name
    for cause in CAUSES:
        assert f"| `{cause}` |" in doc
