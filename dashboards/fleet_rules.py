"""Fleet recording rules: per cluster and per model aggregates over every rooftop in a fleet.

These rules run where the fleet's series meet: the ruler of a central store (Mimir ruler,
Thanos ruler, vmalert in front of VictoriaMetrics) or a central Prometheus that receives remote
writes. They are plain PromQL (aggregations, ``bool`` comparisons, one-to-many joins,
``label_replace`` and ``histogram_quantile``): nothing MetricsQL- or Prometheus-3-only, so
each of those rulers accepts the same file. Names follow ``level:metric:operation``:

- ``cluster_model:`` aggregates by ``(cluster, model)``, ``cluster:`` by ``cluster``; the
  ``cluster`` label is the external label each cluster's Prometheus (or agent) adds when it
  writes upstream (:attr:`FleetRuleParameters.cluster_label` names another one);
- ``target:`` series keep a GPU x engine target's labels: the join of an engine's token rate
  onto each GPU it runs on, the weight every token-weighted figure uses.

**Token weighting.** The fleet MBU is not the mean over GPUs: an idle GPU at 5 % MBU says
nothing about the fleet's tokens. Each GPU's MBU (MFU) is weighted by its engine's generated
(generated + prompt) tokens per second: ``sum(ratio x tokens) / sum(tokens)``. A GPU of a
tensor-parallel engine weighs the whole engine's tokens, since every GPU of a TP group does a
share of every token's work. **p90** comes from a token-weighted cumulative histogram of the
ratio (``le`` = 0.1 ... 1.0, +Inf; each bucket is one rule whose ``labels:`` set its ``le``) and
``histogram_quantile(0.9, ...)``, which interpolates linearly within a 0.1-wide bucket: the
p90 is exact to a bucket, the usual histogram_quantile error.

A group that generated no tokens has no token-weighted figure: those series are absent, not 0
and not NaN.

**Verdicts** are summed over the one-hot ``rooftop_gpu_bound`` by whatever ``state`` values
it carries, so a new state needs no new rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from rooftop.dashboards.prometheus_rules import RuleParameters

FLEET_RULES_FILE_NAME = "rooftop.fleet.rules.yaml"
FLEET_GROUP = "rooftop.fleet"
RATIO_BUCKETS: tuple[str, ...] = (
    "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1", "+Inf",
)  # fmt: skip
"""Upper bounds of the token-weighted ratio histograms (ratios are 0-1; +Inf catches noise)."""
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p90", 0.9))

DECODE_WEIGHT = "target:rooftop_engine_decode_tokens_per_second:join"
ALL_TOKENS_WEIGHT = "target:rooftop_engine_tokens_per_second:join"
WEIGHTED_RATIOS: tuple[tuple[str, str, str], ...] = (
    # (ratio metric, weight rule, what the weight is, for the docs)
    ("rooftop_model_bandwidth_utilization_ratio", DECODE_WEIGHT, "generated tokens/s"),
    ("rooftop_model_flops_utilization_ratio", ALL_TOKENS_WEIGHT, "generated + prompt tokens/s"),
    ("rooftop_decode_speed_of_light_ratio", DECODE_WEIGHT, "generated tokens/s"),
)


SHIPPED_METRICS: tuple[str, ...] = (
    "rooftop_build_info",
    "rooftop_gpu_bound",
    "rooftop_engine_decode_tokens_per_second",
    "rooftop_engine_prefill_tokens_per_second",
    "rooftop_decode_speed_of_light_ratio",
    "rooftop_model_bandwidth_utilization_ratio",
    "rooftop_model_flops_utilization_ratio",
    "rooftop_arithmetic_intensity_flops_per_byte",
    "rooftop_achieved_flops_per_second",
    "rooftop_gpu_ridge_point_flops_per_byte",
    "rooftop_gpu_peak_memory_bandwidth_bytes_per_second",
    # Prometheus's own per-target series: target health and scrape cost upstream.
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
)
"""What each cluster sends upstream (remote_write ``write_relabel_configs`` keep-list): the
inputs of these fleet rules and of the fleet dashboard, nothing else. Everything else rooftop
exports stays in the cluster's own Prometheus for the per-node dashboards and alerts."""


def shipped_metrics_regex() -> str:
    """The keep-list as one ``__name__`` regex for ``write_relabel_configs``."""
    return "|".join(SHIPPED_METRICS)


@dataclass(frozen=True)
class FleetRule:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)
    """Static labels the ruler adds to the result (the histogram buckets' ``le``)."""


@dataclass(frozen=True)
class FleetRuleParameters:
    """What the fleet rules aggregate by and the efficiency target they count against."""

    cluster_label: str = "cluster"
    """The external label that names a cluster (Prometheus ``external_labels``)."""
    target_labels: tuple[str, ...] = ("job", "instance")
    """Labels that name one scrape target inside a cluster (Prometheus adds both)."""
    alerts: RuleParameters = field(default_factory=RuleParameters)
    """The per-node rules' parameters: the decode efficiency target and what counts as active
    decode are the ones RooftopDecodeBelowBandwidthEfficiency uses."""

    def __post_init__(self) -> None:
        for label in (self.cluster_label, *self.target_labels):
            if not label.isidentifier() or label.startswith("__"):
                raise ValueError(f"{label!r} is not a usable Prometheus label name")
        if self.cluster_label in self.target_labels:
            raise ValueError("cluster_label must not be one of target_labels")


