"""The fleet dashboard: every cluster and model at once, from a central store.

It reads the fleet recording rules (dashboards/fleet_rules.py: ``cluster_model:`` and
``cluster:`` series) for the verdict mix, token rates and token-weighted efficiency, and the
few per-GPU series a fleet ships upstream (docs/scale.md) for the two views that are about
single GPUs: the worst GPUs by decode speed of light, and one roofline with every GPU's
operating point.

**One roofline for many GPU types.** Each GPU has its own roof (peak FLOP/s, bandwidth), so the
chart is normalised: x is arithmetic intensity over the GPU's ridge point, y is achieved FLOP/s
over its peak. Every roof becomes the same line, ``y = min(x, 1)``, with the ridge at x = 1;
a point's height under that line is its fraction of speed of light whatever the GPU.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, xychart
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import xychart as xm

from rooftop.dashboards.common import (
    DATASOURCE,
    LOG10,
    MODEL_VAR,
    VERDICT_CODES,
    Layout,
    instant_table,
    query,
    query_variable,
)
from rooftop.dashboards.fleet_rules import FleetRuleParameters
from rooftop.dashboards.panels import (
    XYCHART_PLUGIN_VERSION,
    _color,
    _series,
    merged_table,
    stat_panel,
    time_series,
)

FLEET_UID = "rooftop-fleet"
TITLE = "rooftop / Fleet"
FLEET_TAGS = ["rooftop", "roofline", "gpu", "fleet"]
CLUSTER_VAR = "cluster"
FLEET_VARIABLE_NAMES = ("datasource", CLUSTER_VAR, MODEL_VAR)

WORST_N = 10
"""How many GPUs the worst-GPUs table lists."""
ROOF_X = (0.001, 1.0, 100.0)
"""Normalised intensity of the roof's corners: memory roof start, ridge, compute roof end."""

_PARAMS = FleetRuleParameters()
C = _PARAMS.cluster_label
SELECT = f'{C}=~"${CLUSTER_VAR}", model=~"${MODEL_VAR}"'
"""Selects the chosen clusters and models in fleet rules and per-GPU series alike."""
SELECT_CLUSTER = f'{C}=~"${CLUSTER_VAR}"'
GPU_ON = ", ".join((C, *_PARAMS.target_labels, "gpu", "uuid"))
ENGINE_ON = ", ".join((C, *_PARAMS.target_labels, "engine", "model"))
ACTIVE = (
    f"and on ({ENGINE_ON})\n  rooftop_engine_decode_tokens_per_second{{{SELECT}}}"
    f" >= {_PARAMS.alerts.decode_active_min_tokens_per_second:g}"
)
"""Keeps the targets whose engine is generating tokens (as the fleet rules count them)."""


def fleet_variables() -> list[cogbuilder.Builder[dm.VariableModel]]:
    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        query_variable(CLUSTER_VAR, "Cluster", f"label_values(cluster:rooftop_gpu_bound:sum, {C})"),
        query_variable(
            MODEL_VAR,
            "Model",
            f"label_values(cluster_model:rooftop_gpu_bound:sum{{{SELECT_CLUSTER}}}, model)",
        ),
    ]


