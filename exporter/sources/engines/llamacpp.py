"""llama.cpp ``llama-server --metrics``: ``llamacpp:*`` families, no labels at all.

* ``llamacpp:prompt_tokens_total`` counts prompt tokens actually *evaluated* (cache reuse
  excluded), so it is the computed prefill. Newer builds add
  ``llamacpp:prompt_tokens_cached_total``; all prompt tokens = evaluated + cached. Older builds
  lack it, and then the all-prompt counter is unknown (``None``), not guessed.
* Generated ``llamacpp:tokens_predicted_total`` (added when a slot is released). Mean time per
  generated token = ``tokens_predicted_seconds_total / tokens_predicted_total`` (per slot), which
  is reported as the inter-token latency (sum, count).
* Running ``requests_processing``, waiting ``requests_deferred``.
* ``n_busy_slots_per_decode`` (an average) and ``n_tokens_max`` (a maximum) are declared
  ``counter`` by some builds; they are neither rated nor summed here.
* KV use: ``kv_cache_usage_ratio`` / ``kv_cache_tokens`` until PR #13660 (May 2025). Later builds
  need ``GET /slots`` (per slot ``n_ctx``, ``is_processing``, ``n_past`` or
  ``n_prompt_tokens`` + ``next_token.n_decoded``) and ``GET /props`` (``total_slots``,
  ``default_generation_settings.n_ctx`` per slot, ``model_alias``/``model_path``,
  ``model_ftype`` such as ``all F32`` or ``Q4_K - Medium``).
  Capacity = sum of per-slot contexts; with ``--kv-unified`` the slots share one pool and this
  overstates it by the slot count.
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
from rooftop.exporter.sources.engines.json_fields import (
    json_list,
    json_number,
    json_path,
    json_text,
)
from rooftop.exporter.sources.exposition import (
    get_family,
    recognise_namespaced,
    sum_values,
)

_CLAIMING = (
    "llamacpp:prompt_tokens",
    "llamacpp:tokens_predicted",
    "llamacpp:requests_processing",
    "llamacpp:n_decode",
)

_HINTS = {
    "model": "llama.cpp's exposition has no labels; rooftop reads GET /props",
    "prompt_tokens_total": (
        "this build counts only evaluated prompt tokens (see prefill_computed_tokens_total); "
        "newer builds add llamacpp:prompt_tokens_cached_total"
    ),
    "kv_usage_ratio": "start llama-server with --slots so GET /slots reports slot use",
    "kv_capacity_tokens": "GET /slots or GET /props must answer (start with --slots)",
    "kv_block_size_tokens": "llama.cpp has no KV blocks",
    "spec_drafts_total": "llamacpp:spec_decode_* need a build with speculative metrics",
    "spec_draft_tokens_total": "llamacpp:spec_decode_* need a build with speculative metrics",
    "spec_accepted_tokens_total": "llamacpp:spec_decode_* need a build with speculative metrics",
    "spec_accepted_per_position_total": "llama.cpp has no per-position acceptance",
    "spec_accept_length": "llama.cpp exports counters, not an accept-length gauge",
    "prefix_cache_queries_total": "llama.cpp reports cached prompt tokens instead",
    "prefix_cache_hits_total": "llama.cpp reports cached prompt tokens instead",
    "prefix_cache_hit_ratio": "llama.cpp reports cached prompt tokens instead",
    "kv_cache_dtype": "not in llama.cpp's exposition (--cache-type-k/-v)",
    "weights_dtype": "GET /props model_ftype (newer llama.cpp builds)",
    "estimated_flops_total": "llama.cpp has no FLOP estimate",
    "estimated_read_bytes_total": "llama.cpp has no byte estimate",
    "estimated_write_bytes_total": "llama.cpp has no byte estimate",
    "time_to_first_token_sum_count": "llama.cpp has no time-to-first-token metric",
    "iteration_tokens_sum_count": "llama.cpp exports only n_decode_total, not tokens per step",
    "requests_running": "start llama-server with --metrics",
    "requests_waiting": "start llama-server with --metrics",
}


def _slot_tokens(slot: object) -> float | None:
    """Tokens a slot holds in the KV cache: ``n_past``, else prompt + decoded while processing."""
    n_past = json_number(slot, "n_past")
    if n_past is not None:
        return max(n_past, 0.0)
    if json_path(slot, "is_processing") is not True:
        return 0.0
    prompt = json_number(slot, "n_prompt_tokens")
    if prompt is None:
        return None
    decoded = json_number(slot, "next_token", 0, "n_decoded")
    if decoded is None:
        decoded = json_number(slot, "next_token", "n_decoded")
    return prompt + (decoded or 0.0)


def _from_slots(slots: object) -> tuple[float | None, float | None, float | None]:
    """(capacity tokens, used tokens, processing slots) from a ``GET /slots`` body."""
    entries = [s for s in json_list(slots) if isinstance(s, dict)]
    if not entries:
        return None, None, None
    contexts = [json_number(s, "n_ctx") for s in entries]
    capacity = sum(c for c in contexts if c is not None) if None not in contexts else None
    used_each = [_slot_tokens(s) for s in entries]
    used = sum(u for u in used_each if u is not None) if None not in used_each else None
    running = float(sum(1 for s in entries if json_path(s, "is_processing") is True))
    return capacity, used, running


def _model(props: object) -> str | None:
    alias = json_text(props, "model_alias")
    path = json_text(props, "model_path")
    if alias and alias != path:
        return alias
    return path or alias


_READS = FamilySelection(prefixes=("llamacpp:",))
"""Every family in the engine's namespace (a new one needs no line here), bucket lines skipped."""