def _levels(params: FleetRuleParameters) -> tuple[tuple[str, str], ...]:
    """(level name, by-clause) for each aggregation level."""
    cluster = params.cluster_label
    return (("cluster_model", f"{cluster}, model"), ("cluster", cluster))


def _engine_match(params: FleetRuleParameters) -> str:
    return ", ".join((params.cluster_label, *params.target_labels, "engine", "model"))


def _target_match(params: FleetRuleParameters) -> str:
    return ", ".join(
        (params.cluster_label, *params.target_labels, "gpu", "uuid", "engine", "model")
    )


def fleet_recording_rules(params: FleetRuleParameters | None = None) -> tuple[FleetRule, ...]:
    """The fleet rules in evaluation order (later rules read earlier ones)."""
    params = params or FleetRuleParameters()
    engine_on = _engine_match(params)
    target_on = _target_match(params)
    threshold = f"{params.alerts.decode_efficiency_threshold_ratio:g}"
    active = f"{params.alerts.decode_active_min_tokens_per_second:g}"
    # One series per GPU x engine target (value 1), from the one-hot verdict every target has.
    targets = f"group by ({target_on}) (rooftop_gpu_bound)"
    rules: list[FleetRule] = [
        FleetRule(
            DECODE_WEIGHT,
            f"rooftop_engine_decode_tokens_per_second\n"
            f"* on ({engine_on}) group_right ()\n  {targets}",
        ),
        FleetRule(
            ALL_TOKENS_WEIGHT,
            f"(rooftop_engine_decode_tokens_per_second + rooftop_engine_prefill_tokens_per_second)"
            f"\n* on ({engine_on}) group_right ()\n  {targets}",
        ),
    ]
    for level, by in _levels(params):
        for metric in (
            "rooftop_engine_decode_tokens_per_second",
            "rooftop_engine_prefill_tokens_per_second",
        ):
            rules.append(FleetRule(f"{level}:{metric}:sum", f"sum by ({by}) ({metric})"))
        rules.append(
            FleetRule(
                f"{level}:rooftop_gpu_bound:sum",
                f"sum by ({by}, state) (rooftop_gpu_bound)",
            )
        )
        # Distinct GPUs: a GPU shared by two engines of one model counts once.
        gpu_on = ", ".join((params.cluster_label, *params.target_labels, "uuid", "model"))
        rules.append(
            FleetRule(
                f"{level}:rooftop_gpu_bound:count_gpus",
                f"count by ({by}) (group by ({gpu_on}) (rooftop_gpu_bound))",
            )
        )
        rules.append(
            FleetRule(
                f"{level}:rooftop_decode_speed_of_light_ratio:count_below_target",
                f"sum by ({by}) (\n"
                f"  (rooftop_decode_speed_of_light_ratio < bool {threshold})\n"
                f"  * on ({engine_on}) group_left ()\n"
                f"    (rooftop_engine_decode_tokens_per_second >= bool {active})\n)",
            )
        )
        for metric, weight, _ in WEIGHTED_RATIOS:
            rules.append(
                FleetRule(
                    f"{level}:{metric}:mean_weighted_by_tokens",
                    f"sum by ({by}) (\n  {metric}\n  * on ({target_on})\n    {weight}\n)\n"
                    f"/\n(\n  sum by ({by}) (\n    {weight}\n    and on ({target_on})\n"
                    f"      {metric}\n  )\n  > 0\n)",
                )
            )
            for le in RATIO_BUCKETS:
                # `<= bool` keeps every target (0 where the ratio is above the bound), so an
                # empty bucket records 0 rather than nothing, as histogram_quantile needs.
                if le == "+Inf":
                    body = f"{weight}\n  and on ({target_on})\n    {metric}"
                else:
                    body = f"{weight}\n  * on ({target_on})\n    ({metric} <= bool {le})"
                rules.append(
                    FleetRule(
                        f"{level}:{metric}:tokens_bucket",
                        f"sum by ({by}) (\n  {body}\n)",
                        {"le": le},
                    )
                )
            for name, quantile in QUANTILES:
                rules.append(
                    FleetRule(
                        f"{level}:{metric}:{name}_weighted_by_tokens",
                        # >= 0 drops the NaN of a group without tokens (every bucket 0).
                        f"histogram_quantile({quantile:g}, {level}:{metric}:tokens_bucket) >= 0",
                    )
                )
    return tuple(rules)


def fleet_rules_document(params: FleetRuleParameters | None = None) -> dict[str, Any]:
    rules = [
        {
            "record": rule.record,
            "expr": rule.expr,
            **({"labels": rule.labels} if rule.labels else {}),
        }
        for rule in fleet_recording_rules(params)
    ]
    return {"groups": [{"name": FLEET_GROUP, "rules": rules}]}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_representer)


def fleet_rules_yaml(params: FleetRuleParameters | None = None) -> str:
    header = (
        "# Generated by `python -m rooftop.dashboards` from dashboards/fleet_rules.py;"
        " edit that, not this.\n"
        "# Fleet aggregates for a central ruler (Mimir, Thanos, vmalert, or a Prometheus that\n"
        "# receives remote writes); see docs/scale.md.\n"
    )
    body = yaml.dump(
        fleet_rules_document(params),
        Dumper=_BlockDumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
    )
    return header + body


def fleet_record_names(params: FleetRuleParameters | None = None) -> tuple[str, ...]:
    """Every distinct record name, in order (bucket rules share one name)."""
    return tuple(dict.fromkeys(rule.record for rule in fleet_recording_rules(params)))
