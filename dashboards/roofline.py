"""The roofline dashboard: one repeated row per GPU with its roof and live operating points."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import dashboard as dm

from rooftop.dashboards.common import (
    GPU,
    OVERVIEW_UID,
    PER_TARGET,
    ROOFLINE_UID,
    TAGS,
    Layout,
    dashboard_url,
    links,
    query,
    variables,
)
from rooftop.dashboards.panels import info_table, roofline_chart, time_series

TITLE = "rooftop / Roofline"


def _speed_of_light() -> timeseries.Panel:
    return time_series(
        "Speed of light",
        "How close each phase runs to its roof. Decode: achieved tokens/s over the "
        "speed-of-light tokens/s for the live batch and context (MBU while decode is "
        "memory-bound). Prefill: achieved FLOP/s over the compute roof (prefill MFU). The "
        "dashed line is the RooftopDecodeBelowBandwidthEfficiency threshold (50%).\n\n"
        "Metrics: `rooftop_decode_speed_of_light_ratio`, `rooftop_prefill_speed_of_light_ratio`",
        [
            query(f"rooftop_decode_speed_of_light_ratio{{{PER_TARGET}}}", "decode {{engine}}", "A"),
            query(
                f"rooftop_prefill_speed_of_light_ratio{{{PER_TARGET}}}", "prefill {{engine}}", "B"
            ),
        ],
        unit="percentunit",
        max_value=1,
        threshold_line=0.5,
    )


def _intensity_vs_ridge() -> timeseries.Panel:
    return time_series(
        "Arithmetic intensity vs ridge",
        "Arithmetic intensity of each phase over time against the GPU's ridge point (log "
        "scale). Below the ridge a phase can at best be bandwidth-bound; above it, "
        "compute-bound. basis=model counts the bytes the model must move; basis=observed "
        "divides the same FLOPs by the DRAM bytes the counters saw.\n\n"
        "Metrics: `rooftop_arithmetic_intensity_flops_per_byte`, "
        "`rooftop_gpu_ridge_point_flops_per_byte`",
        [
            query(
                f"rooftop_arithmetic_intensity_flops_per_byte{{{PER_TARGET}}}",
                "{{phase}} ({{basis}}) {{engine}}",
                "A",
            ),
            query(f"rooftop_gpu_ridge_point_flops_per_byte{{{GPU}}}", "ridge", "B"),
        ],
        unit="suffix: FLOP/B",
        log_scale=True,
        colors={"ridge": "red"},
    )


def _bytes_per_token() -> timeseries.Panel:
    return time_series(
        "Bytes per decode token: observed vs model",
        "Bytes one decode token must move according to the model (weights shared by the batch "
        "plus the KV cache read) against the DRAM bytes the GPU actually moved per token "
        "(observed bandwidth / decode tokens/s). Observed well above model: extra traffic "
        "(activations, other work, a wrong model guess). Needs GPM or DCGM telemetry.\n\n"
        "Metrics: `rooftop_decode_bytes_per_token`, `rooftop_decode_observed_bytes_per_token`",
        [
            query(f"rooftop_decode_bytes_per_token{{{PER_TARGET}}}", "model {{engine}}", "A"),
            query(
                f"rooftop_decode_observed_bytes_per_token{{{PER_TARGET}}}",
                "observed {{engine}}",
                "B",
            ),
        ],
        unit="bytes",
    )


def _achieved_flops() -> timeseries.Panel:
    return time_series(
        "Achieved FLOP/s vs compute roof",
        "Model FLOP/s achieved by each phase (the operating points' height) over time, "
        "against the compute roof (peak FLOP/s of the compute dtype).\n\n"
        "Metrics: `rooftop_achieved_flops_per_second`, "
        "`rooftop_gpu_ridge_point_flops_per_byte` × "
        "`rooftop_gpu_peak_memory_bandwidth_bytes_per_second`",
        [
            query(
                f"rooftop_achieved_flops_per_second{{{PER_TARGET}}}", "{{phase}} {{engine}}", "A"
            ),
            query(
                f"rooftop_gpu_ridge_point_flops_per_byte{{{GPU}}}"
                f" * rooftop_gpu_peak_memory_bandwidth_bytes_per_second{{{GPU}}}",
                "compute roof",
                "B",
            ),
        ],
        unit="flops",
        log_scale=True,
        colors={"compute roof": "red"},
    )


def _verdict_table() -> table.Panel:
    return info_table(
        "Verdict now",
        "The bottleneck verdict per engine on this GPU, the evidence tier it rests on "
        "(gpm, dcgm, nvml or engine-only) and its cause code (docs/metrics.md lists them; "
        "the sentence with the numbers is on rooftop's landing page).\n\n"
        "Metric: `rooftop_gpu_bound_info`",
        f"rooftop_gpu_bound_info{{{PER_TARGET}}}",
        {
            "instance": "Instance",
            "engine": "Engine",
            "model": "Model",
            "state": "Bound",
            "evidence": "Evidence",
            "cause": "Cause",
        },
    )


def roofline_dashboard() -> db.Dashboard:
    dashboard = (
        db.Dashboard(TITLE)
        .uid(ROOFLINE_UID)
        .description(
            "Per GPU: the roofline (bandwidth and compute roofs, ridge point) with the live "
            "decode and prefill operating points, and how far below speed of light each runs."
        )
        .tags(TAGS)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .links(links())
        .variables(variables())
    )
    layout = Layout(dashboard)
    layout.row("GPU $gpu", repeat="gpu")
    chart = roofline_chart().links([db.DashboardLink("Overview").url(dashboard_url(OVERVIEW_UID))])
    layout.place(chart, 0, 0, 12, 16)
    layout.place(_speed_of_light(), 12, 0, 12, 8)
    layout.place(_intensity_vs_ridge(), 12, 8, 12, 8)
    layout.advance(16)
    layout.line(
        [(_bytes_per_token(), 8), (_achieved_flops(), 8), (_verdict_table(), 8)],
        h=8,
    )
    return dashboard
