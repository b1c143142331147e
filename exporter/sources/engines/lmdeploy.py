"""LMDeploy api_server: ``lmdeploy:*`` families (≥0.9.2; on by default since 0.11).

Counters ``prompt_tokens_total``, ``generation_tokens_total``, ``cached_tokens_total`` (prefix
hits, so computed prefill = prompt − cached); gauges ``num_requests_running``,
``num_requests_waiting``, ``gpu_cache_usage_perc`` (fraction); histograms
``iteration_tokens_total``, ``time_to_first_token_seconds``, ``iter_token_latency`` (ITL,
else ``time_per_output_token_seconds``). Labels ``model_name``, ``engine`` (DP rank, summed).
No KV capacity: LMDeploy declares ``backend_config`` but never fills it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rooftop.exporter.sources.engines.base import (
    NO_EXTRAS,
    EngineReading,
    ExtraEndpoint,
    Extras,
    Families,
    FamilySelection,
    build_reading,
)
from rooftop.exporter.sources.exposition import (
    first_label,
    get_family,
    mean_values,
    names_with_prefix,
    recognise_namespaced,
    sum_count,
    sum_values,
)

_CLAIMING = (
    "lmdeploy:num_requests_running",
    "lmdeploy:generation_tokens",
    "lmdeploy:prompt_tokens",
    "lmdeploy:gpu_cache_usage_perc",
)

_HINTS = {
    "kv_capacity_tokens": "LMDeploy exports no KV capacity",
    "kv_block_size_tokens": "LMDeploy exports no KV block size",
    "kv_cache_dtype": "not in LMDeploy's exposition",
    "weights_dtype": "not in LMDeploy's exposition",
    "prefill_computed_tokens_total": "needs lmdeploy:cached_tokens_total",
    "estimated_flops_total": "LMDeploy has no FLOP estimate",
    "estimated_read_bytes_total": "LMDeploy has no byte estimate",
    "estimated_write_bytes_total": "LMDeploy has no byte estimate",
    "requests_running": "start LMDeploy <0.11 with --enable-metrics",
}


_READS = FamilySelection(prefixes=("lmdeploy:",))
"""Every family in the engine's namespace (a new one needs no line here), bucket lines skipped."""


@dataclass(frozen=True)
class LmdeployAdapter:
    family: str = "lmdeploy"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    def recognise(self, families: Families) -> str | None:
        return recognise_namespaced(families, _CLAIMING, "lmdeploy:", "LMDeploy")

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        prompt = sum_values(get_family(families, "lmdeploy:prompt_tokens"))
        cached = sum_values(get_family(families, "lmdeploy:cached_tokens"))
        computed = max(prompt - cached, 0.0) if prompt is not None and cached is not None else None
        return build_reading(
            self.family,
            "lmdeploy",
            self.recognise(families) or "",
            _HINTS,
            model=first_label(
                families, (*_CLAIMING, *names_with_prefix(families, "lmdeploy:")), ("model_name",)
            ),
            prompt_tokens_total=prompt,
            prefill_computed_tokens_total=computed,
            generation_tokens_total=sum_values(get_family(families, "lmdeploy:generation_tokens")),
            requests_running=sum_values(get_family(families, "lmdeploy:num_requests_running")),
            requests_waiting=sum_values(get_family(families, "lmdeploy:num_requests_waiting")),
            kv_usage_ratio=mean_values(get_family(families, "lmdeploy:gpu_cache_usage_perc")),
            inter_token_latency_sum_count=sum_count(
                get_family(
                    families,
                    "lmdeploy:iter_token_latency",
                    "lmdeploy:time_per_output_token_seconds",
                )
            ),
            time_to_first_token_sum_count=sum_count(
                get_family(families, "lmdeploy:time_to_first_token_seconds")
            ),
            iteration_tokens_sum_count=sum_count(
                get_family(families, "lmdeploy:iteration_tokens_total")
            ),
        )
