"""Panel builders on top of grafana-foundation-sdk, in the few styles the dashboards use."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries, xychart
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import xychart as xm

from rooftop.dashboards.common import (
    DATASOURCE,
    GPU,
    LOG10,
    PER_TARGET,
    ValueMapping,
    instant_table,
    query,
    verdict_mappings,
)

XYCHART_PLUGIN_VERSION = "11.6.0"
"""Without ``pluginVersion`` Grafana runs its v1→v2 XY-chart migration on these v2 options and
mangles them (grafana/grafana#125371); the SDK's xychart builder has no setter for it."""


def _color(color: str) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color})


def _thresholds(*steps: tuple[str, float | None]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(color=color, value=value) for color, value in steps])
    )


def time_series(
    title: str,
    description: str,
    targets: Sequence[prom.Dataquery],
    *,
    unit: str,
    colors: dict[str, str] | None = None,
    max_value: float | None = None,
    log_scale: bool = False,
    threshold_line: float | None = None,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .line_width(1)
        .fill_opacity(25 if stacked else 10)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    panel = panel.scale_distribution(LOG10) if log_scale else panel.min(0)
    if max_value is not None:
        panel = panel.max(max_value)
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if threshold_line is not None:
        panel = panel.thresholds(_thresholds(("transparent", None), ("red", threshold_line)))
        panel = panel.thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    for name, color in (colors or {}).items():
        panel = panel.override_by_name(name, [_color(color)])
    return panel


def stat_panel(
    title: str,
    description: str,
    target: prom.Dataquery,
    *,
    unit: str,
    text_mode: cm.BigValueTextMode = cm.BigValueTextMode.VALUE,
    steps: Sequence[tuple[str, float | None]] = (("blue", None),),
    mappings: list[ValueMapping] | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target)
        .unit(unit)
        .text_mode(text_mode)
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(_thresholds(*steps))
    )
    if mappings:
        panel = panel.mappings(mappings)
    return panel


def state_timeline(
    title: str,
    description: str,
    targets: Sequence[prom.Dataquery],
    mappings: list[ValueMapping],
) -> statetimeline.Panel:
    panel = (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        # Fixed text colour so the value mappings, not threshold ranges, colour the states.
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("text"))
        .mappings(mappings)
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def merged_table(
    title: str,
    description: str,
    labels: dict[str, str],
    columns: Sequence[tuple[str, str, str]],
) -> table.Panel:
    """One instant query per column, merged on their common labels.

    ``labels`` maps label columns to titles; each column is ``(title, PromQL, unit)``.
    """
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("none")
        .cell_height(cm.TableCellHeight.SM)
    )
    values: dict[str, str] = {}
    for index, (name, expr, _) in enumerate(columns):
        ref = chr(ord("A") + index)
        panel = panel.with_target(instant_table(expr, ref))
        values[f"Value #{ref}"] = name
    order = [*labels, *values]
    panel = panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    panel = panel.with_transformation(
        dm.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True},
                "includeByName": dict.fromkeys(order, True),
                "indexByName": {name: index for index, name in enumerate(order)},
                "renameByName": {**labels, **values},
            },
        )
    )
    for name, _, unit in columns:
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    return panel


