"""NVIDIA NIM for LLMs (1.x, vLLM/TRT-LLM based): vLLM V0 shapes with no prefix, ``/v1/metrics``.

Gauges ``num_requests_running``, ``num_requests_waiting``, ``num_request_max``,
``gpu_cache_usage_perc`` (fraction); counters ``prompt_tokens_total``, ``generation_tokens_total``;
histograms ``time_to_first_token_seconds``, ``time_per_output_token_seconds``; label
``model_name``. No KV capacity (research/engine-metrics.md §7).
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
    sum_count,
    sum_values,
)

_REQUIRED = ("num_requests_running", "generation_tokens")
_ONE_OF = ("num_request_max", "gpu_cache_usage_perc", "num_requests_waiting")

_READS = FamilySelection(
    names=(
        *_REQUIRED,
        *_ONE_OF,
        "prompt_tokens",
        "inter_token_latency_seconds",
        "time_per_output_token_seconds",
        "time_to_first_token_seconds",
    )
)
"""NIM's names have no prefix: every family ``extract`` or ``recognise`` reads, one a line."""

_HINTS = {
    "kv_capacity_tokens": "NIM exports no KV capacity",
    "kv_block_size_tokens": "NIM exports no KV block size",
    "kv_cache_dtype": "not in NIM's exposition",
    "weights_dtype": "not in NIM's exposition (the NIM profile names it)",
    "prefill_computed_tokens_total": "NIM does not report prefix-cache hits",
    "estimated_flops_total": "NIM has no FLOP estimate",
    "estimated_read_bytes_total": "NIM has no byte estimate",
    "estimated_write_bytes_total": "NIM has no byte estimate",
    "iteration_tokens_sum_count": "NIM has no per-step token histogram",
}


@dataclass(frozen=True)
class NimAdapter:
    family: str = "nim"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    def recognise(self, families: Families) -> str | None:
        if not all(families.get(name) is not None for name in _REQUIRED):
            return None
        extra = [name for name in _ONE_OF if families.get(name) is not None]
        if not extra:
            return None
        return "unprefixed vLLM-style families of NIM present: " + ", ".join((*_REQUIRED, *extra))

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        return build_reading(
            self.family,
            "nim-llm-1.x",
            self.recognise(families) or "",
            _HINTS,
            model=first_label(
                families,
                ("num_requests_running", "generation_tokens", "prompt_tokens"),
                ("model_name",),
            ),
            prompt_tokens_total=sum_values(families.get("prompt_tokens")),
            generation_tokens_total=sum_values(families.get("generation_tokens")),
            requests_running=sum_values(families.get("num_requests_running")),
            requests_waiting=sum_values(families.get("num_requests_waiting")),
            kv_usage_ratio=mean_values(families.get("gpu_cache_usage_perc")),
            inter_token_latency_sum_count=sum_count(
                get_family(families, "inter_token_latency_seconds", "time_per_output_token_seconds")
            ),
            time_to_first_token_sum_count=sum_count(families.get("time_to_first_token_seconds")),
        )
