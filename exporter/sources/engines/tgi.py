"""Hugging Face text-generation-inference: ``tgi_*`` families (Rust metrics exporter).

TGI has no token counters and no labels naming the model (research/engine-metrics.md §4):

* prompt / generated tokens: ``_sum`` of the per-request histograms ``tgi_request_input_length``
  and ``tgi_request_generated_tokens`` (successful requests, added at request end);
* running ``tgi_batch_current_size``, waiting ``tgi_queue_size``;
* KV capacity ``tgi_batch_max_total_tokens`` (≥2.3.1) else ``/info`` ``max_batch_total_tokens``;
  KV use = ``tgi_batch_current_max_tokens`` / capacity (tokens reserved by the running batch);
* inter-token latency: ``tgi_request_mean_time_per_token_duration`` (a per-request mean, so
  sum/count is the mean over requests, not over tokens);
* model id and dtype from ``GET /info``.
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
from rooftop.exporter.sources.engines.json_fields import json_number, json_text
from rooftop.exporter.sources.exposition import get_family, sum_count, sum_values

_CLAIMING = (
    "tgi_request_count",
    "tgi_batch_current_size",
    "tgi_queue_size",
    "tgi_request_input_length",
    "tgi_request_generated_tokens",
)

_HINTS = {
    "model": "TGI's exposition names no model; rooftop reads it from GET /info",
    "weights_dtype": "from GET /info model_dtype where that TGI version reports it",
    "kv_capacity_tokens": "tgi_batch_max_total_tokens needs TGI ≥2.3.1 (or GET /info)",
    "kv_usage_ratio": "needs tgi_batch_current_max_tokens and the KV capacity",
    "prefill_computed_tokens_total": "TGI does not report prefix-cache hits",
    "kv_block_size_tokens": "not in TGI's exposition",
    "kv_cache_dtype": "not in TGI's exposition",
    "estimated_flops_total": "TGI has no FLOP estimate",
    "estimated_read_bytes_total": "TGI has no byte estimate",
    "estimated_write_bytes_total": "TGI has no byte estimate",
    "time_to_first_token_sum_count": "TGI has no time-to-first-token histogram",
    "iteration_tokens_sum_count": "TGI has no per-step token histogram",
}


_READS = FamilySelection(prefixes=("tgi_",))
"""Every family in the engine's namespace (a new one needs no line here), bucket lines skipped."""


@dataclass(frozen=True)
class TgiAdapter:
    family: str = "tgi"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = (ExtraEndpoint("info", "/info"),)

    def recognise(self, families: Families) -> str | None:
        found = [name for name in _CLAIMING if get_family(families, name) is not None]
        if not found:
            return None
        return "TGI families present: " + ", ".join(found)

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        info = extras.get("info")
        capacity = sum_values(get_family(families, "tgi_batch_max_total_tokens"))
        if capacity is None:
            capacity = json_number(info, "max_batch_total_tokens")
        reserved = sum_values(get_family(families, "tgi_batch_current_max_tokens"))
        usage = reserved / capacity if reserved is not None and capacity else None
        version = json_text(info, "version")
        return build_reading(
            self.family,
            f"tgi-{version}" if version else "tgi",
            self.recognise(families) or "",
            _HINTS,
            model=json_text(info, "model_id"),
            weights_dtype=json_text(info, "model_dtype"),
            prompt_tokens_total=sum_values(
                get_family(families, "tgi_request_input_length"), "_sum"
            ),
            generation_tokens_total=sum_values(
                get_family(families, "tgi_request_generated_tokens"), "_sum"
            ),
            requests_running=sum_values(get_family(families, "tgi_batch_current_size")),
            requests_waiting=sum_values(get_family(families, "tgi_queue_size")),
            kv_usage_ratio=usage,
            kv_capacity_tokens=capacity,
            inter_token_latency_sum_count=sum_count(
                get_family(families, "tgi_request_mean_time_per_token_duration")
            ),
        )
