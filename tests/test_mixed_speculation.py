"""Rate windows that mix speculative and plain decode steps: the token-weighted blend of the two
step models (classifiers.speculative.speculative_token_share, classifiers.operating_point)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooftop.classifiers.hardware import NVLINK4
from rooftop.classifiers.model_catalog import lookup_model
from rooftop.classifiers.operating_point import LiveWorkload, OperatingPoint, operating_point
from rooftop.classifiers.roofline import Roof, decode_step
from rooftop.classifiers.speculative import (
    Speculation,
    SpeculationError,
    live_speculation,
    speculative_token_share,
)

H100 = Roof(989.4e12, 3.35e12)
"""H100 SXM: 989.4 TFLOP/s dense BF16, 3.35 TB/s HBM3 (research/roofline-anchors.md §1.2)."""
H100_NVLINK = Roof(989.4e12, 3.35e12, interconnect=NVLINK4)
LLAMA_8B = lookup_model("llama-3.1-8b")
LLAMA_70B = lookup_model("llama-3.1-70b")
EAGLE = Speculation("eagle", 3, 0.8)


def _live(
    spec: Speculation | None,
    decode: float | None,
    *,
    model: object = LLAMA_8B,
    roof: Roof = H100,
    batch: int = 1,
    context: int = 1024,
    tp: int = 1,
    prefill: float | None = 0.0,
) -> LiveWorkload:
    return LiveWorkload(
        model=model,  # type: ignore[arg-type]
        roof=roof,
        weights="bf16",
        kv_dtype="bf16",
        tensor_parallel=tp,
        batch=batch,
        context_tokens=context,
        decode_tokens_per_second=decode,
        prefill_tokens_per_second=prefill,
        dram_bytes_per_second=None,
        speculation=spec,
    )


def test_half_speculative_window_llama_8b_h100_eagle_hand_worked() -> None:
    """Llama-3.1-8B BF16 on H100 SXM (989.4 TFLOP/s, 3.35 TB/s), batch 1, context 1,024, EAGLE
    k = 3 at alpha = 0.8 (EAGLE-2 reports 0.7-0.85 on chat, arXiv:2406.16858), half of the
    window's tokens from speculative steps (vLLM: drafts + accepted = half the generated tokens).

    Step bytes from the catalog config (d 4096, 32 layers, 8 KV heads of 128, MLP 14336, vocab
    128256; worked out in tests/test_operating_point.py):

    - plain step: 15,148,935,680 B (weights 15,009,857,536 + KV read 134,217,728 + write
      131,072 + activations 4,729,344): 4.5221 ms at 3.35 TB/s, 1 token: SOL 221.14 tok/s;
    - speculative step: the target verifies 1 + 3 = 4 positions, weights and KV read once,
      KV write and activations x 4: 15,163,516,928 B = 4.5264 ms; the EAGLE head runs 3 passes
      of one decoder layer (13,959,184,384 / 32 = 436,224,512 B) + the LM head
      (128,256 x 4,096 x 2 = 1,050,673,152 B) + one layer's KV (4,194,304 + 4,096 B) =
      1,491,096,064 B, 0.4451 ms each: 1.3353 ms. Step 5.8617 ms for 1 + 3 x 0.8 = 3.4 tokens:
      SOL 580.03 tok/s, 19,636,829,696 B (5,775,538,146 B per token).

    Blended, seconds per token add: 1 / (0.5 / 580.03 + 0.5 / 221.14) = 320.20 tok/s. An engine
    emitting 290 tok/s (145 from each kind of step) spent 145 / 580.03 + 145 / 221.14 = 0.2500 +
    0.6557 = 0.9057 of the second at speed of light: SOL ratio 0.906. Modelled wholly
    speculative (the old majority rule at a half share) it reads 0.500; wholly plain 1.311, a
    speed past light. Bytes per token 0.5 x 5,775,538,146 + 0.5 x 15,148,935,680 =
    10,462,236,913; MBU (145 / 3.4 x 19,636,829,696 + 145 x 15,148,935,680) / 3.35e12 = 0.906
    (every step memory bound, the drafter's passes too); tokens per step per sequence
    1 / (0.5 / 3.4 + 0.5 / 1) = 1.545."""
    half = dataclasses.replace(EAGLE, token_share=0.5)
    point = operating_point(_live(half, 290.0))
    assert point.decode_speed_of_light_tokens_per_second == pytest.approx(320.20, rel=1e-4)
    assert point.decode_speed_of_light_ratio == pytest.approx(0.9057, rel=1e-4)
    assert point.decode_bytes_per_token == pytest.approx(10_462_236_913, rel=1e-9)
    assert point.model_bandwidth_utilization_ratio == pytest.approx(0.9057, rel=1e-4)
    assert point.tokens_per_step_per_sequence == pytest.approx(1 / (0.5 / 3.4 + 0.5))
    assert point.speculative_token_share == 0.5
    assert point.decode_bound == "memory"

    whole = operating_point(_live(EAGLE, 290.0))
    plain = operating_point(_live(None, 290.0))
    assert whole.decode_speed_of_light_tokens_per_second == pytest.approx(580.03, rel=1e-4)
    assert plain.decode_speed_of_light_tokens_per_second == pytest.approx(221.14, rel=1e-4)
    assert whole.decode_speed_of_light_ratio == pytest.approx(0.5000, rel=1e-3)
    assert plain.decode_speed_of_light_ratio == pytest.approx(1.3114, rel=1e-4)

    # The same window from vLLM's counters: 145 tok/s from speculative steps is 42.65 drafts/s
    # (one per sequence per step) + 102.35 accepted/s (0.8 x 3 x 42.65), of 290 generated.
    drafts = 145 / 3.4
    counted = live_speculation(
        None,
        drafts_per_second=drafts,
        draft_tokens_per_second=3 * drafts,
        accepted_tokens_per_second=0.8 * 3 * drafts,
        decode_tokens_per_second=290.0,
    )
    assert counted is not None and counted.token_share == pytest.approx(0.5)
    assert operating_point(_live(counted, 290.0)).decode_speed_of_light_ratio == pytest.approx(
        0.9057, rel=1e-4
    )


def test_token_share_from_counters_clamps_and_validates() -> None:
    """drafts + accepted is what speculative steps emitted; plain = generated - that, >= 0."""
    assert speculative_token_share(100, 240, 1_000) == pytest.approx(0.34)
    assert speculative_token_share(100, 240, 200) == 1.0  # counters ahead of generated: all
    assert speculative_token_share(100, 240, None) == 1.0
    assert speculative_token_share(100, 240, 0) == 1.0
    assert speculative_token_share(0, 0, 500) == 0.0
    with pytest.raises(SpeculationError, match="drafts"):
        speculative_token_share(-1, 0, 10)
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(SpeculationError, match="token_share"):
            Speculation("eagle", 3, 0.8, bad)


def _same_figures(a: OperatingPoint, b: OperatingPoint) -> None:
    for name in (
        "decode_speed_of_light_ratio",
        "decode_speed_of_light_tokens_per_second",
        "decode_bytes_per_token",
        "decode_flops_per_token",
        "decode_arithmetic_intensity",
        "model_bandwidth_utilization_ratio",
        "model_flops_utilization_ratio",
        "tokens_per_step_per_sequence",
        "communication_seconds",
        "communication_share",
        "prefill_tokens_per_step",
        "decode_bound",
    ):
        assert getattr(a, name) == getattr(b, name), name


@settings(max_examples=150, deadline=None)
@given(
    share=st.floats(0.0, 1.0),
    k=st.integers(1, 8),
    alpha=st.floats(0.0, 1.0),
    method=st.sampled_from(["eagle", "ngram", "medusa", "mtp"]),
    big=st.booleans(),
    tp=st.sampled_from([1, 2, 4, 8]),
    batch=st.integers(1, 512),
    context=st.integers(0, 32_768),
    spec_efficiency=st.floats(0.01, 1.0),
    plain_efficiency=st.floats(0.01, 1.0),
    busy=st.floats(0.01, 1.0),
    prefill=st.sampled_from([0.0, 2_000.0]),
)
def test_blended_ratio_never_passes_light_and_ends_match_each_mode(
    share: float,
    k: int,
    alpha: float,
    method: str,
    big: bool,
    tp: int,
    batch: int,
    context: int,
    spec_efficiency: float,
    plain_efficiency: float,
    busy: float,
    prefill: float,
) -> None:
    """An engine that spends ``busy`` of each second decoding, speculative steps at
    ``spec_efficiency`` of their own speed of light and plain ones at ``plain_efficiency`` of
    theirs, ``share`` of its tokens from speculative steps, emits
    ``R = busy / (share / (e_s SOL_spec) + (1 - share) / (e_p SOL_plain))`` tok/s; its blended
    SOL ratio is at most ``busy`` <= 1. At share 1 and 0 every figure is the pure speculative
    and the no-speculation one."""
    model = LLAMA_70B if big else LLAMA_8B
    tp = tp if big else 1
    spec = Speculation(method, k, alpha, share)  # type: ignore[arg-type]
    roof = H100_NVLINK
    spec_sol = decode_step(
        model, roof, batch, context, "bf16", "bf16", tp, speculation=spec
    ).speed_of_light_tokens_per_second
    plain_sol = decode_step(
        model, roof, batch, context, "bf16", "bf16", tp
    ).speed_of_light_tokens_per_second
    rate = busy / (
        share / (spec_efficiency * spec_sol) + (1 - share) / (plain_efficiency * plain_sol)
    )
    kw = {"model": model, "roof": roof, "batch": batch, "context": context, "tp": tp}
    point = operating_point(_live(spec, rate, **kw))  # type: ignore[arg-type]
    assert point.decode_speed_of_light_ratio is not None
    assert point.decode_speed_of_light_ratio <= 1.0 + 1e-9
    assert point.decode_speed_of_light_ratio <= busy * (1 + 1e-9)
    assert point.model_bandwidth_utilization_ratio is not None
    assert point.model_bandwidth_utilization_ratio <= 1.0 + 1e-9
    assert 1.0 <= point.tokens_per_step_per_sequence <= 1 + k * alpha + 1e-12

    whole = dataclasses.replace(spec, token_share=1.0)
    none = dataclasses.replace(spec, token_share=0.0)
    for fused in (0.0, prefill):
        kw_fused = {**kw, "prefill": fused}
        _same_figures(
            operating_point(_live(whole, rate, **kw_fused)),  # type: ignore[arg-type]
            operating_point(_live(Speculation(method, k, alpha), rate, **kw_fused)),  # type: ignore[arg-type]
        )
        _same_figures(
            operating_point(_live(none, rate, **kw_fused)),  # type: ignore[arg-type]
            operating_point(_live(None, rate, **kw_fused)),  # type: ignore[arg-type]
        )
    # The blend lies between its ends.
    lo, hi = sorted((plain_sol, spec_sol))
    sol = point.decode_speed_of_light_tokens_per_second
    assert lo * (1 - 1e-12) <= sol <= hi * (1 + 1e-12)
