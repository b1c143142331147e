"""SGLang: ``sglang:*`` families (pre-0.4 ``name`` label, 0.4.x, 0.5.x).

* Token counters: the scheduler's ``sglang:realtime_tokens_total{mode}`` (0.5.x, updated every
  log interval; ``prefill_compute`` + ``prefill_cache`` = all prompt tokens, ``decode``) when
  present, else the tokenizer's ``sglang:prompt_tokens_total`` / ``generation_tokens_total``
  (added when a request finishes, so they come in bursts).
* Running ``num_running_reqs``, waiting ``num_queue_reqs``, KV use ``token_usage`` (fraction),
  capacity ``max_total_num_tokens`` (tokens), page size ``page_size`` (0.5.2x).
* Scheduler series carry ``tp_rank``/``pp_rank``/``moe_ep_rank`` (one value per rank of the same
  batch, counted once) and ``dp_rank`` (data parallel, summed).
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
    first_value,
    get_family,
    label_values,
    labelled_samples,
    mean_values,
    names_with_prefix,
    preferred_label,
    recognise_namespaced,
    sum_count,
    sum_values,
)

_CLAIMING = (
    "sglang:num_running_reqs",
    "sglang:generation_tokens",
    "sglang:prompt_tokens",
    "sglang:token_usage",
    "sglang:max_total_num_tokens",
    "sglang:realtime_tokens",
)

_MODEL_FAMILIES = (
    "sglang:num_running_reqs",
    "sglang:generation_tokens",
    "sglang:prompt_tokens",
    "sglang:realtime_tokens",
    "sglang:token_usage",
    "sglang:max_total_num_tokens",
    "sglang:num_queue_reqs",
    "sglang:time_to_first_token_seconds",
    "sglang:e2e_request_latency_seconds",
)

_MFU_HINT = "start SGLang ≥0.5.2x with --enable-mfu-metrics"
_HINTS = {
    "estimated_flops_total": _MFU_HINT,
    "estimated_read_bytes_total": _MFU_HINT,
    "estimated_write_bytes_total": _MFU_HINT,
    "kv_capacity_tokens": "sglang:max_total_num_tokens is exported by SGLang 0.5.x",
    "kv_block_size_tokens": "sglang:page_size is exported by SGLang ≥0.5.2x",
    "kv_cache_dtype": "not in SGLang's exposition (see /get_server_info kv_cache_dtype)",
    "weights_dtype": "not in SGLang's exposition (see /get_server_info dtype)",
    "prefill_computed_tokens_total": "needs sglang:realtime_tokens_total (SGLang 0.5.x)",
    "iteration_tokens_sum_count": "SGLang has no per-step token histogram",
    "spec_drafts_total": "SGLang exports sglang:spec_accept_length, not draft counters",
    "spec_draft_tokens_total": "SGLang exports sglang:spec_accept_length, not draft counters",
    "spec_accepted_tokens_total": "SGLang exports sglang:spec_accept_length, not draft counters",
    "spec_accepted_per_position_total": "SGLang has no per-position acceptance",
    "spec_accept_length": "SGLang speculates only with --speculative-algorithm",
    "prefix_cache_queries_total": "SGLang exports sglang:cache_hit_rate, not counters",
    "prefix_cache_hits_total": "SGLang exports sglang:cache_hit_rate, not counters",
    "requests_running": "start SGLang with --enable-metrics",
    "requests_waiting": "start SGLang with --enable-metrics",
}


def _version_family(families: Families) -> str:
    labels: set[str] = set()
    named = False
    for name, family in families.items():
        if not name.startswith(("sglang:", "sglang_")):
            continue
        for sample in labelled_samples(family):
            labels.update(sample.labels)
            # sglang:func_latency_seconds{name=...} (0.4.x) uses "name" for a function name.
            if "name" in sample.labels and "func_latency" not in name:
                named = True
    if named and "model_name" not in labels:
        return "sglang-pre-0.4"
    if "tp_rank" in labels or get_family(families, "sglang:realtime_tokens") is not None:
        return "sglang-0.5"
    return "sglang-0.4"


_READS = FamilySelection(prefixes=("sglang:",))
"""Every family in the engine's namespace (a new one needs no line here), bucket lines skipped."""


@dataclass(frozen=True)
class SglangAdapter:
    family: str = "sglang"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    def recognise(self, families: Families) -> str | None:
        return recognise_namespaced(families, _CLAIMING, "sglang:", "SGLang")

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        # SGLang before 0.4 labels {name} instead of model_name.
        model = preferred_label(
            families,
            (*_MODEL_FAMILIES, *names_with_prefix(families, "sglang:")),
            ("model_name", "name"),
        )
        realtime = get_family(families, "sglang:realtime_tokens")
        modes = label_values(realtime, "mode")
        prompt: float | None
        computed: float | None = None
        generation: float | None
        if "prefill_compute" in modes and "decode" in modes:
            computed = sum_values(realtime, where={"mode": "prefill_compute"})
            cached = sum_values(realtime, where={"mode": "prefill_cache"})
            prompt = None if computed is None else computed + (cached or 0.0)
            generation = sum_values(realtime, where={"mode": "decode"})
        else:
            prompt = sum_values(get_family(families, "sglang:prompt_tokens"))
            generation = sum_values(get_family(families, "sglang:generation_tokens"))
        itl = get_family(
            families, "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"
        )
        return build_reading(
            self.family,
            _version_family(families),
            self.recognise(families) or "",
            _HINTS,
            model=model,
            prompt_tokens_total=prompt,
            prefill_computed_tokens_total=computed,
            generation_tokens_total=generation,
            requests_running=sum_values(get_family(families, "sglang:num_running_reqs")),
            requests_waiting=sum_values(get_family(families, "sglang:num_queue_reqs")),
            kv_usage_ratio=mean_values(get_family(families, "sglang:token_usage")),
            kv_capacity_tokens=sum_values(get_family(families, "sglang:max_total_num_tokens")),
            kv_block_size_tokens=_page_size(families),
            estimated_flops_total=sum_values(
                get_family(families, "sglang:estimated_flops_per_gpu")
            ),
            estimated_read_bytes_total=sum_values(
                get_family(families, "sglang:estimated_read_bytes_per_gpu")
            ),
            estimated_write_bytes_total=sum_values(
                get_family(families, "sglang:estimated_write_bytes_per_gpu")
            ),
            inter_token_latency_sum_count=sum_count(itl),
            time_to_first_token_sum_count=sum_count(
                get_family(families, "sglang:time_to_first_token_seconds")
            ),
            spec_accept_length=_accept_length(families),
            prefix_cache_hit_ratio=_ratio(
                mean_values(get_family(families, "sglang:cache_hit_rate"))
            ),
        )


def _accept_length(families: Families) -> float | None:
    """``sglang:spec_accept_length``: 1 + accepted drafts per step; 0 means no speculation ran
    (the gauge idles at 0.0 when speculation is off, sglang-dynamo capture)."""
    length = mean_values(get_family(families, "sglang:spec_accept_length"))
    if length is None or length < 1.0:
        return None
    return length


def _ratio(value: float | None) -> float | None:
    return value if value is not None and 0.0 <= value <= 1.0 else None


def _page_size(families: Families) -> int | None:
    """Tokens per KV page: a constant repeated on every rank (not summed)."""
    size = first_value(get_family(families, "sglang:page_size"))
    if size is None or size < 1 or size != int(size):
        return None
    return int(size)
