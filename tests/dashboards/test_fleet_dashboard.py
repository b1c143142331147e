"""The fleet dashboard, offline: it queries fleet rules and shipped per-GPU series that exist,
with the labels they have, and its roofline chart is wired as Grafana needs. Every query is
answered from a real VictoriaMetrics store in tests/live/test_fleet_simulation.py."""

from __future__ import annotations

import json
import re
from typing import Any

from rooftop.dashboards.fleet import (
    FLEET_ROOFLINE_FIELDS,
    FLEET_UID,
    FLEET_VARIABLE_NAMES,
    fleet_roofline_queries,
)
from rooftop.dashboards.fleet_rules import FleetRuleParameters, fleet_recording_rules
from rooftop.dashboards.generate import generated_files
from rooftop.exporter.metrics import METRICS
from tests.dashboards.test_dashboards import BUILTIN_VARIABLES, MATCHER, SELECTOR

CLUSTER = FleetRuleParameters().cluster_label
SCRAPE_LABELS = {"job", "instance", "namespace", "pod", CLUSTER}


def _rule_labels() -> dict[str, set[str]]:
    labels: dict[str, set[str]] = {}
    for rule in fleet_recording_rules():
        by = re.search(r"^sum by \(([^)]*)\)|^count by \(([^)]*)\)", rule.expr)
        found = set(rule.labels)
        if by:
            found |= {label.strip() for label in (by.group(1) or by.group(2)).split(",")}
            if "state)" in rule.expr.split("\n")[0]:
                found.add("state")
        elif rule.record.startswith("target:"):
            found |= SCRAPE_LABELS | {"gpu", "uuid", "engine", "model"}
        else:  # the quantiles: histogram_quantile over the buckets keeps their labels
            level = rule.record.split(":")[0]
            found |= {CLUSTER, "model"} if level == "cluster_model" else {CLUSTER}
        labels.setdefault(rule.record, set()).update(found)
    return labels


KNOWN = {m.name: set(m.labels) | SCRAPE_LABELS for m in METRICS} | _rule_labels()


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(generated_files()[f"{FLEET_UID}.json"])
    return dashboard


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_every_query_names_a_known_series_and_label() -> None:
    exprs = [(p["title"], t["expr"]) for p in _panels() for t in p["targets"]]
    assert len(exprs) >= 15
    for title, expr in exprs:
        for metric, matchers in SELECTOR.findall(expr):
            assert metric in KNOWN, f"{title}: unknown series {metric}"
            for label in MATCHER.findall(matchers):
                assert label in KNOWN[metric], f"{title}: {metric} has no label {label!r}"


def test_aggregate_panels_read_only_fleet_rules() -> None:
    """Only the two per-GPU views (worst GPUs, roofline) read raw rooftop series."""
    per_gpu = {"Worst 10 GPUs by decode speed of light", "Roofline: every GPU, normalised"}
    for panel in _panels():
        for target in panel["targets"]:
            raw = {m for m, _ in SELECTOR.findall(target["expr"]) if ":" not in m}
            if panel["title"] not in per_gpu:
                assert not raw, f"{panel['title']} reads raw series {raw}"


def test_variables_and_datasource() -> None:
    dashboard = _dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    assert defined == set(FLEET_VARIABLE_NAMES)
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= defined | BUILTIN_VARIABLES, used - defined


def test_the_panels_the_issue_names_are_there() -> None:
    titles = {p["title"] for p in _panels()}
    assert {"Verdict mix", "Per model and cluster", "Roofline: every GPU, normalised"} <= titles
    assert any(t.startswith("Worst ") for t in titles)


def test_roofline_is_one_merged_frame_keyed_by_point() -> None:
    (chart,) = [p for p in _panels() if p["type"] == "xychart"]
    assert {t["refId"] for t in chart["targets"]} == {
        k.removeprefix("Value #") for k in FLEET_ROOFLINE_FIELDS
    }
    assert [t["id"] for t in chart["transformations"]][:2] == ["merge", "organize"]
    assert chart["transformations"][1]["options"]["renameByName"] == FLEET_ROOFLINE_FIELDS
    for expr in fleet_roofline_queries().values():
        assert "max by (point)" in expr
    names = set(FLEET_ROOFLINE_FIELDS.values())
    for series in chart["options"]["series"]:
        assert series["x"]["matcher"]["options"] in names
        assert series["y"]["matcher"]["options"] in names
    assert chart["pluginVersion"] >= "11.1"
