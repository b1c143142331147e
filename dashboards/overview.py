"""The overview dashboard: the fleet per model, exporter health, then one row per GPU."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from rooftop.classifiers.verdict import STATES
from rooftop.dashboards.common import (
    ENGINE,
    GPU,
    MODEL_RULE,
    OVERVIEW_UID,
    PER_TARGET,
    POD_RULE,
    ROOFLINE_UID,
    TAGS,
    TARGET,
    Layout,
    ValueMapping,
    dashboard_url,
    links,
    query,
    variables,
    verdict_code_expr,
)
from rooftop.dashboards.panels import (
    merged_table,
    stat_panel,
    state_timeline,
    time_series,
    verdict_timeline,
)

TITLE = "rooftop / Overview"

ON_THIS_GPU = f"and on (job, instance, engine, model) rooftop_gpu_bound{{{PER_TARGET}}}"
"""Keeps the engine series of the engines that run on the row's GPU."""

SOURCE_MAPPINGS: list[ValueMapping] = [
    dm.ValueMap(
        options={
            "0": dm.ValueMappingResult(text="down", color="red", index=0),
            "1": dm.ValueMappingResult(text="up", color="green", index=1),
        }
    )
]


def _fleet(layout: Layout) -> None:
    layout.row("Fleet")
    layout.line(
        [
            (
                stat_panel(
                    "GPUs by verdict",
                    "How many GPU/engine targets are in each bottleneck state now.\n\n"
                    "Metric: `rooftop_gpu_bound`",
                    query(f"sum by (state) (rooftop_gpu_bound{{{PER_TARGET}}})", "{{state}}"),
                    unit="none",
                    text_mode=cm.BigValueTextMode.VALUE_AND_NAME,
                ),
                8,
            ),
            (
                stat_panel(
                    "Decode tokens/s",
                    "Generated tokens per second, all selected engines.\n\n"
                    "Metric: `rooftop_engine_decode_tokens_per_second`",
                    query(f"sum(rooftop_engine_decode_tokens_per_second{{{ENGINE}}})"),
                    unit="none",
                ),
                4,
            ),
            (
                stat_panel(
                    "Prefill tokens/s",
                    "Prompt tokens computed per second, all selected engines.\n\n"
                    "Metric: `rooftop_engine_prefill_tokens_per_second`",
                    query(f"sum(rooftop_engine_prefill_tokens_per_second{{{ENGINE}}})"),
                    unit="none",
                ),
                4,
            ),
            (
                stat_panel(
                    "Decode speed of light",
                    "Mean decode speed-of-light ratio (MBU while memory-bound) over the "
                    "selected GPUs; red under the 50% alert threshold.\n\n"
                    "Metric: `rooftop_decode_speed_of_light_ratio`",
                    query(f"avg(rooftop_decode_speed_of_light_ratio{{{PER_TARGET}}})"),
                    unit="percentunit",
                    steps=(("red", None), ("green", 0.5)),
                ),
                4,
            ),
            (
                stat_panel(
                    "Sources down",
                    "Telemetry and engine sources whose last poll failed.\n\n"
                    "Metric: `rooftop_source_up`",
                    query(f"count(rooftop_source_up{{{TARGET}}} == 0) or vector(0)"),
                    unit="none",
                    steps=(("green", None), ("red", 1)),
                ),
                4,
            ),
        ],
        h=4,
    )
    per_model = merged_table(
        "Per model",
        "Each served model across its GPUs and engines, from the rooftop recording rules "
        "(dashboards/rules/rooftop.rules.yaml): token rates and batch summed, speed-of-light "
        "ratios and MBU/MFU averaged, GPUs counted by verdict.",
        {"job": "Job", "namespace": "Namespace", "model": "Model"},
        [
            (
                "Decode tok/s",
                f"model:rooftop_engine_decode_tokens_per_second:sum{{{MODEL_RULE}}}",
                "none",
            ),
            (
                "Prefill tok/s",
                f"model:rooftop_engine_prefill_tokens_per_second:sum{{{MODEL_RULE}}}",
                "none",
            ),
            ("Running", f"model:rooftop_engine_requests_running:sum{{{MODEL_RULE}}}", "none"),
            ("Waiting", f"model:rooftop_engine_requests_waiting:sum{{{MODEL_RULE}}}", "none"),
            (
                "Decode SOL",
                f"model:rooftop_decode_speed_of_light_ratio:avg{{{MODEL_RULE}}}",
                "percentunit",
            ),
            (
                "Prefill SOL",
                f"model:rooftop_prefill_speed_of_light_ratio:avg{{{MODEL_RULE}}}",
                "percentunit",
            ),
            (
                "MBU",
                f"model:rooftop_model_bandwidth_utilization_ratio:avg{{{MODEL_RULE}}}",
                "percentunit",
            ),
            (
                "MFU",
                f"model:rooftop_model_flops_utilization_ratio:avg{{{MODEL_RULE}}}",
                "percentunit",
            ),
            *(
                (
                    f"GPUs {state}",
                    "sum without (state) "
                    f'(model:rooftop_gpu_bound:sum{{{MODEL_RULE}, state="{state}"}})',
                    "none",
                )
                for state in STATES
                if state not in ("idle", "unknown")
            ),
        ],
    )
    layout.line([(per_model, 24)], h=7)
    layout.line(
        [
            (
                time_series(
                    "Decode tokens/s by pod",
                    "From the recording rule pod:rooftop_engine_decode_tokens_per_second:sum.",
                    [
                        query(
                            f"pod:rooftop_engine_decode_tokens_per_second:sum{{{POD_RULE}}}",
                            "{{job}} {{namespace}} {{pod}}",
                        )
                    ],
                    unit="none",
                ),
                12,
            ),
            (
                time_series(
                    "Decode speed of light by pod",
                    "From the recording rule pod:rooftop_decode_speed_of_light_ratio:avg; the "
                    "dashed line is the alert threshold.",
                    [
                        query(
                            f"pod:rooftop_decode_speed_of_light_ratio:avg{{{POD_RULE}}}",
                            "{{job}} {{namespace}} {{pod}}",
                        )
                    ],
                    unit="percentunit",
                    max_value=1,
                    threshold_line=0.5,
                ),
                12,
            ),
        ],
        h=7,
    )


