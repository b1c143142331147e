"""Prometheus recording and alerting rules for rooftop, generated from one Python source.

:func:`rules_document` returns the ``groups:`` document as a plain dict: the same dict is written
to ``dashboards/rules/rooftop.rules.yaml`` (for ``promtool`` and a plain Prometheus) and becomes
the ``spec`` of the Kubernetes ``PrometheusRule``. :func:`rules_yaml` is its YAML text.

Every threshold and ``for`` duration is a field of :class:`RuleParameters`, so a live test can
load the same rules with short durations. Each alert carries ``severity``, a ``summary``, a
``description`` with the numbers (``$value`` through ``humanize*``) and a ``runbook_url`` that
points at the alert's section of ``docs/alerts.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

RULES_FILE_NAME = "rooftop.rules.yaml"
RECORDING_GROUP = "rooftop.recording"
ALERTING_GROUP = "rooftop.alerts"

# The labels that name one scrape target (Prometheus adds job and instance; the Kubernetes
# service discovery adds namespace and pod, which are the same on both sides of a join).
TARGET_MATCH = "job, instance"

# NVML clock-event reasons that hold clocks below what the workload asks for. GpuIdle,
# ApplicationsClocksSetting, SyncBoost and DisplayClockSetting are not throttles.
THROTTLE_REASONS: tuple[str, ...] = (
    "sw_power_cap",
    "hw_slowdown",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
)

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True)
class RuleParameters:
    """Thresholds and durations of the alerts; the defaults are the shipped rules.

    Durations are Prometheus duration strings (``10m``, ``30s``).
    """

    decode_efficiency_threshold_ratio: float = 0.5
    """Decode speed-of-light ratio (MBU while memory-bound) under which decode is inefficient."""
    decode_efficiency_for: str = "10m"
    decode_active_min_tokens_per_second: float = 1.0
    """Decode counts as active at or above this many generated tokens per second."""
    latency_bound_for: str = "30m"
    engine_down_for: str = "2m"
    telemetry_source_down_for: str = "5m"
    snapshot_stale_after_seconds: float = 60.0
    snapshot_stale_for: str = "2m"
    throttled_for: str = "10m"
    verdict_unknown_for: str = "15m"
    throttle_reasons: tuple[str, ...] = THROTTLE_REASONS
    runbook_base_url: str = "docs/alerts.md"
    """Where the runbook lives; each alert links to ``<base>#<alert name in lower case>``."""

    def __post_init__(self) -> None:
        if not 0.0 < self.decode_efficiency_threshold_ratio <= 1.0:
            raise ValueError(
                "decode_efficiency_threshold_ratio must be in (0, 1], got "
                f"{self.decode_efficiency_threshold_ratio}"
            )
        if self.decode_active_min_tokens_per_second < 0:
            raise ValueError("decode_active_min_tokens_per_second must be >= 0")
        if self.snapshot_stale_after_seconds <= 0:
            raise ValueError("snapshot_stale_after_seconds must be > 0")
        if not self.throttle_reasons:
            raise ValueError("throttle_reasons must name at least one clock-event reason")
        for name in (
            "decode_efficiency_for",
            "latency_bound_for",
            "engine_down_for",
            "telemetry_source_down_for",
            "snapshot_stale_for",
            "throttled_for",
            "verdict_unknown_for",
        ):
            value = getattr(self, name)
            if not _DURATION.match(value):
                raise ValueError(f"{name} must be a Prometheus duration such as 10m, got {value!r}")


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str


@dataclass(frozen=True)
class AlertRule:
    alert: str
    expr: str
    for_duration: str
    severity: str
    summary: str
    description: str


def runbook_anchor(alert_name: str) -> str:
    """The GitHub-style anchor of the ``## <alert name>`` heading in ``docs/alerts.md``."""
    return alert_name.lower()


