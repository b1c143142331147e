"""The fleet recording rules: names, portability, promtool check and the hand-worked unit tests.

The values are worked by hand in dashboards/rules/tests/rooftop.fleet.test.yaml (promtool runs
it here); this file checks what promtool cannot: the naming convention, that the rules stay in
the PromQL subset every ruler accepts, that parameters reach them, and that the unit tests
fail when a rule changes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rooftop.dashboards.fleet_rules import (
    FLEET_GROUP,
    RATIO_BUCKETS,
    FleetRuleParameters,
    fleet_record_names,
    fleet_recording_rules,
    fleet_rules_document,
    fleet_rules_yaml,
)
from rooftop.dashboards.generate import PACKAGE_DIR
from rooftop.dashboards.prometheus_rules import RuleParameters
from tests.conftest import require_real_part

PROMTOOL = shutil.which("promtool")
FLEET_RULES = PACKAGE_DIR / "rules" / "rooftop.fleet.rules.yaml"
FLEET_TESTS = PACKAGE_DIR / "rules" / "tests" / "rooftop.fleet.test.yaml"

# Functions of PromQL as Prometheus 2.x, Thanos, Mimir and VictoriaMetrics (MetricsQL is a
# superset) all evaluate them. Anything else (MetricsQL-only range_*, Prometheus 3 info(),
# experimental functions behind feature flags) would break one of those rulers.
PORTABLE_FUNCTIONS = {"sum", "count", "avg", "min", "max", "group", "histogram_quantile"}
PORTABLE_KEYWORDS = {"by", "on", "group_left", "group_right", "and", "or", "unless", "bool"}


def _promtool() -> str:
    require_real_part(
        PROMTOOL is not None,
        "promtool not found: install Debian's prometheus package (apt-get install prometheus)",
    )
    assert PROMTOOL is not None
    return PROMTOOL


def test_committed_file_is_the_generated_one() -> None:
    assert FLEET_RULES.read_text(encoding="utf-8") == fleet_rules_yaml()
    assert yaml.safe_load(fleet_rules_yaml()) == fleet_rules_document()


def test_names_follow_level_metric_operation() -> None:
    for name in fleet_record_names():
        level, metric, operation = name.split(":")
        assert level in {"cluster_model", "cluster", "target"}, name
        assert metric.startswith("rooftop_") and re.fullmatch(r"[a-z0-9_]+", operation), name


def test_every_level_has_the_figures_the_issue_names() -> None:
    names = set(fleet_record_names())
    for level in ("cluster_model", "cluster"):
        for ratio in (
            "rooftop_model_bandwidth_utilization_ratio",
            "rooftop_model_flops_utilization_ratio",
        ):
            assert f"{level}:{ratio}:mean_weighted_by_tokens" in names
            assert f"{level}:{ratio}:p90_weighted_by_tokens" in names
        assert f"{level}:rooftop_gpu_bound:sum" in names
        assert f"{level}:rooftop_engine_decode_tokens_per_second:sum" in names
        assert f"{level}:rooftop_decode_speed_of_light_ratio:count_below_target" in names


def test_rules_use_only_portable_promql() -> None:
    for rule in fleet_recording_rules():
        words = set(re.findall(r"\b([a-z_]+)\s*\(", rule.expr))
        assert words <= PORTABLE_FUNCTIONS | PORTABLE_KEYWORDS, (rule.record, words)
        assert "[" not in rule.expr, f"{rule.record}: no range selectors (rate windows differ)"
        assert "@" not in rule.expr and "offset" not in rule.expr, rule.record


def test_verdict_states_are_not_spelled_out() -> None:
    """A new state (issue 11's `unknown`) needs no new fleet rule."""
    for rule in fleet_recording_rules():
        assert "state=" not in rule.expr and "state!=" not in rule.expr, rule.record


def test_bucket_rules_carry_their_le_and_end_with_inf() -> None:
    for level in ("cluster_model", "cluster"):
        buckets = [
            rule
            for rule in fleet_recording_rules()
            if rule.record == f"{level}:rooftop_model_bandwidth_utilization_ratio:tokens_bucket"
        ]
        assert [rule.labels["le"] for rule in buckets] == list(RATIO_BUCKETS)
        assert RATIO_BUCKETS[-1] == "+Inf"
        assert [float(b) for b in RATIO_BUCKETS[:-1]] == sorted(
            float(b) for b in RATIO_BUCKETS[:-1]
        )


def test_parameters_reach_the_rules() -> None:
    params = FleetRuleParameters(
        cluster_label="k8s_cluster",
        target_labels=("job", "instance", "namespace"),
        alerts=RuleParameters(decode_efficiency_threshold_ratio=0.35),
    )
    text = "\n".join(rule.expr for rule in fleet_recording_rules(params))
    assert "by (k8s_cluster, model" in text and "cluster," not in text.replace("k8s_cluster", "")
    assert "on (k8s_cluster, job, instance, namespace, engine, model)" in text
    assert "< bool 0.35" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cluster_label": "clus-ter"}, "label name"),
        ({"cluster_label": "__name__"}, "label name"),
        ({"cluster_label": "job"}, "cluster_label"),
    ],
)
def test_bad_parameters_say_what_is_wrong(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FleetRuleParameters(**kwargs)  # type: ignore[arg-type]


def test_promtool_check_rules_is_clean() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(FLEET_RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(fleet_rules_document()["groups"][0]["rules"])
    assert f"SUCCESS: {count} rules found" in result.stdout
    assert fleet_rules_document()["groups"][0]["name"] == FLEET_GROUP


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", str(FLEET_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("params", "broken"),
    [
        # A lower target: a2's GPUs at 40 % no longer count as below it.
        (
            FleetRuleParameters(alerts=RuleParameters(decode_efficiency_threshold_ratio=0.3)),
            "count_below_target",
        ),
        # Aggregating by another cluster label: every cluster_* figure loses its cluster.
        (FleetRuleParameters(cluster_label="region"), "cluster"),
    ],
)
def test_unit_tests_catch_a_changed_rule(
    tmp_path: Path, params: FleetRuleParameters, broken: str
) -> None:
    promtool = _promtool()
    (tmp_path / "rules" / "tests").mkdir(parents=True)
    (tmp_path / "rules" / FLEET_RULES.name).write_text(fleet_rules_yaml(params), encoding="utf-8")
    copy = tmp_path / "rules" / "tests" / FLEET_TESTS.name
    copy.write_text(FLEET_TESTS.read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert broken in result.stdout + result.stderr


def test_the_keep_list_ships_everything_the_fleet_rules_and_dashboard_read() -> None:
    import json as json_module

    from rooftop.dashboards.fleet import FLEET_UID
    from rooftop.dashboards.fleet_rules import SHIPPED_METRICS
    from rooftop.dashboards.generate import generated_files

    texts = [rule.expr for rule in fleet_recording_rules()]
    dashboard = json_module.loads(generated_files()[f"{FLEET_UID}.json"])
    for panel in dashboard["panels"]:
        texts += [target["expr"] for target in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        texts.append(str(variable.get("query", "")))
    read = {m for text in texts for m in re.findall(r"(?<![\w:])(rooftop_[a-z0-9_]+)", text)}
    assert read, "found no metric names"
    assert read <= set(SHIPPED_METRICS), f"not shipped upstream: {read - set(SHIPPED_METRICS)}"