def _health(layout: Layout) -> None:
    layout.row("Exporter health")
    layout.line(
        [
            (
                state_timeline(
                    "Sources",
                    "Whether each source's last poll succeeded (engines are named by address).\n\n"
                    "Metric: `rooftop_source_up`",
                    [query(f"rooftop_source_up{{{TARGET}}}", "{{kind}}: {{source}}")],
                    SOURCE_MAPPINGS,
                ),
                10,
            ),
            (
                time_series(
                    "Snapshot age and sampler cycle",
                    "Age of the snapshot being served (grows when the sampler stalls; "
                    "RooftopSnapshotStale fires on it) and the wall time of the last sampler "
                    "cycle.\n\nMetrics: `rooftop_snapshot_age_seconds`, "
                    "`rooftop_sampler_cycle_seconds`",
                    [
                        query(f"rooftop_snapshot_age_seconds{{{TARGET}}}", "age {{instance}}", "A"),
                        query(
                            f"rooftop_sampler_cycle_seconds{{{TARGET}}}", "cycle {{instance}}", "B"
                        ),
                    ],
                    unit="s",
                ),
                5,
            ),
            (
                time_series(
                    "Source poll duration",
                    "How long each source's last poll took.\n\n"
                    "Metric: `rooftop_source_duration_seconds`",
                    [query(f"rooftop_source_duration_seconds{{{TARGET}}}", "{{kind}}: {{source}}")],
                    unit="s",
                ),
                5,
            ),
            (
                stat_panel(
                    "rooftop",
                    "Exporter version; demo=true when every series comes from the simulated "
                    "demo node.\n\nMetric: `rooftop_build_info`",
                    query(f"rooftop_build_info{{{TARGET}}}", "{{version}} demo={{demo}}"),
                    unit="none",
                    text_mode=cm.BigValueTextMode.NAME,
                ),
                4,
            ),
        ],
        h=6,
    )