def _fmt(number: float) -> str:
    """A threshold as PromQL and humans write it: ``0.5``, ``1``, ``60``."""
    return f"{number:g}"


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"


# --- recording rules ---------------------------------------------------------------------
# Names follow level:metric:operations. "model" rules aggregate over every GPU and engine
# serving one model; "pod" rules over one pod (namespace and pod come from Kubernetes service
# discovery; outside Kubernetes they are absent and the pod rules aggregate per job).

MODEL_BY = "job, namespace, model"
POD_BY = "job, namespace, pod"


def recording_rules() -> tuple[RecordingRule, ...]:
    rules: list[RecordingRule] = []
    for metric in (
        "rooftop_engine_decode_tokens_per_second",
        "rooftop_engine_prefill_tokens_per_second",
        "rooftop_engine_requests_running",
        "rooftop_engine_requests_waiting",
    ):
        rules.append(RecordingRule(f"model:{metric}:sum", f"sum by ({MODEL_BY}) ({metric})"))
    for metric in (
        "rooftop_decode_speed_of_light_ratio",
        "rooftop_prefill_speed_of_light_ratio",
        "rooftop_model_bandwidth_utilization_ratio",
        "rooftop_model_flops_utilization_ratio",
    ):
        rules.append(RecordingRule(f"model:{metric}:avg", f"avg by ({MODEL_BY}) ({metric})"))
    rules.append(
        RecordingRule(
            "model:rooftop_gpu_bound:sum",
            f"sum by ({MODEL_BY}, state) (rooftop_gpu_bound)",
        )
    )
    for metric in (
        "rooftop_engine_decode_tokens_per_second",
        "rooftop_engine_prefill_tokens_per_second",
    ):
        rules.append(RecordingRule(f"pod:{metric}:sum", f"sum by ({POD_BY}) ({metric})"))
    rules.append(
        RecordingRule(
            "pod:rooftop_decode_speed_of_light_ratio:avg",
            f"avg by ({POD_BY}) (rooftop_decode_speed_of_light_ratio)",
        )
    )
    rules.append(
        RecordingRule(
            "pod:rooftop_gpu_bound:sum",
            f"sum by ({POD_BY}, state) (rooftop_gpu_bound)",
        )
    )
    return tuple(rules)


# --- alerts ------------------------------------------------------------------------------

WHERE = "GPU {{ $labels.gpu }} ({{ $labels.uuid }}) on {{ $labels.instance }}"
SERVING = "engine {{ $labels.engine }} serving {{ $labels.model }}"


def _verdict_reason(state: str) -> str:
    """A template that looks the verdict's one-line reason up in rooftop_gpu_bound_info."""
    return (
        "{{ with printf "
        f'`rooftop_gpu_bound_info{{instance=%q,uuid=%q,engine=%q,state="{state}"}}` '
        "$labels.instance $labels.uuid $labels.engine | query }}"
        "{{ range . }}{{ .Labels.reason }}{{ end }}{{ else }}no reason recorded{{ end }}"
    )


