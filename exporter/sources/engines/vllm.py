"""vLLM (V0 engine, V1 engine, and the Triton vLLM backend): ``vllm:*`` families.

Names by version (research/engine-metrics.md §2):

* KV use: ``vllm:kv_cache_usage_perc`` (V1, ≥0.9) else ``vllm:gpu_cache_usage_perc`` (V0 and
  V1 ≤0.10). Both are fractions 0-1 despite the name.
* Inter-token latency: ``vllm:inter_token_latency_seconds`` (≥0.10) else
  ``vllm:time_per_output_token_seconds``.
* KV capacity: ``vllm:cache_config_info`` labels, per engine: ``kv_cache_size_tokens`` (0.33)
  else ``num_gpu_blocks × block_size``; summed over engines.
* Computed prefill: ``vllm:prompt_tokens_by_source_total{source="local_compute"}`` (0.2x+) else
  ``vllm:prompt_tokens_total − vllm:prefix_cache_hits_total`` where the hits are in tokens
  (HELP says so; 0.8.x counted blocks).
* V1 labels every series with ``engine`` (the data-parallel index); sums run over it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

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
    get_family,
    histogram_buckets,
    labelled_samples,
    mean_values,
    preferred_label,
    recognise_namespaced,
    sum_count,
    sum_values,
)

_CLAIMING = (
    "vllm:num_requests_running",
    "vllm:generation_tokens",
    "vllm:prompt_tokens",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:cache_config_info",
)

_MODEL_FAMILIES = (
    "vllm:num_requests_running",
    "vllm:generation_tokens",
    "vllm:prompt_tokens",
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "vllm:num_requests_waiting",
    "vllm:time_to_first_token_seconds",
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
    "vllm:iteration_tokens_total",
)

_READS = FamilySelection(
    names=(
        *_CLAIMING,
        *_MODEL_FAMILIES,
        "vllm:prompt_tokens_by_source",
        "vllm:prefix_cache_hits",
        "vllm:gpu_prefix_cache_hits",
        "vllm:estimated_flops_per_gpu",
        "vllm:estimated_read_bytes_per_gpu",
        "vllm:estimated_write_bytes_per_gpu",
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
        "vllm:spec_decode_num_drafts",
        "vllm:num_preemptions",
        "vllm:spec_decode_num_draft_tokens",
        "vllm:spec_decode_num_accepted_tokens",
        "vllm:spec_decode_num_accepted_tokens_per_pos",
        "vllm:prefix_cache_queries",
        "vllm:gpu_prefix_cache_queries",
    ),
    bucket_names=(
        "vllm:inter_token_latency_seconds",
        "vllm:time_per_output_token_seconds",
        "vllm:time_to_first_token_seconds",
    ),
    alternates=(
        # vLLM 0.10-0.11 export both; the old name's buckets are a third of what is read.
        ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ),
)
"""Every family ``extract`` reads, one a line (a vLLM exports ~40, mostly histograms it skips).
The version and the model fallback look at these families only, so the reading is the same
whether the body was parsed whole or with this selection."""

_HINTS = {
    "weights_dtype": "not in vLLM's exposition; rooftop takes it from the model config",
    "estimated_flops_total": "start vLLM ≥0.20 with --enable-mfu-metrics",
    "estimated_read_bytes_total": "start vLLM ≥0.20 with --enable-mfu-metrics",
    "estimated_write_bytes_total": "start vLLM ≥0.20 with --enable-mfu-metrics",
    "kv_capacity_tokens": "vllm:cache_config_info appears once the engine has initialised",
    "kv_block_size_tokens": "vllm:cache_config_info appears once the engine has initialised",
    "kv_cache_dtype": "vllm:cache_config_info appears once the engine has initialised",
    "prefill_computed_tokens_total": (
        "needs vllm:prefix_cache_hits_total (vLLM ≥0.9) or vllm:prompt_tokens_by_source_total"
    ),
    "iteration_tokens_sum_count": "vllm:iteration_tokens_total needs vLLM ≥0.6.5",
    "spec_drafts_total": "vLLM speculates only with --speculative-config",
    "spec_draft_tokens_total": "vLLM speculates only with --speculative-config",
    "spec_accepted_tokens_total": "vLLM speculates only with --speculative-config",
    "spec_accepted_per_position_total": "vLLM speculates only with --speculative-config",
    "spec_accept_length": "vLLM exports counters, not an accept-length gauge",
    "prefix_cache_hit_ratio": "vLLM exports hit and query counters instead",
    "requests_running": "vLLM started with --disable-log-stats exports no engine metrics",
    "requests_waiting": "vLLM started with --disable-log-stats exports no engine metrics",
}


def _version_family(families: Families) -> str:
    labels: set[str] = set()
    for name in _READS.names:
        family = get_family(families, name)
        if family is not None:
            for sample in labelled_samples(family):
                if "engine" in sample.labels:
                    return "vllm-v1"
                labels.update(sample.labels)
    if "version" in labels and "model" in labels and "model_name" not in labels:
        return "vllm-triton-backend"
    return "vllm-v0"


def _capacity(info: Metric | None) -> tuple[float | None, int | None, str | None]:
    """KV capacity tokens (summed over engines), block size, cache dtype from cache_config_info."""
    if info is None:
        return None, None, None
    capacity_by_engine: dict[str, float] = {}
    block_size: int | None = None
    dtype: str | None = None
    for sample in info.samples:
        if sample.name != info.name:
            continue
        labels = sample.labels
        size = _int_label(labels.get("block_size"))
        if size is not None and block_size is None:
            block_size = size
        cache_dtype = labels.get("cache_dtype")
        if cache_dtype and cache_dtype != "None" and dtype is None:
            dtype = cache_dtype
        tokens = _int_label(labels.get("kv_cache_size_tokens"))
        blocks = _int_label(labels.get("num_gpu_blocks"))
        if tokens is None and blocks is not None and size is not None:
            tokens = blocks * size
        if tokens is not None:
            capacity_by_engine[labels.get("engine", "")] = float(tokens)
    capacity = sum(capacity_by_engine.values()) if capacity_by_engine else None
    return capacity, block_size, dtype


def _int_label(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0 or value != int(value):  # "+Inf" labels
        return None
    return int(value)


def _prefill_computed(families: Families, prompt: float | None) -> float | None:
    by_source = sum_values(
        get_family(families, "vllm:prompt_tokens_by_source"), where={"source": "local_compute"}
    )
    if by_source is not None:
        return by_source
    if prompt is None:
        return None
    for name in ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"):
        hits_family = get_family(families, name)
        if hits_family is None or "token" not in hits_family.documentation.lower():
            continue  # vLLM 0.8.x counted blocks here, not tokens
        hits = sum_values(hits_family)
        if hits is not None:
            return max(prompt - hits, 0.0)
    return None


def _per_position(family: Metric | None) -> tuple[float, ...] | None:
    """``vllm:spec_decode_num_accepted_tokens_per_pos_total{position="j"}`` summed over engines,
    as a tuple indexed by position (positions are 0..k-1; a gap reads 0)."""
    if family is None:
        return None
    by_position: dict[int, float] = {}
    for sample in family.samples:
        if not sample.name.endswith("_total"):
            continue
        label = sample.labels.get("position", "")
        if not label.isdigit() or int(label) >= 64 or not math.isfinite(sample.value):
            continue  # k is a handful; a position past 64 is not a position
        position = int(label)
        by_position[position] = by_position.get(position, 0.0) + sample.value
    if not by_position:
        return None
    return tuple(by_position.get(j, 0.0) for j in range(max(by_position) + 1))


def _prefix_counter(families: Families, *names: str) -> float | None:
    for name in names:
        family = get_family(families, name)
        if family is not None and "token" in family.documentation.lower():
            return sum_values(family)
    return None


@dataclass(frozen=True)
class VllmAdapter:
    family: str = "vllm"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    def recognise(self, families: Families) -> str | None:
        return recognise_namespaced(families, _CLAIMING, "vllm:", "vLLM")

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        # Triton's vLLM backend labels {model, version} instead of model_name.
        model = preferred_label(
            families,
            (*_MODEL_FAMILIES, *_READS.names),
            ("model_name", "model"),
        )
        prompt = sum_values(get_family(families, "vllm:prompt_tokens"))
        capacity, block_size, cache_dtype = _capacity(
            get_family(families, "vllm:cache_config_info")
        )
        usage_family = get_family(families, "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
        itl_family = get_family(
            families, "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"
        )
        ttft_family = get_family(families, "vllm:time_to_first_token_seconds")
        return build_reading(
            self.family,
            _version_family(families),
            self.recognise(families) or "",
            _HINTS,
            model=model,
            prompt_tokens_total=prompt,
            prefill_computed_tokens_total=_prefill_computed(families, prompt),
            generation_tokens_total=sum_values(get_family(families, "vllm:generation_tokens")),
            requests_running=sum_values(get_family(families, "vllm:num_requests_running")),
            requests_waiting=sum_values(get_family(families, "vllm:num_requests_waiting")),
            kv_usage_ratio=mean_values(usage_family),
            kv_capacity_tokens=capacity,
            kv_block_size_tokens=block_size,
            kv_cache_dtype=cache_dtype,
            estimated_flops_total=sum_values(get_family(families, "vllm:estimated_flops_per_gpu")),
            estimated_read_bytes_total=sum_values(
                get_family(families, "vllm:estimated_read_bytes_per_gpu")
            ),
            estimated_write_bytes_total=sum_values(
                get_family(families, "vllm:estimated_write_bytes_per_gpu")
            ),
            inter_token_latency_sum_count=sum_count(itl_family),
            time_to_first_token_sum_count=sum_count(ttft_family),
            inter_token_latency_buckets=histogram_buckets(itl_family),
            time_to_first_token_buckets=histogram_buckets(ttft_family),
            preemptions_total=sum_values(get_family(families, "vllm:num_preemptions")),
            iteration_tokens_sum_count=sum_count(
                get_family(families, "vllm:iteration_tokens_total")
            ),
            spec_drafts_total=sum_values(get_family(families, "vllm:spec_decode_num_drafts")),
            spec_draft_tokens_total=sum_values(
                get_family(families, "vllm:spec_decode_num_draft_tokens")
            ),
            spec_accepted_tokens_total=sum_values(
                get_family(families, "vllm:spec_decode_num_accepted_tokens")
            ),
            spec_accepted_per_position_total=_per_position(
                get_family(families, "vllm:spec_decode_num_accepted_tokens_per_pos")
            ),
            prefix_cache_queries_total=_prefix_counter(
                families, "vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"
            ),
            prefix_cache_hits_total=_prefix_counter(
                families, "vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"
            ),
        )