def _gpu_row(layout: Layout) -> None:
    layout.row("GPU $gpu", repeat="gpu")
    timeline = verdict_timeline(
        "Verdict",
        "Bottleneck verdict per engine on this GPU: memory-, compute- or latency-bound, or "
        "idle. Open the roofline dashboard (panel link) to see where the operating point "
        "sits.\n\nMetric: `rooftop_gpu_bound` (one-hot state set)",
        verdict_code_expr(PER_TARGET),
        "{{engine}} · {{model}} · {{instance}}",
    ).links([db.DashboardLink("Roofline").url(dashboard_url(ROOFLINE_UID))])
    layout.line([(timeline, 24)], h=5)
    layout.line(
        [
            (
                time_series(
                    "Decode MBU and prefill MFU",
                    "Decode: achieved over speed-of-light tokens/s (MBU while memory-bound). "
                    "Prefill: achieved FLOP/s over the compute roof (MFU). Dashed: the 50% "
                    "alert threshold.\n\nMetrics: `rooftop_decode_speed_of_light_ratio`, "
                    "`rooftop_prefill_speed_of_light_ratio`",
                    [
                        query(
                            f"rooftop_decode_speed_of_light_ratio{{{PER_TARGET}}}",
                            "decode {{engine}}",
                            "A",
                        ),
                        query(
                            f"rooftop_prefill_speed_of_light_ratio{{{PER_TARGET}}}",
                            "prefill {{engine}}",
                            "B",
                        ),
                    ],
                    unit="percentunit",
                    max_value=1,
                    threshold_line=0.5,
                ),
                8,
            ),
            (
                time_series(
                    "Tokens/s",
                    "Prompt and generated tokens per second of the engines on this GPU.\n\n"
                    "Metrics: `rooftop_engine_prefill_tokens_per_second`, "
                    "`rooftop_engine_decode_tokens_per_second`",
                    [
                        query(
                            f"rooftop_engine_decode_tokens_per_second{{{ENGINE}}} {ON_THIS_GPU}",
                            "decode {{engine}}",
                            "A",
                        ),
                        query(
                            f"rooftop_engine_prefill_tokens_per_second{{{ENGINE}}} {ON_THIS_GPU}",
                            "prefill {{engine}}",
                            "B",
                        ),
                    ],
                    unit="none",
                ),
                8,
            ),
            (
                time_series(
                    "Batch",
                    "Requests in the running batch and in the queue.\n\n"
                    "Metrics: `rooftop_engine_requests_running`, `rooftop_engine_requests_waiting`",
                    [
                        query(
                            f"rooftop_engine_requests_running{{{ENGINE}}} {ON_THIS_GPU}",
                            "running {{engine}}",
                            "A",
                        ),
                        query(
                            f"rooftop_engine_requests_waiting{{{ENGINE}}} {ON_THIS_GPU}",
                            "waiting {{engine}}",
                            "B",
                        ),
                    ],
                    unit="none",
                ),
                8,
            ),
        ],
        h=8,
    )
    layout.line(
        [
            (
                time_series(
                    "KV cache",
                    "Share of the engine's KV cache in use.\n\n"
                    "Metric: `rooftop_engine_kv_cache_usage_ratio`",
                    [
                        query(
                            f"rooftop_engine_kv_cache_usage_ratio{{{ENGINE}}} {ON_THIS_GPU}",
                            "{{engine}}",
                        )
                    ],
                    unit="percentunit",
                    max_value=1,
                ),
                8,
            ),
            (
                time_series(
                    "GPU activity",
                    "DRAM bandwidth, SM and tensor-pipe activity (0-1) from the best telemetry "
                    "tier available (GPM, DCGM); classic NVML has none of these.\n\n"
                    "Metrics: `rooftop_gpu_dram_active_ratio`, `rooftop_gpu_sm_active_ratio`, "
                    "`rooftop_gpu_tensor_active_ratio`",
                    [
                        query(f"rooftop_gpu_dram_active_ratio{{{GPU}}}", "DRAM ({{tier}})", "A"),
                        query(f"rooftop_gpu_sm_active_ratio{{{GPU}}}", "SM ({{tier}})", "B"),
                        query(
                            f"rooftop_gpu_tensor_active_ratio{{{GPU}}}", "tensor ({{tier}})", "C"
                        ),
                    ],
                    unit="percentunit",
                    max_value=1,
                ),
                8,
            ),
            (
                stat_panel(
                    "Telemetry tier",
                    "The GPU and where its activity figures come from: gpm (NVML GPM, "
                    "Hopper+), dcgm (DCGM profiling), nvml (classic utilisation only) or none.\n\n"
                    "Metric: `rooftop_gpu_info`",
                    query(f"rooftop_gpu_info{{{GPU}}}", "{{name}} · {{tier}}"),
                    unit="none",
                    text_mode=cm.BigValueTextMode.NAME,
                ),
                4,
            ),
            (
                stat_panel(
                    "Host thread",
                    "CPU share of one core used by the engine's busiest thread; near 100% the "
                    "scheduler is saturated and the GPU waits on the host.\n\n"
                    "Metric: `rooftop_engine_busiest_thread_cpu_ratio`",
                    query(
                        f"rooftop_engine_busiest_thread_cpu_ratio{{{ENGINE}}} {ON_THIS_GPU}",
                        "{{engine}}",
                    ),
                    unit="percentunit",
                    steps=(("green", None), ("orange", 0.8), ("red", 0.95)),
                ),
                4,
            ),
        ],
        h=6,
    )


def overview_dashboard() -> db.Dashboard:
    dashboard = (
        db.Dashboard(TITLE)
        .uid(OVERVIEW_UID)
        .description(
            "rooftop at a glance: each model's throughput and speed of light, the exporter's "
            "sources, then one row per GPU with its verdict, MBU/MFU, tokens, batch and KV."
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
    _fleet(layout)
    _health(layout)
    _gpu_row(layout)
    return dashboard
