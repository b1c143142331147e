"""Grafana's dashboard-linter rules, as tests over every generated dashboard JSON.

grafana/dashboard-linter (a Go tool) cannot be installed here, so its rules are written out
(``lint/rule_*.go`` there; the rule names are the linter's):

- ``template-datasource-rule``: a ``datasource`` variable of type ``datasource`` for Prometheus;
- ``panel-datasource-rule``: every panel and target takes its data source from that variable;
- ``panel-title-description-rule``: every panel has a title and a description;
- ``panel-units-rule``: every panel that shows numbers has a unit;
- ``target-rate-interval-rule``: every ``rate()``/``irate()``/``increase()`` range is
  ``$__rate_interval``;
- ``target-counter-agg-rule``: a counter (``_total``) is only used through ``rate``/``increase``;
- ``target-job-rule`` / ``target-instance-rule``: every selector of an exporter series filters
  ``job`` and ``instance`` by the template variables (rooftop's are ``$rooftop_job`` and
  ``$rooftop_instance``: dashboards/common.py says why they are not ``$job``/``$instance``),
  except that recording rules aggregated across instances (``model:``, ``pod:``) keep only job;
- ``template-job-rule`` / ``template-instance-rule``: those variables exist, multi-valued with
  an "All" option.

Row panels (``type: row``) hold no query and are exempt, as in the linter.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rooftop.dashboards.common import INSTANCE_VAR, JOB_VAR
from rooftop.dashboards.generate import generated_files

ACROSS_INSTANCES = re.compile(r"^(model|pod):")
"""Recording rules that aggregate per model or per pod, across instances: no instance label
is left to filter (prometheus_rules.MODEL_BY, POD_BY), so only the job rule applies."""
NUMERIC_PANELS = {"timeseries", "stat", "gauge", "bargauge", "xychart", "table", "barchart"}
"""Panel types whose values are numbers (state timelines show mapped states, no unit)."""
SELECTOR = re.compile(r"(rooftop_[a-z0-9_]+|(?:model|pod):rooftop_[a-z0-9_:]+)\s*\{([^}]*)\}")
RANGE_FUNCTION = re.compile(r"\b(rate|irate|increase|delta|deriv)\s*\(")


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        name: json.loads(text) for name, text in generated_files().items() if name.endswith(".json")
    }


def _panels() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, dashboard in _dashboards().items():
        for panel in dashboard["panels"]:
            found.append((name, panel))
            found.extend((name, inner) for inner in panel.get("panels", []))
    return [(name, p) for name, p in found if p.get("type") != "row"]


PANELS = _panels()
TARGETS = [
    (name, panel["title"], target) for name, panel in PANELS for target in panel.get("targets", [])
]


def _ids(items: list[tuple[str, Any]]) -> list[str]:
    return [f"{name}:{item['title']}" for name, item in items]


def test_every_dashboard_has_the_datasource_job_and_instance_variables() -> None:
    for name, dashboard in _dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        datasource = variables.get("datasource")
        assert datasource is not None, name
        assert datasource["type"] == "datasource" and datasource["query"] == "prometheus", name
        for var in (JOB_VAR, INSTANCE_VAR):
            assert var in variables, f"{name}: no ${var} variable"
            assert variables[var]["type"] == "query", (name, var)
            assert variables[var].get("multi") and variables[var].get("includeAll"), (name, var)
            assert variables[var]["datasource"]["uid"] == "${datasource}", (name, var)


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=_ids(PANELS))
def test_panel_datasource_title_description(name: str, panel: dict[str, Any]) -> None:
    assert panel.get("title", "").strip(), "panel without a title"
    assert panel.get("description", "").strip(), f"{panel['title']}: no description"
    assert panel.get("datasource", {}).get("uid") == "${datasource}", panel["title"]
    assert panel.get("targets"), f"{panel['title']}: no query"
    for target in panel["targets"]:
        assert target.get("datasource", {}).get("uid") == "${datasource}", panel["title"]


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=_ids(PANELS))
def test_panels_showing_numbers_have_units(name: str, panel: dict[str, Any]) -> None:
    if panel["type"] not in NUMERIC_PANELS:
        return
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    assert unit, f"{panel['title']}: no unit in fieldConfig.defaults"


@pytest.mark.parametrize(
    ("name", "title", "target"), TARGETS, ids=[f"{n}:{t}:{x['refId']}" for n, t, x in TARGETS]
)
def test_targets_follow_the_linter_rules(name: str, title: str, target: dict[str, Any]) -> None:
    expr = target["expr"]
    # target-rate-interval-rule: every range function over $__rate_interval.
    for match in RANGE_FUNCTION.finditer(expr):
        window = re.match(r"[^\[]*\[([^\]]*)\]", expr[match.end() :])
        assert window, f"{match.group(1)}() without a range in {expr}"
        assert window.group(1) == "$__rate_interval", (
            f"{title}: {match.group(1)}[{window.group(1)}]"
        )
    # target-counter-agg-rule: a counter appears only inside rate()/increase().
    for counter in re.finditer(r"\b(rooftop_[a-z0-9_]+_total)\b", expr):
        before = expr[: counter.start()]
        assert re.search(r"\b(rate|irate|increase)\s*\(\s*$", before), (
            f"{title}: counter {counter.group(1)} not aggregated with rate/increase: {expr}"
        )
    # target-job-rule / target-instance-rule.
    selectors = SELECTOR.findall(expr)
    assert selectors, f"{title}: no rooftop selector in {expr}"
    for metric, matchers in selectors:
        assert f'job=~"${JOB_VAR}"' in matchers, f"{title}: {metric} without job=~$rooftop_job"
        if ACROSS_INSTANCES.match(metric):
            continue
        assert f'instance=~"${INSTANCE_VAR}"' in matchers, (
            f"{title}: {metric} without instance=~${INSTANCE_VAR}"
        )


def test_the_roofline_xy_chart_has_the_11_6_schema_and_log_axes() -> None:
    """The XY chart of Grafana 11 (the ``mapping``/``series`` options, not 10.x's ``dims`` and
    ``seriesMapping``), as the SDK's 11.6 models read and write it; both axes log10: the y
    fields through the defaults, the x field (``intensity``) by inheriting them."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import xychart as xm

    charts = [p for _, p in PANELS if p["type"] == "xychart"]
    assert charts, "no XY chart"
    for chart in charts:
        options = chart["options"]
        assert chart["pluginVersion"].startswith("11.6")
        assert not {"dims", "seriesMapping"} & set(options), options.keys()
        assert options["mapping"] == "manual"
        parsed = xm.Options.from_json(options)
        again = json.loads(json.dumps(parsed, cls=JSONEncoder))
        assert again["series"] == options["series"], "the SDK's model drops or changes a field"
        assert set(options) <= set(again), set(options) - set(again)
        for series in options["series"]:
            assert series["frame"]["matcher"]["id"] == "byIndex"
            assert series["x"]["matcher"] == {"id": "byName", "options": "intensity"}
            assert series["y"]["matcher"]["id"] == "byName"
        defaults = chart["fieldConfig"]["defaults"]
        custom = xm.FieldConfig.from_json(defaults["custom"])
        known = set(json.loads(json.dumps(custom, cls=JSONEncoder)))
        assert set(defaults["custom"]) <= known, set(defaults["custom"]) - known
        assert defaults["custom"]["scaleDistribution"] == {"type": "log", "log": 10}
        for override in chart["fieldConfig"]["overrides"]:
            ids = {p["id"] for p in override["properties"]}
            assert "custom.scaleDistribution" not in ids, "an axis is overridden off log10"