@dataclass(frozen=True)
class LlamacppAdapter:
    family: str = "llamacpp"
    reads: FamilySelection = _READS
    extra_endpoints: tuple[ExtraEndpoint, ...] = (
        ExtraEndpoint("props", "/props"),
        ExtraEndpoint("slots", "/slots", every_poll=True),
    )

    def recognise(self, families: Families) -> str | None:
        return recognise_namespaced(families, _CLAIMING, "llamacpp:", "llama.cpp")

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        evaluated = sum_values(get_family(families, "llamacpp:prompt_tokens"))
        cached = sum_values(get_family(families, "llamacpp:prompt_tokens_cached"))
        prompt = evaluated + cached if evaluated is not None and cached is not None else None
        predicted = sum_values(get_family(families, "llamacpp:tokens_predicted"))
        predicted_seconds = sum_values(get_family(families, "llamacpp:tokens_predicted_seconds"))
        itl = (
            (predicted_seconds, predicted)
            if predicted_seconds is not None and predicted is not None
            else None
        )

        running = sum_values(get_family(families, "llamacpp:requests_processing"))
        usage = sum_values(get_family(families, "llamacpp:kv_cache_usage_ratio"))
        kv_tokens = sum_values(get_family(families, "llamacpp:kv_cache_tokens"))
        props = extras.get("props")
        slot_capacity, slot_used, slot_running = _from_slots(extras.get("slots"))
        capacity = slot_capacity
        if capacity is None:
            per_slot = json_number(props, "default_generation_settings", "n_ctx")
            slots = json_number(props, "total_slots")
            if per_slot is not None and slots is not None:
                capacity = per_slot * slots
        if usage is None and slot_used is not None and capacity:
            usage = slot_used / capacity
        if capacity is None and usage and kv_tokens is not None:
            capacity = kv_tokens / usage
        if running is None:
            running = slot_running
        version = (
            "llamacpp-with-kv-metrics"
            if get_family(families, "llamacpp:kv_cache_usage_ratio") is not None
            else "llamacpp"
        )
        return build_reading(
            self.family,
            version,
            self.recognise(families) or "",
            _HINTS,
            model=_model(props),
            weights_dtype=json_text(props, "model_ftype"),
            prompt_tokens_total=prompt,
            prefill_computed_tokens_total=evaluated,
            generation_tokens_total=predicted,
            requests_running=running,
            requests_waiting=sum_values(get_family(families, "llamacpp:requests_deferred")),
            kv_usage_ratio=usage,
            kv_capacity_tokens=capacity,
            inter_token_latency_sum_count=itl,
            spec_drafts_total=sum_values(get_family(families, "llamacpp:spec_decode_num_drafts")),
            spec_draft_tokens_total=sum_values(
                get_family(families, "llamacpp:spec_decode_num_draft_tokens")
            ),
            spec_accepted_tokens_total=sum_values(
                get_family(families, "llamacpp:spec_decode_num_accepted_tokens")
            ),
        )