def _totals(layout: Layout) -> None:
    layout.row("Fleet")
    layout.line(
        [
            (
                stat_panel(
                    "GPUs",
                    "GPUs reporting a verdict, in the selected clusters and models.\n\n"
                    "Rule: `cluster_model:rooftop_gpu_bound:count_gpus`",
                    query(f"sum(cluster_model:rooftop_gpu_bound:count_gpus{{{SELECT}}})"),
                    unit="none",
                ),
                4,
            ),
            (
                stat_panel(
                    "Decode tokens/s",
                    "Generated tokens per second.\n\n"
                    "Rule: `cluster_model:rooftop_engine_decode_tokens_per_second:sum`",
                    query(
                        "sum(cluster_model:rooftop_engine_decode_tokens_per_second:sum"
                        f"{{{SELECT}}})"
                    ),
                    unit="none",
                ),
                5,
            ),
            (
                stat_panel(
                    "Prefill tokens/s",
                    "Prompt tokens computed per second.\n\n"
                    "Rule: `cluster_model:rooftop_engine_prefill_tokens_per_second:sum`",
                    query(
                        "sum(cluster_model:rooftop_engine_prefill_tokens_per_second:sum"
                        f"{{{SELECT}}})"
                    ),
                    unit="none",
                ),
                5,
            ),
            (
                stat_panel(
                    "GPUs below the decode target",
                    "GPUs decoding under the decode speed-of-light target (the threshold of "
                    "RooftopDecodeBelowBandwidthEfficiency) while generating tokens.\n\n"
                    "Rule: `cluster_model:rooftop_decode_speed_of_light_ratio:count_below_target`",
                    query(
                        "sum(cluster_model:rooftop_decode_speed_of_light_ratio:count_below_target"
                        f"{{{SELECT}}})"
                    ),
                    unit="none",
                    steps=(("green", None), ("orange", 1)),
                ),
                5,
            ),
            (
                stat_panel(
                    "Clusters",
                    "Clusters sending rooftop data.\n\n"
                    "Rule: `cluster:rooftop_gpu_bound:count_gpus`",
                    query(f"count(cluster:rooftop_gpu_bound:count_gpus{{{SELECT_CLUSTER}}})"),
                    unit="none",
                ),
                5,
            ),
        ],
        h=4,
    )
    verdicts: dict[str, str] = {state: color for state, color in VERDICT_CODES}
    layout.line(
        [
            (
                time_series(
                    "Verdict mix",
                    "GPU x engine targets in each bottleneck state over time, stacked; every "
                    "state the exporters report appears (no state is hard-coded).\n\n"
                    "Rule: `cluster_model:rooftop_gpu_bound:sum`",
                    [
                        query(
                            f"sum by (state) (cluster_model:rooftop_gpu_bound:sum{{{SELECT}}})",
                            "{{state}}",
                        )
                    ],
                    unit="none",
                    colors=verdicts,
                    stacked=True,
                ),
                12,
            ),
            (
                time_series(
                    "GPUs below the decode target, per cluster",
                    "Rule: `cluster:rooftop_decode_speed_of_light_ratio:count_below_target`",
                    [
                        query(
                            "cluster:rooftop_decode_speed_of_light_ratio:count_below_target"
                            f"{{{SELECT_CLUSTER}}}",
                            f"{{{{{C}}}}}",
                        )
                    ],
                    unit="none",
                ),
                12,
            ),
        ],
        h=8,
    )


def _efficiency(layout: Layout) -> None:
    layout.row("Per model")
    level = "cluster_model"
    per_model = merged_table(
        "Per model and cluster",
        "Token-weighted efficiency per served model in each cluster (dashboards/"
        "fleet_rules.py): each GPU's MBU weighs its engine's generated tokens/s, its MFU the "
        "generated + prompt tokens/s, so idle GPUs do not drag the figure down; p90 from a "
        "token-weighted histogram (0.1-wide buckets).",
        {C: "Cluster", "model": "Model"},
        [
            ("GPUs", f"{level}:rooftop_gpu_bound:count_gpus{{{SELECT}}}", "none"),
            (
                "Decode tok/s",
                f"{level}:rooftop_engine_decode_tokens_per_second:sum{{{SELECT}}}",
                "none",
            ),
            (
                "MBU",
                f"{level}:rooftop_model_bandwidth_utilization_ratio:mean_weighted_by_tokens"
                f"{{{SELECT}}}",
                "percentunit",
            ),
            (
                "MBU p90",
                f"{level}:rooftop_model_bandwidth_utilization_ratio:p90_weighted_by_tokens"
                f"{{{SELECT}}}",
                "percentunit",
            ),
            (
                "MFU",
                f"{level}:rooftop_model_flops_utilization_ratio:mean_weighted_by_tokens"
                f"{{{SELECT}}}",
                "percentunit",
            ),
            (
                "MFU p90",
                f"{level}:rooftop_model_flops_utilization_ratio:p90_weighted_by_tokens{{{SELECT}}}",
                "percentunit",
            ),
            (
                "Below target",
                f"{level}:rooftop_decode_speed_of_light_ratio:count_below_target{{{SELECT}}}",
                "none",
            ),
        ],
    )
    layout.line([(per_model, 24)], h=8)
    layout.line(
        [
            (
                time_series(
                    "MBU per model (token-weighted mean)",
                    "Rule: `cluster_model:rooftop_model_bandwidth_utilization_ratio:"
                    "mean_weighted_by_tokens`",
                    [
                        query(
                            f"{level}:rooftop_model_bandwidth_utilization_ratio:"
                            f"mean_weighted_by_tokens{{{SELECT}}}",
                            f"{{{{{C}}}}} {{{{model}}}}",
                        )
                    ],
                    unit="percentunit",
                    max_value=1,
                ),
                12,
            ),
            (
                time_series(
                    "MFU per model (token-weighted mean)",
                    "Rule: `cluster_model:rooftop_model_flops_utilization_ratio:"
                    "mean_weighted_by_tokens`",
                    [
                        query(
                            f"{level}:rooftop_model_flops_utilization_ratio:"
                            f"mean_weighted_by_tokens{{{SELECT}}}",
                            f"{{{{{C}}}}} {{{{model}}}}",
                        )
                    ],
                    unit="percentunit",
                    max_value=1,
                ),
                12,
            ),
        ],
        h=8,
    )