def alert_rules(params: RuleParameters) -> tuple[AlertRule, ...]:
    threshold = _fmt(params.decode_efficiency_threshold_ratio)
    active = _fmt(params.decode_active_min_tokens_per_second)
    reasons = "|".join(params.throttle_reasons)
    stale = _fmt(params.snapshot_stale_after_seconds)
    return (
        AlertRule(
            alert="RooftopDecodeBelowBandwidthEfficiency",
            expr=(
                f"rooftop_decode_speed_of_light_ratio < {threshold}\n"
                f"and on ({TARGET_MATCH}, engine, model)\n"
                f"  rooftop_engine_decode_tokens_per_second >= {active}\n"
                f"unless on ({TARGET_MATCH}, gpu, uuid, engine, model)\n"
                '  rooftop_gpu_bound{state=~"idle|compute|unknown"} == 1'
            ),
            for_duration=params.decode_efficiency_for,
            severity="warning",
            summary=(
                "Decode on GPU {{ $labels.gpu }} ({{ $labels.model }}) runs at "
                "{{ $value | humanizePercentage }} of speed of light"
            ),
            description=(
                f"Decode on {WHERE}, {SERVING}, has reached only "
                "{{ $value | humanizePercentage }} of its speed-of-light token rate for "
                f"{params.decode_efficiency_for} (threshold "
                f"{_percent(params.decode_efficiency_threshold_ratio)}) "
                "while generating tokens. Decode should be bandwidth-bound: the GPU is moving "
                "far fewer bytes per second than its memory can. Verdict: "
                + _verdict_reason_any()
                + "."
            ),
        ),
        AlertRule(
            alert="RooftopGpuLatencyBound",
            expr=(
                '(rooftop_gpu_bound{state="latency"} == 1)\n'
                f"* on ({TARGET_MATCH}, engine, model) group_left ()\n"
                "  (rooftop_engine_requests_running > 0)"
            ),
            for_duration=params.latency_bound_for,
            severity="warning",
            summary=(
                "GPU {{ $labels.gpu }} ({{ $labels.model }}) has been latency-bound for "
                f"{params.latency_bound_for} with requests running"
            ),
            description=(
                f"{WHERE}, {SERVING}, is neither memory- nor compute-bound although "
                "{{ $value | humanize }} requests are running: the GPU waits on the host, on "
                "launches, on tensor-parallel collectives or on synchronisation. Reason: "
                + _verdict_reason("latency")
                + "."
            ),
        ),
        AlertRule(
            alert="RooftopVerdictUnknown",
            expr='rooftop_gpu_bound{state="unknown"} == 1',
            for_duration=params.verdict_unknown_for,
            severity="info",
            summary="rooftop has nothing to judge GPU {{ $labels.gpu }} on",
            description=(
                f"{WHERE} has had no engine token counts and no GPU utilization reading for "
                f"{params.verdict_unknown_for}, so no bound can be named (state unknown, not "
                "idle). Check the engine URL and the telemetry sources of this exporter (its "
                "snapshot is {{ with printf `rooftop_snapshot_age_seconds{instance=%q}` "
                "$labels.instance | query }}{{ . | first | value | humanizeDuration }}"
                "{{ else }}of unknown age{{ end }} old). Reason: "
                + _verdict_reason("unknown")
                + "."
            ),
        ),
        AlertRule(
            alert="RooftopEngineDown",
            expr='rooftop_source_up{kind="engine"} == 0',
            for_duration=params.engine_down_for,
            severity="warning",
            summary="rooftop cannot read the engine at {{ $labels.source }}",
            description=(
                "rooftop on {{ $labels.instance }} has failed to read the engine metrics at "
                f"{{{{ $labels.source }}}} for {params.engine_down_for}; the verdicts and "
                "speed-of-light figures for that engine are missing. Last successful poll: "
                "{{ with printf "
                "`rooftop_source_last_success_timestamp_seconds{instance=%q,source=%q}` "
                "$labels.instance $labels.source | query }}"
                "{{ . | first | value | humanizeTimestamp }}{{ else }}never{{ end }}."
            ),
        ),
        AlertRule(
            alert="RooftopTelemetrySourceDown",
            expr='rooftop_source_up{kind!="engine"} == 0',
            for_duration=params.telemetry_source_down_for,
            severity="warning",
            summary="rooftop telemetry source {{ $labels.source }} ({{ $labels.kind }}) is down",
            description=(
                "rooftop on {{ $labels.instance }} has failed to poll {{ $labels.source }} "
                f"({{{{ $labels.kind }}}}) for {params.telemetry_source_down_for}. The verdicts "
                "fall back to weaker evidence (see the evidence label of rooftop_gpu_bound_info) "
                "or stop. Last successful poll: "
                "{{ with printf "
                "`rooftop_source_last_success_timestamp_seconds{instance=%q,source=%q}` "
                "$labels.instance $labels.source | query }}"
                "{{ . | first | value | humanizeTimestamp }}{{ else }}never{{ end }}."
            ),
        ),
        AlertRule(
            alert="RooftopSnapshotStale",
            expr=f"rooftop_snapshot_age_seconds > {stale}",
            for_duration=params.snapshot_stale_for,
            severity="warning",
            summary="rooftop on {{ $labels.instance }} serves a snapshot "
            "{{ $value | humanizeDuration }} old",
            description=(
                "The sampler on {{ $labels.instance }} last published a snapshot "
                "{{ $value | humanizeDuration }} ago (threshold "
                f"{stale}s, for {params.snapshot_stale_for}): every gauge it serves is frozen. "
                "A source is hanging the sampler thread or the process is starved."
            ),
        ),
        AlertRule(
            alert="RooftopGpuThrottledWhileMemoryBound",
            expr=(
                "(rooftop_gpu_sm_clock_hertz / rooftop_gpu_sm_clock_max_hertz)\n"
                f"* on ({TARGET_MATCH}, gpu, uuid) group_right ()\n"
                f'  (rooftop_gpu_clock_event_active{{reason=~"{reasons}"}} == 1)\n'
                f"and on ({TARGET_MATCH}, gpu, uuid)\n"
                '  (rooftop_gpu_bound{state="memory"} == 1)'
            ),
            for_duration=params.throttled_for,
            severity="warning",
            summary=(
                "Memory-bound GPU {{ $labels.gpu }} on {{ $labels.instance }} is throttled "
                "({{ $labels.reason }})"
            ),
            description=(
                f"{WHERE} is memory-bound and its clocks have been held back by "
                f"{{{{ $labels.reason }}}} for {params.throttled_for}; the SM clock is at "
                "{{ $value | humanizePercentage }} of its maximum. A power or thermal limit "
                "lowers the attainable roof, so speed-of-light ratios understate the loss."
            ),
        ),
    )


