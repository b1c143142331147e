"""A real Prometheus scraping ``rooftop serve --demo``, with the generated rules loaded.

The demo node runs its scripted load cycle (idle → batch-1 decode → large-batch decode →
long-prompt prefill → host-bound decode at ~20% of speed of light → idle), shortened to
``CYCLE_SECONDS``. Prometheus scrapes every second and evaluates the rules (generated with short
``for`` durations) every second. The tests then check, through Prometheus's HTTP API, that:

- every rule loads and evaluates without error;
- RooftopDecodeBelowBandwidthEfficiency fires during the host-bound phase and clears after it,
  and no alert that needs a fault (engine down, stale snapshot, ...) fires on the healthy demo;
- every PromQL expression in every dashboard panel returns series over a full cycle, with the
  template variables substituted as a dashboard with "All" selected would;
- every recording rule produces series, and every metric an alert reads exists.

Needs the ``prometheus`` binary (Debian's ``prometheus`` package, installed by scripts/test.sh).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rooftop.dashboards.common import substitute_variables
from rooftop.dashboards.generate import generated_files
from rooftop.dashboards.prometheus_rules import RuleParameters, rules_document, rules_yaml
from tests.conftest import require_real_part

pytestmark = [pytest.mark.prometheus, pytest.mark.slow, pytest.mark.timeout(330)]

PROMETHEUS = shutil.which("prometheus")
CYCLE_SECONDS = 90
HOST_BOUND_START_FRACTION = 0.8
"""Where the demo's host-bound phase starts in its cycle (exporter/demo/scenario.py)."""
LIVE_RULES = RuleParameters(
    decode_efficiency_for="8s",
    latency_bound_for="8s",
    engine_down_for="5s",
    telemetry_source_down_for="5s",
    snapshot_stale_after_seconds=10,
    snapshot_stale_for="5s",
    throttled_for="5s",
)
DECODE_ALERT = "RooftopDecodeBelowBandwidthEfficiency"
EXPECTED_ON_DEMO = {DECODE_ALERT, "RooftopGpuLatencyBound"}
DEMO_HAS_NO_THROTTLING = {"rooftop_gpu_clock_event_active"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rooftop_command() -> list[str]:
    script = Path(sys.executable).parent / "rooftop"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rooftop.exporter"]


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class LiveStack:
    prometheus_url: str
    rooftop_url: str
    data_since: float
    logs: dict[str, Path] = field(default_factory=dict)

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        status, body = _get(f"{self.prometheus_url}/api/v1/{path}?{query}", timeout=15)
        payload = json.loads(body)
        assert status == 200 and payload["status"] == "success", (path, params, payload)
        return payload["data"]

    def range_query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api(
            "query_range", query=expr, start=self.data_since, end=time.time(), step="1s"
        )["result"]
        return result

    def instant(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def log_tails(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{path.read_text(errors='replace')[-3000:]}"
            for name, path in self.logs.items()
        )


def _wait(condition: Any, timeout: float, what: str, stack: LiveStack | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}\n"
        + (stack.log_tails() if stack else "")
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    require_real_part(
        PROMETHEUS is not None,
        "prometheus not found: install Debian's prometheus package (apt-get install "
        "prometheus), as scripts/test.sh does",
    )
    assert PROMETHEUS is not None
    workdir = tmp_path_factory.mktemp("prometheus-live")
    rooftop_port, prometheus_port = _free_port(), _free_port()
    rooftop_log, prometheus_log = workdir / "rooftop.log", workdir / "prometheus.log"
    rooftop = subprocess.Popen(
        [
            *_rooftop_command(),
            "serve",
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{rooftop_port}",
            "--interval",
            "0.5",
            "--demo-cycle-seconds",
            str(CYCLE_SECONDS),
        ],
        stdout=rooftop_log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    processes = [rooftop]
    stack = LiveStack(
        prometheus_url=f"http://127.0.0.1:{prometheus_port}",
        rooftop_url=f"http://127.0.0.1:{rooftop_port}",
        data_since=time.time(),
        logs={"rooftop": rooftop_log, "prometheus": prometheus_log},
    )
    try:

        def rooftop_serves() -> bool:
            assert rooftop.poll() is None, "rooftop serve --demo exited\n" + stack.log_tails()
            try:
                status, body = _get(f"{stack.rooftop_url}/metrics")
            except OSError:
                return False
            return status == 200 and b"rooftop_gpu_bound{" in body

        _wait(rooftop_serves, 30, "rooftop serve --demo to serve /metrics", stack)

        (workdir / "rooftop.rules.yaml").write_text(rules_yaml(LIVE_RULES), encoding="utf-8")
        (workdir / "prometheus.yml").write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "rule_files:\n"
            "  - rooftop.rules.yaml\n"
            "scrape_configs:\n"
            "  - job_name: rooftop\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{rooftop_port}']\n",
            encoding="utf-8",
        )
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                "--config.file",
                str(workdir / "prometheus.yml"),
                "--storage.tsdb.path",
                str(workdir / "tsdb"),
                "--web.listen-address",
                f"127.0.0.1:{prometheus_port}",
            ],
            stdout=prometheus_log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        processes.append(prometheus)

        def prometheus_has_data() -> bool:
            assert prometheus.poll() is None, "prometheus exited\n" + stack.log_tails()
            try:
                status, _ = _get(f"{stack.prometheus_url}/-/ready")
                return status == 200 and bool(stack.instant("rooftop_gpu_bound"))
            except (OSError, AssertionError):
                return False

        _wait(prometheus_has_data, 60, "Prometheus to scrape rooftop", stack)
        stack.data_since = time.time()
        yield stack
    finally:
        for process in reversed(processes):
            _stop(process)


def test_every_rule_loads_and_evaluates(stack: LiveStack) -> None:
    expected = {
        rule.get("record") or rule.get("alert")
        for group in rules_document(LIVE_RULES)["groups"]
        for rule in group["rules"]
    }

    def all_evaluated() -> bool:
        rules = [r for g in stack.api("rules")["groups"] for r in g["rules"]]
        return {r["name"] for r in rules} == expected and all(r["health"] == "ok" for r in rules)

    _wait(all_evaluated, 20, "every rule to be evaluated with health ok", stack)


def test_decode_efficiency_alert_fires_in_the_host_bound_phase_and_clears(
    stack: LiveStack,
) -> None:
    seen_firing: set[str] = set()
    fired_at: float | None = None
    fired_value: float | None = None
    host_thread_when_fired: list[float] = []
    cleared_at: float | None = None
    deadline = time.monotonic() + CYCLE_SECONDS + 45
    while time.monotonic() < deadline:
        alerts = stack.api("alerts")["alerts"]
        firing = [a for a in alerts if a["state"] == "firing"]
        seen_firing |= {a["labels"]["alertname"] for a in firing}
        decode = [a for a in alerts if a["labels"]["alertname"] == DECODE_ALERT]
        decode_firing = [a for a in decode if a["state"] == "firing"]
        if fired_at is None and decode_firing:
            fired_at = time.monotonic()
            fired_value = float(decode_firing[0]["value"])
            host_thread_when_fired = [
                float(s["value"][1])
                for s in stack.instant("rooftop_engine_busiest_thread_cpu_ratio")
            ]
            deadline = fired_at + CYCLE_SECONDS * (1 - HOST_BOUND_START_FRACTION) + 20
        if fired_at is not None and not decode:
            cleared_at = time.monotonic()
            break
        time.sleep(0.5)
    assert fired_at is not None, (
        f"{DECODE_ALERT} never fired in a full demo cycle\n" + stack.log_tails()
    )
    assert fired_value is not None and fired_value < LIVE_RULES.decode_efficiency_threshold_ratio
    # The host-bound phase's signature: the engine's scheduler thread is saturated.
    assert host_thread_when_fired and max(host_thread_when_fired) > 0.9, host_thread_when_fired
    assert cleared_at is not None, f"{DECODE_ALERT} did not clear after the host-bound phase"
    assert seen_firing <= EXPECTED_ON_DEMO, f"unexpected alerts on a healthy demo: {seen_firing}"
    assert "RooftopGpuLatencyBound" in seen_firing, "the host-bound phase is latency-bound"


def _wait_for_a_full_cycle(stack: LiveStack) -> None:
    remaining = stack.data_since + CYCLE_SECONDS + 5 - time.time()
    if remaining > 0:
        time.sleep(remaining)


def _dashboard_queries() -> list[tuple[str, str, str, str]]:
    queries = []
    for name, text in generated_files().items():
        if not name.endswith(".json"):
            continue
        for panel in json.loads(text)["panels"]:
            for target in panel.get("targets", []):
                queries.append((name, panel["title"], target["refId"], target["expr"]))
    return queries


def test_every_dashboard_query_returns_series(stack: LiveStack) -> None:
    _wait_for_a_full_cycle(stack)
    queries = _dashboard_queries()
    assert len(queries) > 30
    empty = []
    for name, title, ref, expr in queries:
        if not stack.range_query(substitute_variables(expr)):
            empty.append(f"{name} / {title} / {ref}: {expr}")
    assert not empty, "queries with no series over a full demo cycle:\n" + "\n".join(empty)


LABEL_VALUES = re.compile(r"^label_values\((.+), (\w+)\)$")


def test_variable_queries_list_values(stack: LiveStack) -> None:
    for name, text in generated_files().items():
        if not name.endswith(".json"):
            continue
        for variable in json.loads(text)["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = LABEL_VALUES.match(variable["query"])
            assert match, variable["query"]
            selector, label = substitute_variables(match.group(1)), match.group(2)
            values = stack.api(
                f"label/{label}/values",
                **{"match[]": selector, "start": stack.data_since, "end": time.time()},
            )
            # namespace and pod exist only under Kubernetes service discovery.
            if label not in {"namespace", "pod"}:
                assert values, f"{name}: variable {variable['name']} lists nothing"


def test_every_rule_returns_series(stack: LiveStack) -> None:
    _wait_for_a_full_cycle(stack)
    document = rules_document(LIVE_RULES)
    recording, alerting = (group["rules"] for group in document["groups"])
    for rule in recording:
        assert stack.range_query(rule["expr"]), f"{rule['record']}: expression has no series"
        assert stack.range_query(rule["record"]), f"{rule['record']}: nothing recorded"
    for rule in alerting:
        result = stack.range_query(rule["expr"])
        if rule["alert"] in EXPECTED_ON_DEMO:
            assert result, f"{rule['alert']}: never true during a full demo cycle"
        # Alerts that need a fault cannot be true on the healthy demo; every metric they read
        # must still exist, so a renamed metric cannot silence them.
        for metric in set(re.findall(r"\b(rooftop_[a-z0-9_]+)\{?", rule["expr"])):
            if metric in DEMO_HAS_NO_THROTTLING:
                continue
            assert stack.range_query(metric), f"{rule['alert']}: no series for {metric}"
