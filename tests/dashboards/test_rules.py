"""The Prometheus rules: generated document, ``promtool check rules`` and ``promtool test rules``.

promtool is a real part: absent on a developer machine the promtool tests skip (saying so);
in a full run (``ROOFTOP_REQUIRE_REAL_PARTS=1``, the README's test command) they fail instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rooftop.dashboards.generate import PACKAGE_DIR
from rooftop.dashboards.prometheus_rules import (
    ALERTING_GROUP,
    RECORDING_GROUP,
    RuleParameters,
    alert_names,
    rules_document,
    rules_yaml,
    runbook_anchor,
)
from tests.conftest import REPO_ROOT, require_real_part

PROMTOOL = shutil.which("promtool")
RULES = PACKAGE_DIR / "rules" / "rooftop.rules.yaml"
UNIT_TESTS = sorted((PACKAGE_DIR / "rules" / "tests").glob("*.yaml"))
ALERTS_DOC = REPO_ROOT / "docs" / "alerts.md"

EXPECTED_ALERTS = {
    "RooftopDecodeBelowBandwidthEfficiency",
    "RooftopGpuLatencyBound",
    "RooftopEngineDown",
    "RooftopTelemetrySourceDown",
    "RooftopSnapshotStale",
    "RooftopGpuThrottledWhileMemoryBound",
    "RooftopVerdictUnknown",
}


def _promtool() -> str:
    require_real_part(
        PROMTOOL is not None,
        "promtool not found: install Debian's prometheus package "
        "(apt-get install prometheus), as scripts/test.sh does",
    )
    assert PROMTOOL is not None
    return PROMTOOL


def _alerts(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {group["name"]: group for group in document["groups"]}
    return {rule["alert"]: rule for rule in groups[ALERTING_GROUP]["rules"]}


def test_document_has_recording_and_alerting_groups() -> None:
    document = rules_document()
    assert [group["name"] for group in document["groups"]] == [RECORDING_GROUP, ALERTING_GROUP]
    recording = document["groups"][0]["rules"]
    assert recording and all(set(rule) == {"record", "expr"} for rule in recording)
    for rule in recording:
        level, metric, operation = rule["record"].split(":")
        assert level in {"model", "pod"} and metric.startswith("rooftop_") and operation
    assert set(_alerts(document)) == EXPECTED_ALERTS == set(alert_names())


def test_every_alert_has_severity_summary_numbers_and_a_runbook_section() -> None:
    headings = re.findall(r"^## (\w+)\s*$", ALERTS_DOC.read_text(encoding="utf-8"), re.M)
    for name, rule in _alerts(rules_document()).items():
        assert rule["labels"]["severity"] in {"warning", "critical", "info"}
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert "humanize" in annotations["description"], f"{name}: no number in the description"
        assert annotations["runbook_url"] == f"docs/alerts.md#{runbook_anchor(name)}"
        assert name in headings, f"docs/alerts.md has no '## {name}' section"
    assert set(headings) == EXPECTED_ALERTS


def test_parameters_reach_thresholds_and_durations() -> None:
    params = RuleParameters(
        decode_efficiency_threshold_ratio=0.35,
        decode_efficiency_for="7s",
        latency_bound_for="3s",
        snapshot_stale_after_seconds=12,
        throttle_reasons=("hw_slowdown",),
        runbook_base_url="https://example.org/rooftop/alerts",
    )
    alerts = _alerts(rules_document(params))
    decode = alerts["RooftopDecodeBelowBandwidthEfficiency"]
    assert "rooftop_decode_speed_of_light_ratio < 0.35" in decode["expr"]
    assert decode["for"] == "7s"
    assert "threshold 35%" in decode["annotations"]["description"]
    assert alerts["RooftopGpuLatencyBound"]["for"] == "3s"
    assert alerts["RooftopSnapshotStale"]["expr"] == "rooftop_snapshot_age_seconds > 12"
    assert 'reason=~"hw_slowdown"' in alerts["RooftopGpuThrottledWhileMemoryBound"]["expr"]
    assert decode["annotations"]["runbook_url"] == (
        "https://example.org/rooftop/alerts#rooftopdecodebelowbandwidthefficiency"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decode_efficiency_threshold_ratio": 1.5}, "decode_efficiency_threshold_ratio"),
        ({"decode_efficiency_threshold_ratio": 0}, "decode_efficiency_threshold_ratio"),
        ({"decode_efficiency_for": "10 minutes"}, "decode_efficiency_for"),
        ({"snapshot_stale_for": ""}, "snapshot_stale_for"),
        ({"snapshot_stale_after_seconds": -1}, "snapshot_stale_after_seconds"),
        ({"decode_active_min_tokens_per_second": -1}, "decode_active_min_tokens_per_second"),
        ({"throttle_reasons": ()}, "throttle_reasons"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuleParameters(**kwargs)


def test_yaml_text_is_the_document() -> None:
    params = RuleParameters(decode_efficiency_for="30s")
    assert yaml.safe_load(rules_yaml(params)) == rules_document(params)
    assert rules_yaml() == RULES.read_text(encoding="utf-8")


def test_promtool_check_rules_is_clean() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(RULES)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_count = sum(len(group["rules"]) for group in rules_document()["groups"])
    assert f"SUCCESS: {rule_count} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool unit tests under dashboards/rules/tests/"
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, UNIT_TESTS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        suite = yaml.safe_load(path.read_text(encoding="utf-8"))
        for case in suite["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing >= EXPECTED_ALERTS, f"no firing case for {EXPECTED_ALERTS - firing}"
    assert silent >= EXPECTED_ALERTS, f"no silent case for {EXPECTED_ALERTS - silent}"


def test_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The promtool tests bite: rules with a lower decode threshold fail them."""
    promtool = _promtool()
    (tmp_path / "rules" / "tests").mkdir(parents=True)
    mutated = rules_yaml(RuleParameters(decode_efficiency_threshold_ratio=0.25))
    (tmp_path / "rules" / "rooftop.rules.yaml").write_text(mutated, encoding="utf-8")
    copies = []
    for path in UNIT_TESTS:
        copy = tmp_path / "rules" / "tests" / path.name
        copy.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        copies.append(str(copy))
    result = subprocess.run([promtool, "test", "rules", *copies], capture_output=True, text=True)
    assert result.returncode == 1
    assert "RooftopDecodeBelowBandwidthEfficiency" in result.stdout + result.stderr
