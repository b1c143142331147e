"""TensorRT-LLM, served by Triton (``nv_trt_llm_*``, ``nv_llm_*``, ``nv_inference_*`` on port
8002) or by trtllm-serve (``trtllm_*`` at ``/prometheus/metrics``).

Triton's TRT-LLM gauges hold the *last iteration's* values (research/engine-metrics.md §5a):

* running ``nv_trt_llm_request_metrics{request_type="scheduled"}``, waiting ``{="waiting"}``
  (else Triton core ``nv_inference_pending_request_count``);
* KV use ``nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}``, capacity
  ``max × tokens_per`` blocks;
* token counters: ``_sum`` of ``nv_llm_input_token_len`` / ``nv_llm_output_token_len`` (per
  completed request, backend ≥0.15);
* model: the Triton model name (``model`` label), preferring the TRT-LLM model itself.

trtllm-serve (``tensorrt_llm/metrics/collector.py``): ``trtllm_prompt_tokens_total``,
``trtllm_generation_tokens_total``, ``trtllm_num_requests_{running,waiting}``,
``trtllm_kv_cache_utilization``, ``trtllm_kv_cache_max_blocks × trtllm_kv_cache_tokens_per_block``.
Plain trtllm-serve labels ``model_name="undefined"``, which is no model name.
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
    label_values,
    mean_values,
    present_families,
    sum_count,
    sum_values,
)

_TRITON_TRTLLM = (
    "nv_trt_llm_request_metrics",
    "nv_trt_llm_kv_cache_block_metrics",
    "nv_trt_llm_inflight_batcher_metrics",
    "nv_trt_llm_v1_metrics",
    "nv_trt_llm_general_metrics",
    "nv_llm_input_token_len",
    "nv_llm_output_token_len",
)
_TRITON_CORE = (
    "nv_inference_request_success",
    "nv_inference_count",
    "nv_inference_pending_request_count",
)
_SERVE = (
    "trtllm_request_success",
    "trtllm_e2e_request_latency_seconds",
    "trtllm_time_to_first_token_seconds",
    "trtllm_prompt_tokens",
    "trtllm_generation_tokens",
    "trtllm_num_requests_running",
    "trtllm_kv_cache_utilization",
)

_TRITON_HINTS = {
    "prompt_tokens_total": "nv_llm_input_token_len needs the TRT-LLM backend ≥0.15",
    "generation_tokens_total": "nv_llm_output_token_len needs the TRT-LLM backend ≥0.15",
    "requests_running": "nv_trt_llm_request_metrics comes with the inflight-batcher model",
    "kv_usage_ratio": "nv_trt_llm_kv_cache_block_metrics comes with the inflight-batcher model",
    "kv_capacity_tokens": "nv_trt_llm_kv_cache_block_metrics comes with the inflight-batcher model",
    "time_to_first_token_sum_count": (
        "start Triton with --metrics-config histogram_latencies=true (decoupled models)"
    ),
    "prefill_computed_tokens_total": "Triton's TRT-LLM metrics do not split cached prefill",
    "estimated_flops_total": "TensorRT-LLM has no FLOP estimate",
    "estimated_read_bytes_total": "TensorRT-LLM has no byte estimate",
    "estimated_write_bytes_total": "TensorRT-LLM has no byte estimate",
}
_SERVE_HINTS = {
    "prompt_tokens_total": "trtllm_prompt_tokens_total needs a newer TensorRT-LLM",
    "generation_tokens_total": "trtllm_generation_tokens_total needs a newer TensorRT-LLM",
    "requests_running": "trtllm_num_requests_running needs a newer TensorRT-LLM",
    "requests_waiting": "trtllm_num_requests_waiting needs a newer TensorRT-LLM",
    "kv_usage_ratio": "trtllm_kv_cache_utilization needs a newer TensorRT-LLM",
    "kv_capacity_tokens": "trtllm_kv_cache_max_blocks needs a newer TensorRT-LLM",
    "model": 'plain trtllm-serve labels model_name="undefined"',
    "estimated_flops_total": "TensorRT-LLM has no FLOP estimate",
    "estimated_read_bytes_total": "TensorRT-LLM has no byte estimate",
    "estimated_write_bytes_total": "TensorRT-LLM has no byte estimate",
}


def _triton_model(families: Families) -> str | None:
    """The Triton model serving TRT-LLM: the one on nv_trt_llm_*/nv_llm_* series if any, else
    ``tensorrt_llm`` or ``ensemble`` among the core series, else the first model seen."""
    for names in (_TRITON_TRTLLM, _TRITON_CORE):
        models: list[str] = []
        for name in names:
            for model in label_values(get_family(families, name), "model"):
                if model not in models:
                    models.append(model)
        for preferred in ("tensorrt_llm", "ensemble"):
            if preferred in models:
                return preferred
        if models:
            return models[0]
    return None


_READS = FamilySelection(prefixes=("trtllm_", "nv_trt_llm_", "nv_llm_", "nv_inference_"))
"""Every family in the engine's namespace (a new one needs no line here), bucket lines skipped."""