def _verdict_reason_any() -> str:
    """The verdict state and its reason, whatever the state, from rooftop_gpu_bound_info."""
    return (
        "{{ with printf "
        "`rooftop_gpu_bound_info{instance=%q,uuid=%q,engine=%q}` "
        "$labels.instance $labels.uuid $labels.engine | query }}"
        "{{ range . }}{{ .Labels.state }} ({{ .Labels.reason }}){{ end }}"
        "{{ else }}none recorded{{ end }}"
    )


def rules_document(params: RuleParameters | None = None) -> dict[str, Any]:
    """The rule file as a dict: ``{"groups": [recording group, alerting group]}``."""
    params = params or RuleParameters()
    recording = [{"record": rule.record, "expr": rule.expr} for rule in recording_rules()]
    alerting = [
        {
            "alert": rule.alert,
            "expr": rule.expr,
            "for": rule.for_duration,
            "labels": {"severity": rule.severity},
            "annotations": {
                "summary": rule.summary,
                "description": rule.description,
                "runbook_url": f"{params.runbook_base_url}#{runbook_anchor(rule.alert)}",
            },
        }
        for rule in alert_rules(params)
    ]
    return {
        "groups": [
            {"name": RECORDING_GROUP, "rules": recording},
            {"name": ALERTING_GROUP, "rules": alerting},
        ]
    }


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (PromQL) as literal blocks, the way people read rule files."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_representer)


def rules_yaml(params: RuleParameters | None = None) -> str:
    """The rule file's text, deterministic for a given set of parameters."""
    header = (
        "# Generated by `python -m rooftop.dashboards` from dashboards/prometheus_rules.py;"
        " edit that, not this.\n"
    )
    body = yaml.dump(
        rules_document(params),
        Dumper=_BlockDumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
    )
    return header + body


def alert_names() -> tuple[str, ...]:
    return tuple(rule.alert for rule in alert_rules(RuleParameters()))