def worst_gpus_expr() -> str:
    return f"bottomk({WORST_N},\n  rooftop_decode_speed_of_light_ratio{{{SELECT}}}\n  {ACTIVE}\n)"


def _worst() -> table.Panel:
    return (
        table.Panel()
        .title(f"Worst {WORST_N} GPUs by decode speed of light")
        .description(
            f"The {WORST_N} GPUs furthest below their decode speed of light while their engine "
            "generates tokens (idle GPUs are left out). Reads the per-GPU "
            "`rooftop_decode_speed_of_light_ratio` the clusters ship upstream."
        )
        .datasource(DATASOURCE)
        .unit("percentunit")
        .cell_height(cm.TableCellHeight.SM)
        .with_target(instant_table(worst_gpus_expr(), "A"))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "includeByName": dict.fromkeys(
                        (C, "instance", "gpu", "engine", "model", "Value"), True
                    ),
                    "renameByName": {C: "Cluster", "Value": "Decode SOL"},
                },
            )
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="sortBy", options={"sort": [{"field": "Decode SOL", "desc": False}]}
            )
        )
        .override_by_name("Decode SOL", [dm.DynamicConfigValue(id_val="unit", value="percentunit")])
    )


def _point(expr: str, name: str) -> str:
    return f'label_replace({expr}, "point", "{name}", "", "")'


def fleet_roofline_queries() -> dict[str, str]:
    """The normalised roofline's instant queries by refId, merged on ``point``.

    - A: x of every point: the roof's corners and each GPU's decode and prefill arithmetic
      intensity over its ridge point;
    - B: y of the roof's corners, ``min(x, 1)``;
    - C, D: y of the decode and prefill points: achieved FLOP/s over the GPU's peak
      (ridge x peak bandwidth), only where the phase runs (achieved > 0).
    """
    ridge = f"rooftop_gpu_ridge_point_flops_per_byte{{{SELECT_CLUSTER}}}"
    bandwidth = f"rooftop_gpu_peak_memory_bandwidth_bytes_per_second{{{SELECT_CLUSTER}}}"
    point_labels = f'"point", " ", "{C}", "instance", "gpu", "engine", "phase"'

    def intensity(phase: str) -> str:
        return (
            "label_join(\n    rooftop_arithmetic_intensity_flops_per_byte"
            f'{{{SELECT}, basis="model", phase="{phase}"}}\n'
            f"    / on ({GPU_ON}) group_left ()\n    {ridge},\n    {point_labels}\n  )"
        )

    def achieved(phase: str) -> str:
        return (
            "max by (point) (label_join(\n  (rooftop_achieved_flops_per_second"
            f'{{{SELECT}, phase="{phase}"}} > 0)\n'
            f"  / on ({GPU_ON}) group_left ()\n  ({ridge} * on ({GPU_ON}) {bandwidth}),\n"
            f"  {point_labels}\n))"
        )

    names = ("roof: memory", "roof: ridge", "roof: compute")
    corners = [_point(f"vector({x:g})", name) for x, name in zip(ROOF_X, names, strict=True)]
    roof = [_point(f"vector({min(x, 1.0):g})", name) for x, name in zip(ROOF_X, names, strict=True)]
    x = (
        "sort(max by (point) (\n  "
        + "\nor ".join([*corners, intensity("decode"), intensity("prefill")])
        + "\n))"
    )
    return {
        "A": x,
        "B": "max by (point) (\n  " + "\nor ".join(roof) + "\n)",
        "C": achieved("decode"),
        "D": achieved("prefill"),
    }


