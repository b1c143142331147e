"""The generated Grafana dashboards: current, deterministic, well-formed, and querying real metrics.

No Grafana here (none installs from PyPI, npm or Debian), so what Grafana would do with the
JSON is checked against its source's rules: the XY chart's ``pluginVersion`` trap, the
24-column grid, the merge → organize field names the roofline's series matchers rely on.
Every PromQL expression is evaluated against a real Prometheus in
tests/live/test_prometheus_live.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rooftop.dashboards.common import (
    OVERVIEW_UID,
    ROOFLINE_UID,
    VARIABLE_NAMES,
    substitute_variables,
)
from rooftop.dashboards.generate import (
    DASHBOARDS,
    PACKAGE_DIR,
    dashboard_json,
    generated_files,
    stale_files,
    write_generated,
)
from rooftop.dashboards.panels import ROOFLINE_FIELDS
from rooftop.dashboards.prometheus_rules import recording_rules, rules_document
from rooftop.exporter.metrics import METRICS
from tests.conftest import REPO_ROOT

TARGET_LABELS = {"job", "instance", "namespace", "pod"}
METRIC_LABELS: dict[str, set[str]] = {m.name: set(m.labels) | TARGET_LABELS for m in METRICS}
BUILTIN_VARIABLES = {
    "__rate_interval",
    "__interval",
    "__range",
    "__all_variables",
    "__url_time_range",
}
VLLM_VARIABLES_WITH_OTHER_MEANINGS = {"job", "instance", "engine"}


def _recording_labels() -> dict[str, set[str]]:
    labels = {}
    for rule in recording_rules():
        by = re.search(r"by \(([^)]*)\)", rule.expr)
        assert by, rule.expr
        labels[rule.record] = {label.strip() for label in by.group(1).split(",")}
    return labels


KNOWN_SERIES = {**METRIC_LABELS, **_recording_labels()}


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        name: json.loads(text) for name, text in generated_files().items() if name.endswith(".json")
    }


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) for every query of every panel."""
    found = []
    for name, dashboard in _dashboards().items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                found.append((name, panel["title"], target["expr"]))
    return found


# A selector: a metric or recording-rule name followed by its label matchers.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
BARE_METRIC = re.compile(
    r"(?<![$\w:])(rooftop_[a-z0-9_]+|(?:model|pod):rooftop_[a-z0-9_]+:[a-z0-9_]+)\b"
)


def test_committed_files_match_the_generator() -> None:
    stale = stale_files()
    assert stale == [], f"regenerate with `python -m rooftop.dashboards`: {stale}"


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()
    for name, build in DASHBOARDS.items():
        assert dashboard_json(build()) == (PACKAGE_DIR / name).read_text(encoding="utf-8")


def test_check_flag_reports_missing_and_stale_files(tmp_path: Path) -> None:
    check = [sys.executable, "-m", "rooftop.dashboards", "--check", "--output-dir", str(tmp_path)]
    missing = subprocess.run(check, capture_output=True, text=True, cwd=REPO_ROOT)
    assert missing.returncode == 1
    assert "rooftop-roofline.json" in missing.stdout
    assert list(tmp_path.iterdir()) == [], "--check must not write"

    write_generated(tmp_path)
    assert subprocess.run(check, capture_output=True, cwd=REPO_ROOT).returncode == 0

    (tmp_path / "rules" / "rooftop.rules.yaml").write_text("groups: []\n")
    stale = subprocess.run(check, capture_output=True, text=True, cwd=REPO_ROOT)
    assert stale.returncode == 1
    assert "rooftop.rules.yaml" in stale.stdout


def test_rooftop_dashboards_command_writes_the_same_files(tmp_path: Path) -> None:
    from rooftop.exporter.cli import main

    assert main(["dashboards", "--output-dir", str(tmp_path)]) == 0
    for relative, text in generated_files().items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text
    assert main(["dashboards", "--check", "--output-dir", str(tmp_path)]) == 0


