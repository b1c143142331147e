"""NVIDIA Dynamo: the HTTP frontend (``dynamo_frontend_*``) and workers (``dynamo_component_*``).

A worker that also re-exposes its engine's registry (``vllm:*``, ``sglang:*``, ``trtllm_*``) is
claimed by that engine's adapter first (``ADAPTERS`` order); this adapter takes the rest.

Frontend (research/engine-metrics.md §7): prompt tokens ``input_sequence_tokens_sum`` (at request
end), generated ``output_tokens_total`` (real time), running ``inflight_requests``, waiting
``queued_requests``, KV capacity ``model_total_kv_blocks × model_kv_cache_block_size``, TTFT and
ITL histograms. The ``model`` label is lower-cased on request series but not on ``model_*``
gauges, so the model name is read from the gauges first.

Worker: running ``dynamo_component_inflight_requests``, KV use
``dynamo_component_kvstats_gpu_cache_usage_percent`` (a fraction, forwarded from the engine).
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
    first_value,
    get_family,
    mean_values,
    present_families,
    sum_count,
    sum_values,
)

_FRONTEND = (
    "dynamo_frontend_inflight_requests",
    "dynamo_frontend_output_tokens",
    "dynamo_frontend_requests",
    "dynamo_frontend_model_total_kv_blocks",
)
_WORKER = (
    "dynamo_component_kvstats_gpu_cache_usage_percent",
    "dynamo_component_kvstats_total_blocks",
    "dynamo_component_inflight_requests",
)
_MODEL_FAMILIES = (
    "dynamo_frontend_model_total_kv_blocks",
    "dynamo_frontend_model_kv_cache_block_size",
    "dynamo_frontend_model_context_length",
    "dynamo_frontend_inflight_requests",
    "dynamo_frontend_output_tokens",
    "dynamo_frontend_requests",
    "dynamo_component_inflight_requests",
    "dynamo_component_requests",
)

_MFU_HINT = "scrape the worker's engine metrics (vLLM/SGLang --enable-mfu-metrics)"
_HINTS = {
    "prefill_computed_tokens_total": "the Dynamo frontend does not split cached prefill",
    "kv_cache_dtype": "not in Dynamo's exposition",
    "weights_dtype": "not in Dynamo's exposition",
    "estimated_flops_total": _MFU_HINT,
    "estimated_read_bytes_total": _MFU_HINT,
    "estimated_write_bytes_total": _MFU_HINT,
    "iteration_tokens_sum_count": "Dynamo has no per-step token histogram",
    "kv_usage_ratio": "the frontend has no KV use; scrape a worker (DYN_SYSTEM_PORT)",
}


_READS = FamilySelection(prefixes=("dynamo_frontend_", "dynamo_component_"))
"""Every family in the engine's namespace (a new one needs no line here), bucket lines skipped."""


@dataclass(frozen=True)
class DynamoAdapter:
    family: str = "dynamo"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    def recognise(self, families: Families) -> str | None:
        frontend = present_families(families, _FRONTEND)
        if frontend:
            return "Dynamo frontend families present: " + ", ".join(frontend)
        worker = present_families(families, _WORKER)
        if worker:
            return "Dynamo worker families present: " + ", ".join(worker)
        return None

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        model = first_label(families, _MODEL_FAMILIES, ("model",))
        blocks = sum_values(get_family(families, "dynamo_frontend_model_total_kv_blocks"))
        block_size = first_value(get_family(families, "dynamo_frontend_model_kv_cache_block_size"))
        capacity = blocks * block_size if blocks is not None and block_size is not None else None
        frontend = bool(present_families(families, _FRONTEND))
        running = sum_values(get_family(families, "dynamo_frontend_inflight_requests"))
        if running is None:
            running = sum_values(get_family(families, "dynamo_component_inflight_requests"))
        return build_reading(
            self.family,
            "dynamo-frontend" if frontend else "dynamo-worker",
            self.recognise(families) or "",
            _HINTS,
            model=model,
            prompt_tokens_total=sum_values(
                get_family(families, "dynamo_frontend_input_sequence_tokens"), "_sum"
            ),
            generation_tokens_total=sum_values(
                get_family(families, "dynamo_frontend_output_tokens")
            ),
            requests_running=running,
            requests_waiting=sum_values(get_family(families, "dynamo_frontend_queued_requests")),
            kv_usage_ratio=mean_values(
                get_family(families, "dynamo_component_kvstats_gpu_cache_usage_percent")
            ),
            kv_capacity_tokens=capacity,
            kv_block_size_tokens=(
                int(block_size) if block_size is not None and block_size >= 1 else None
            ),
            inter_token_latency_sum_count=sum_count(
                get_family(families, "dynamo_frontend_inter_token_latency_seconds")
            ),
            time_to_first_token_sum_count=sum_count(
                get_family(families, "dynamo_frontend_time_to_first_token_seconds")
            ),
        )