FLEET_ROOFLINE_FIELDS = {
    "Value #A": "intensity",  # the name panels._series matches x by
    "Value #B": "roof",
    "Value #C": "decode",
    "Value #D": "prefill",
}


def fleet_roofline_chart() -> xychart.Panel:
    panel = (
        xychart.Panel()
        .title("Roofline: every GPU, normalised")
        .description(
            "Every GPU's operating points on one roofline, whatever the GPU: x is arithmetic "
            "intensity over the GPU's ridge point (1 = the ridge), y is achieved FLOP/s over "
            "its peak; both log10. The red line is every GPU's roof, min(x, 1). A dot's "
            "height below the line is its fraction of speed of light; left of x = 1 it is "
            "bandwidth-bound. Blue: decode, purple: prefill (only GPUs running that phase).\n\n"
            "Metrics: `rooftop_arithmetic_intensity_flops_per_byte`, "
            "`rooftop_achieved_flops_per_second`, `rooftop_gpu_ridge_point_flops_per_byte`, "
            "`rooftop_gpu_peak_memory_bandwidth_bytes_per_second`"
        )
        .datasource(DATASOURCE)
        .mapping(xm.SeriesMapping.MANUAL)
        .series([_series("roof"), _series("decode"), _series("prefill")])
        .show(xm.XYShowMode.POINTS)
        .point_size(xychart.XychartFieldConfigPointSize().fixed(6))
        .scale_distribution(LOG10)
        .unit("percentunit")
        .axis_label("achieved / peak FLOP/s")
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE))
    )
    for ref, expr in fleet_roofline_queries().items():
        panel = panel.with_target(instant_table(expr, ref))
    panel = (
        panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": FLEET_ROOFLINE_FIELDS},
            )
        )
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="sortBy", options={"sort": [{"field": "intensity", "desc": False}]}
            )
        )
        .override_by_name(
            "intensity",
            [
                dm.DynamicConfigValue(id_val="unit", value="none"),
                dm.DynamicConfigValue(id_val="custom.axisLabel", value="intensity / ridge"),
            ],
        )
        .override_by_name(
            "roof",
            [
                dm.DynamicConfigValue(id_val="custom.show", value=xm.XYShowMode.LINES),
                dm.DynamicConfigValue(id_val="custom.lineWidth", value=2),
            ],
        )
    )
    for name, color in {"roof": "red", "decode": "blue", "prefill": "purple"}.items():
        panel = panel.override_by_name(name, [_color(color)])
    panel._internal.plugin_version = XYCHART_PLUGIN_VERSION
    return panel


def fleet_dashboard() -> db.Dashboard:
    dashboard = (
        db.Dashboard(TITLE)
        .uid(FLEET_UID)
        .description(
            "rooftop across a fleet, from a central store: verdict mix, token rates and "
            "token-weighted MBU/MFU per cluster and model, the worst GPUs, and one normalised "
            "roofline with every GPU. Needs the fleet rules (dashboards/rules/"
            "rooftop.fleet.rules.yaml); see docs/scale.md."
        )
        .tags(FLEET_TAGS)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("browser")
        .links(
            [
                db.DashboardLink("rooftop")
                .type(dm.DashboardLinkType.DASHBOARDS)
                .tags(["rooftop"])
                .as_dropdown(False)
                .include_vars(False)
                .keep_time(True)
                .tooltip("rooftop's per-node roofline and overview dashboards"),
            ]
        )
        .variables(fleet_variables())
    )
    layout = Layout(dashboard)
    _totals(layout)
    _efficiency(layout)
    layout.row("GPUs")
    layout.line([(_worst(), 10), (fleet_roofline_chart(), 14)], h=12)
    return dashboard