def test_uids_titles_and_panel_ids_are_stable_and_unique() -> None:
    dashboards = _dashboards()
    assert {d["uid"] for d in dashboards.values()} == {ROOFLINE_UID, OVERVIEW_UID}
    for name, dashboard in dashboards.items():
        assert name == f"{dashboard['uid']}.json"
        ids = [panel["id"] for panel in _panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        assert all(isinstance(i, int) for i in ids)


def test_panels_fit_the_grid_without_overlapping() -> None:
    for name, dashboard in _dashboards().items():
        boxes = []
        for panel in dashboard["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{name}: {panel['title']} {pos}"
            assert pos["h"] >= 1
            boxes.append((panel["title"], pos))
        for i, (title_a, a) in enumerate(boxes):
            for title_b, b in boxes[i + 1 :]:
                overlap = (
                    a["x"] < b["x"] + b["w"]
                    and b["x"] < a["x"] + a["w"]
                    and a["y"] < b["y"] + b["h"]
                    and b["y"] < a["y"] + a["h"]
                )
                assert not overlap, f"{name}: {title_a} {a} overlaps {title_b} {b}"


def test_xy_charts_carry_plugin_version_and_match_the_merged_fields() -> None:
    charts = [
        panel
        for dashboard in _dashboards().values()
        for panel in _panels(dashboard)
        if panel["type"] == "xychart"
    ]
    assert charts, "the roofline dashboard must have an XY chart"
    renamed = set(ROOFLINE_FIELDS.values())
    for chart in charts:
        # Grafana migrates v1 options when pluginVersion is absent or < 11.1 (grafana#125371).
        major, minor = (int(part) for part in chart["pluginVersion"].split(".")[:2])
        assert (major, minor) >= (11, 1)
        assert chart["options"]["mapping"] == "manual"
        refs = {target["refId"] for target in chart["targets"]}
        assert {key.removeprefix("Value #") for key in ROOFLINE_FIELDS} == refs
        assert all(target["format"] == "table" and target["instant"] for target in chart["targets"])
        transformations = [t["id"] for t in chart["transformations"]]
        assert transformations[:2] == ["merge", "organize"]
        assert chart["transformations"][1]["options"]["renameByName"] == ROOFLINE_FIELDS
        for series in chart["options"]["series"]:
            # Grafana's XY chart matches frames only byIndex; the merge leaves one frame.
            assert series["frame"]["matcher"] == {"id": "byIndex", "options": 0}
            assert series["x"]["matcher"]["options"] in renamed
            assert series["y"]["matcher"]["options"] in renamed
        scale = chart["fieldConfig"]["defaults"]["custom"]["scaleDistribution"]
        assert scale == {"log": 10, "type": "log"}, "both axes must be log10"


def test_roofline_queries_share_the_merge_key() -> None:
    """Each roofline query aggregates to (instance, point) so merge joins them row by row."""
    chart = next(
        panel
        for panel in _panels(_dashboards()[f"{ROOFLINE_UID}.json"])
        if panel["type"] == "xychart"
    )
    for target in chart["targets"]:
        assert "max by (instance, point)" in target["expr"], target["refId"]


def test_roofline_row_repeats_per_gpu() -> None:
    for dashboard in _dashboards().values():
        rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
        repeated = [row for row in rows if row.get("repeat")]
        assert [row["repeat"] for row in repeated] == ["gpu"]
        assert "$gpu" in repeated[0]["title"]


def test_every_query_names_real_metrics_and_labels() -> None:
    exprs = _exprs()
    assert len(exprs) > 30
    for name, title, expr in exprs:
        selectors = SELECTOR.findall(expr)
        assert selectors, f"{name} / {title}: no selector in {expr!r}"
        for metric, matchers in selectors:
            assert metric in KNOWN_SERIES, f"{name} / {title}: unknown series {metric}"
            for label in MATCHER.findall(matchers):
                assert label in KNOWN_SERIES[metric], (
                    f"{name} / {title}: {metric} has no label {label!r}"
                )
        for metric in BARE_METRIC.findall(expr):
            assert metric in KNOWN_SERIES, f"{name} / {title}: unknown series {metric}"


def test_rules_name_real_metrics_and_labels() -> None:
    for group in rules_document()["groups"]:
        for rule in group["rules"]:
            for metric, matchers in SELECTOR.findall(rule["expr"]):
                assert metric in METRIC_LABELS, f"{rule}: unknown metric {metric}"
                for label in MATCHER.findall(matchers):
                    assert label in METRIC_LABELS[metric], f"{metric} has no label {label}"
            for metric in BARE_METRIC.findall(rule["expr"]):
                assert metric in METRIC_LABELS, f"{rule}: unknown metric {metric}"


def test_queries_use_the_datasource_variable_and_defined_variables() -> None:
    for name, dashboard in _dashboards().items():
        defined = {variable["name"] for variable in dashboard["templating"]["list"]}
        assert defined == set(VARIABLE_NAMES)
        for panel in _panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
                assert used <= defined | BUILTIN_VARIABLES, f"{name}: {used - defined}"


def test_variables_and_links_join_vllm_dashboards_without_clobbering_their_filters() -> None:
    for dashboard in _dashboards().values():
        assert {"rooftop", "vllm"} <= set(dashboard["tags"])
        by_tag = {tuple(link["tags"]): link for link in dashboard["links"]}
        for tag in ("rooftop", "vllm"):
            link = by_tag[(tag,)]
            assert link["type"] == "dashboards"
            assert link["includeVars"] and link["keepTime"]
        names = {variable["name"] for variable in dashboard["templating"]["list"]}
        # vLLM's dashboards filter on job, instance and engine with their own meanings;
        # includeVars must not hand them rooftop's values.
        assert not names & VLLM_VARIABLES_WITH_OTHER_MEANINGS
        assert {"datasource", "model_name"} <= names
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["includeAll"] and variable["allValue"] == ".*"


def test_dashboards_link_to_each_other_from_panels() -> None:
    dashboards = _dashboards()
    for name, other in ((ROOFLINE_UID, OVERVIEW_UID), (OVERVIEW_UID, ROOFLINE_UID)):
        urls = [
            link["url"]
            for panel in _panels(dashboards[f"{name}.json"])
            for link in panel.get("links", [])
        ]
        assert any(url.startswith(f"/d/{other}?") and "__all_variables" in url for url in urls)


def test_overview_uses_the_recording_rules() -> None:
    overview = json.dumps(_dashboards()[f"{OVERVIEW_UID}.json"])
    used = {rule.record for rule in recording_rules() if rule.record in overview}
    model_rules = {rule.record for rule in recording_rules() if rule.record.startswith("model:")}
    assert model_rules <= used, f"per-model table lacks {model_rules - used}"
    assert "pod:rooftop_decode_speed_of_light_ratio:avg" in used


def test_dashboards_round_trip_through_the_sdk() -> None:
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    plugins.register_default_plugins()
    for name, text in generated_files().items():
        if not name.endswith(".json"):
            continue
        model = Dashboard.from_json(json.loads(text))
        assert model.uid == json.loads(text)["uid"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('rate(x{gpu=~"$gpu"}[$__rate_interval])', 'rate(x{gpu=~".*"}[1m])'),
        ('x{job=~"${rooftop_job}", pod=~"$pod"}', 'x{job=~".*", pod=~".*"}'),
        ('x{a=~"${model_name:regex}"}[$__range]', 'x{a=~".*"}[5m]'),
        ("no variables", "no variables"),
    ],
)
def test_substitute_variables(expr: str, expected: str) -> None:
    assert substitute_variables(expr) == expected