@dataclass(frozen=True)
class TrtllmAdapter:
    family: str = "trtllm"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    def recognise(self, families: Families) -> str | None:
        serve = present_families(families, _SERVE)
        if serve:
            return "trtllm-serve families present: " + ", ".join(serve)
        triton = present_families(families, _TRITON_TRTLLM)
        if triton:
            return "Triton TensorRT-LLM backend families present: " + ", ".join(triton)
        core = present_families(families, _TRITON_CORE)
        if core:
            return "Triton Inference Server core families present: " + ", ".join(core)
        return None

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        if present_families(families, _SERVE):
            return self._serve(families)
        return self._triton(families)

    def _serve(self, families: Families) -> EngineReading:
        model = first_label(families, _SERVE, ("model_name",))
        if model == "undefined":
            model = None
        tokens_per_block = first_value(get_family(families, "trtllm_kv_cache_tokens_per_block"))
        max_blocks = sum_values(get_family(families, "trtllm_kv_cache_max_blocks"))
        capacity = (
            max_blocks * tokens_per_block
            if max_blocks is not None and tokens_per_block is not None
            else None
        )
        return build_reading(
            self.family,
            "trtllm-serve",
            self.recognise(families) or "",
            _SERVE_HINTS,
            model=model,
            prompt_tokens_total=sum_values(get_family(families, "trtllm_prompt_tokens")),
            generation_tokens_total=sum_values(get_family(families, "trtllm_generation_tokens")),
            requests_running=sum_values(get_family(families, "trtllm_num_requests_running")),
            requests_waiting=sum_values(get_family(families, "trtllm_num_requests_waiting")),
            kv_usage_ratio=mean_values(get_family(families, "trtllm_kv_cache_utilization")),
            kv_capacity_tokens=capacity,
            kv_block_size_tokens=_positive_int(tokens_per_block),
            inter_token_latency_sum_count=sum_count(
                get_family(families, "trtllm_time_per_output_token_seconds")
            ),
            time_to_first_token_sum_count=sum_count(
                get_family(families, "trtllm_time_to_first_token_seconds")
            ),
        )

    def _triton(self, families: Families) -> EngineReading:
        model = _triton_model(families)
        where = {"model": model} if model is not None else None
        requests = get_family(families, "nv_trt_llm_request_metrics")
        blocks = get_family(families, "nv_trt_llm_kv_cache_block_metrics")
        running = sum_values(requests, where={**(where or {}), "request_type": "scheduled"})
        waiting = sum_values(requests, where={**(where or {}), "request_type": "waiting"})
        if waiting is None:
            waiting = sum_values(
                get_family(families, "nv_inference_pending_request_count"), where=where
            )
        tokens_per = first_value(blocks, {**(where or {}), "kv_cache_block_type": "tokens_per"})
        max_blocks = sum_values(blocks, where={**(where or {}), "kv_cache_block_type": "max"})
        capacity = (
            max_blocks * tokens_per if max_blocks is not None and tokens_per is not None else None
        )
        if get_family(families, "nv_trt_llm_v1_metrics") is not None:
            version = "triton-trtllm-v1"
        elif present_families(families, _TRITON_TRTLLM):
            version = "triton-trtllm-inflight"
        else:
            version = "triton-core"
        ttft = sum_count(get_family(families, "nv_inference_first_response_histogram_ms"), where)
        return build_reading(
            self.family,
            version,
            self.recognise(families) or "",
            _TRITON_HINTS,
            model=model,
            prompt_tokens_total=sum_values(
                get_family(families, "nv_llm_input_token_len"), "_sum", where
            ),
            generation_tokens_total=sum_values(
                get_family(families, "nv_llm_output_token_len"), "_sum", where
            ),
            requests_running=running,
            requests_waiting=waiting,
            kv_usage_ratio=mean_values(
                blocks, {**(where or {}), "kv_cache_block_type": "fraction"}
            ),
            kv_capacity_tokens=capacity,
            kv_block_size_tokens=_positive_int(tokens_per),
            time_to_first_token_sum_count=(
                (ttft[0] / 1000.0, ttft[1]) if ttft is not None else None  # ms -> s
            ),
        )


def _positive_int(value: float | None) -> int | None:
    if value is None or value < 1 or value != int(value):
        return None
    return int(value)