def info_table(title: str, description: str, expr: str, columns: dict[str, str]) -> table.Panel:
    """The labels of an info-style series as a table; ``columns`` maps label → title."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit("string")
        .cell_height(cm.TableCellHeight.SM)
        .with_target(instant_table(expr, "A"))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "includeByName": dict.fromkeys(columns, True),
                    "indexByName": {name: index for index, name in enumerate(columns)},
                    "renameByName": columns,
                },
            )
        )
    )


def verdict_timeline(title: str, description: str, expr: str, legend: str) -> statetimeline.Panel:
    return state_timeline(title, description, [query(expr, legend)], verdict_mappings())


# --- the roofline ------------------------------------------------------------------------

ROOF_X_LOW = 1000.0
"""The memory roof is drawn from ridge/1000 (batch-1 decode sits near 1 FLOP/byte)."""
ROOF_X_HIGH = 100.0
"""The compute roof is drawn to ridge×100 (long-prompt prefill reaches thousands)."""

RIDGE = f"rooftop_gpu_ridge_point_flops_per_byte{{{GPU}}}"
PEAK = f"{RIDGE} * rooftop_gpu_peak_memory_bandwidth_bytes_per_second{{{GPU}}}"


def _point(expr: str, name: str) -> str:
    return f'label_replace({expr}, "point", "{name}", "", "")'


def roofline_queries() -> dict[str, str]:
    """The four instant queries of the roofline chart, by refId.

    Every query yields one value per ``(instance, point)``; the ``merge`` transformation joins
    them into one frame whose rows are points: the roof's three corners (memory roof start,
    ridge, compute roof end) and one operating point per phase and engine.

    - A: x, arithmetic intensity (FLOP/byte) of every point;
    - B: y of the roof corners: attainable FLOP/s = min(peak, x × bandwidth);
    - C: y of the decode operating points, achieved FLOP/s;
    - D: y of the prefill operating points.
    """
    operating_x = (
        "label_join(rooftop_arithmetic_intensity_flops_per_byte{"
        + PER_TARGET
        + ', basis="model"}, "point", " ", "phase", "engine")'
    )
    x = (
        "sort(max by (instance, point) (\n  "
        + "\nor ".join(
            [
                _point(f"{RIDGE} / {ROOF_X_LOW:g}", "roof: memory"),
                _point(f"{RIDGE} * 1", "roof: ridge"),
                _point(f"{RIDGE} * {ROOF_X_HIGH:g}", "roof: compute"),
                operating_x,
            ]
        )
        + "\n))"
    )
    roof = (
        "max by (instance, point) (\n  "
        + "\nor ".join(
            [
                _point(f"{PEAK} / {ROOF_X_LOW:g}", "roof: memory"),
                _point(PEAK, "roof: ridge"),
                _point(PEAK, "roof: compute"),
            ]
        )
        + "\n)"
    )

    def achieved(phase: str) -> str:
        return (
            "max by (instance, point) (label_join(rooftop_achieved_flops_per_second{"
            + PER_TARGET
            + f', phase="{phase}"}}, "point", " ", "phase", "engine"))'
        )

    return {"A": x, "B": roof, "C": achieved("decode"), "D": achieved("prefill")}


ROOFLINE_FIELDS = {
    "Value #A": "intensity",
    "Value #B": "roof",
    "Value #C": "decode",
    "Value #D": "prefill",
}
ROOFLINE_COLORS = {"roof": "red", "decode": "blue", "prefill": "purple"}


def _series(y_field: str) -> xychart.XYSeriesConfig:
    return (
        xychart.XYSeriesConfig()
        .name(xychart.XychartXYSeriesConfigName().fixed(y_field))
        .frame(
            xychart.XychartXYSeriesConfigFrame().matcher(
                xychart.MatcherConfig().id("byIndex").options(0)
            )
        )
        .x(
            xychart.XychartXYSeriesConfigX().matcher(
                xychart.MatcherConfig().id("byName").options("intensity")
            )
        )
        .y(
            xychart.XychartXYSeriesConfigY().matcher(
                xychart.MatcherConfig().id("byName").options(y_field)
            )
        )
    )


def roofline_chart() -> xychart.Panel:
    """A log-log XY chart: the roof as a line, the live operating points as dots."""
    panel = (
        xychart.Panel()
        .title("Roofline: GPU $gpu")
        .description(
            "Attainable FLOP/s against arithmetic intensity (FLOP per byte of DRAM traffic), "
            "both axes log10. The red line is the roof: the bandwidth roof (slope = peak "
            "bandwidth) up to the ridge point, then the flat compute roof of the GPU's compute "
            "dtype. Dots are the live operating points: model FLOP/s achieved by decode and by "
            "prefill, at the phase's model arithmetic intensity. A dot left of the ridge is "
            "bandwidth-bound; its distance below the roof is the speed-of-light gap.\n\n"
            "Metrics: `rooftop_gpu_ridge_point_flops_per_byte`, "
            "`rooftop_gpu_peak_memory_bandwidth_bytes_per_second`, "
            '`rooftop_arithmetic_intensity_flops_per_byte{basis="model"}`, '
            "`rooftop_achieved_flops_per_second`"
        )
        .datasource(DATASOURCE)
        .mapping(xm.SeriesMapping.MANUAL)
        .series([_series("roof"), _series("decode"), _series("prefill")])
        .show(xm.XYShowMode.POINTS)
        .point_size(xychart.XychartFieldConfigPointSize().fixed(9))
        .scale_distribution(LOG10)
        .unit("flops")
        .axis_label("attainable FLOP/s")
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE))
    )
    for ref, expr in roofline_queries().items():
        panel = panel.with_target(instant_table(expr, ref))
    panel = (
        panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {"Time": True}, "renameByName": ROOFLINE_FIELDS},
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
                dm.DynamicConfigValue(id_val="unit", value="suffix: FLOP/B"),
                dm.DynamicConfigValue(id_val="custom.axisLabel", value="arithmetic intensity"),
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
    for name, color in ROOFLINE_COLORS.items():
        panel = panel.override_by_name(name, [_color(color)])
    panel._internal.plugin_version = XYCHART_PLUGIN_VERSION
    return panel
