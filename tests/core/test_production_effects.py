"""Issue 11: production features that change bytes and FLOPs per token, one worked example each.

Hardware constants used throughout (research/roofline-anchors.md §1.2): H100 SXM 989.4 TFLOP/s
BF16 dense, 1979 FP8 dense, 3.35 TB/s HBM3, 80 GB; H200 989 / 1979 TFLOP/s, 4.8 TB/s, 141 GB.
Model constants are the HF configs (research §4; test_plan_independent.py lists them).
"""

from __future__ import annotations

import json
import math

import pytest

from rooftop.classifiers.capacity import capacity, kv_headroom_ratio
from rooftop.classifiers.communication import all_reduce_seconds
from rooftop.classifiers.cross_check import cross_check
from rooftop.classifiers.hardware import NVLINK4, lookup_gpu
from rooftop.classifiers.model_catalog import lookup_model
from rooftop.classifiers.models import (
    replicated_weight_bytes,
    stored_weight_bytes,
    weight_bytes_per_step,
)
from rooftop.classifiers.operating_point import LiveWorkload, operating_point
from rooftop.classifiers.prefix_cache import computed_prefill, per_sequence_context_tokens
from rooftop.classifiers.roofline import (
    Roof,
    crossover_batch,
    decode_step,
    dense_model,
    mixed_step,
    prefill_chunk,
)
from rooftop.classifiers.speculative import (
    Speculation,
    SpeculationError,
    acceptance_from_accept_length,
    acceptance_from_counters,
)
from rooftop.classifiers.verdict import (
    HysteresisState,
    VerdictEvidence,
    VerdictThresholds,
    classify,
    classify_held,
)
from rooftop.exporter.cli import main

H100 = Roof(989.4e12, 3.35e12)
H100_TP = Roof(989.4e12, 3.35e12, None, NVLINK4)
RIDGE = 989.4 / 3.35  # 295.3 FLOP/byte
LLAMA_8B = lookup_model("llama-3.1-8b")


# --- 1. speculative decoding -------------------------------------------------------------------


def test_speculation_weights_read_once_and_tokens_per_step_from_acceptance() -> None:
    """An 8B dense model (16e9 BF16 bytes, the napkin of research §3.1) on H100 at batch 1, n-gram
    drafting (free: a host-side lookup) with k = 3 and 5/6 of drafts accepted:

    - verified tokens 1 + 3 = 4; the weights are read once: 16e9 bytes, 4.776 ms at 3.35 TB/s;
      FLOPs 2 x 8e9 x 4 = 64e9 (0.065 ms, far under the memory time);
    - tokens per step 1 + 3 x 5/6 = 3.5, so speed of light = 3.5 / 4.776 ms = 732.8 tok/s.

    An engine at 30 % of that emits 219.8 tok/s. Read as one token per step (no speculation) it
    shows MBU 16e9 x 219.8 / 3.35e12 = 1.05 and SOL ratio 1.05, a false memory bound; with
    speculation modelled both are 0.30, and the observed bytes/token (30 % of 3.35 TB/s over
    219.8 tok/s = 4.57e9 = 16e9 / 3.5) matches the model's."""
    model = dense_model(8e9)
    spec = Speculation("ngram", 3, 5 / 6)
    step = decode_step(model, H100, 1, 0, speculation=spec)
    assert step.verified_tokens == 4
    assert step.bytes == 16e9
    assert step.total_flops == 64e9
    assert step.step_seconds == pytest.approx(16e9 / 3.35e12)
    assert step.speed_of_light_tokens_per_second == pytest.approx(732.8, rel=1e-4)

    rate = 0.3 * step.speed_of_light_tokens_per_second
    plain = operating_point(LiveWorkload(model, H100, None, "bf16", 1, 1, 0, rate, 0.0, None))
    assert plain.model_bandwidth_utilization_ratio == pytest.approx(1.05, rel=1e-3)
    assert plain.decode_speed_of_light_ratio == pytest.approx(1.05, rel=1e-3)
    live = LiveWorkload(model, H100, None, "bf16", 1, 1, 0, rate, 0.0, 0.3 * 3.35e12, spec)
    point = operating_point(live)
    assert point.model_bandwidth_utilization_ratio == pytest.approx(0.30)
    assert point.decode_speed_of_light_ratio == pytest.approx(0.30)
    assert point.tokens_per_step_per_sequence == pytest.approx(3.5)
    assert point.decode_observed_bytes_per_token == pytest.approx(16e9 / 3.5)
    assert point.decode_bytes_per_token == pytest.approx(16e9 / 3.5)

    # The verdict: MBU 30 % is below the 50 % memory cut, so not memory; the reason says why.
    verdict = classify(
        VerdictEvidence(
            decode_tokens_per_second=rate,
            batch_size=1,
            model_bandwidth_utilization_ratio=point.model_bandwidth_utilization_ratio,
            model_flops_utilization_ratio=point.model_flops_utilization_ratio,
            ridge_point_flops_per_byte=RIDGE,
            tokens_per_step_per_sequence=point.tokens_per_step_per_sequence,
        )
    )
    assert verdict.state == "latency"
    assert "speculative decoding, 3.50 tokens per step per sequence" in verdict.reason
    assert "speculation" in verdict.codes


def test_draft_model_cost_is_k_decode_steps_of_the_draft() -> None:
    """Llama-3.2-1B drafting k = 4 tokens for Llama-3.1-8B at batch 1, context 0, on H100: the
    draft's step reads its 2.47 GB of BF16 weights (1.236 B parameters, tied) in 0.74 ms, four
    times: 2.95 ms before the target's 4-token verification (15.0 GB, 4.48 ms)."""
    draft = lookup_model("llama-3.2-1b")
    spec = Speculation("draft_model", 4, 0.6)
    step = decode_step(LLAMA_8B, H100, 1, 0, speculation=spec, draft_model=draft)
    one_draft = decode_step(draft, H100, 1, 0)
    assert one_draft.weight_bytes == pytest.approx(2 * 1.236e9, rel=2e-3)
    assert step.draft_seconds == pytest.approx(4 * one_draft.step_seconds)
    assert step.draft_bytes == pytest.approx(4 * one_draft.bytes)
    assert step.step_seconds == pytest.approx(step.roofline_seconds + 4 * one_draft.step_seconds)
    assert step.emitted_tokens == pytest.approx(1 + 4 * 0.6)
    with pytest.raises(ValueError, match="needs the draft model"):
        decode_step(LLAMA_8B, H100, 1, 0, speculation=spec)


def test_mtp_head_costs_one_layer_and_the_lm_head_per_draft() -> None:
    """DeepSeek-V3 MTP (k = 1) at batch 1, context 0, one H200 (4.8 TB/s): the head is one
    decoder layer plus the shared LM head. Per draft: 1/61 of the target's non-head weights at
    T = 1 plus the BF16 LM head 129280 x 7168 x 2 = 1,853,358,080 bytes."""
    ds = lookup_model("deepseek-v3")
    roof = Roof(1979e12, 4.8e12, 989e12)
    step = decode_step(ds, roof, 1, 0, speculation=Speculation("mtp", 1, 0.8))
    head = 129280 * 7168 * 2
    body = weight_bytes_per_step(ds, "fp8", 1) - head
    assert step.draft_bytes == pytest.approx(body / 61 + head + 656 * 0 + 1152, rel=1e-6)
    assert step.emitted_tokens == pytest.approx(1.8)


def test_acceptance_from_engine_counters() -> None:
    """vLLM counters over one window: 1,000 drafts (one per sequence per step), 3,000 draft
    tokens, 2,500 accepted: k = 3, alpha = 0.8333, 1 + 3 x 0.8333 = 3.5 tokens per step. SGLang's
    accept length 3.5 at k = 3 gives the same alpha."""
    k, alpha = acceptance_from_counters(1000, 3000, 2500) or (0, 0)
    assert (k, alpha) == (3.0, pytest.approx(5 / 6))
    assert acceptance_from_accept_length(3.5, 3) == pytest.approx(5 / 6)
    assert acceptance_from_counters(0, 0, 0) is None
    with pytest.raises(SpeculationError, match="exceed"):
        acceptance_from_counters(10, 30, 31)


# --- 2. TP replication --------------------------------------------------------------------------


def test_deepseek_v3_tp8_keeps_replicated_parts_whole(capsys: pytest.CaptureFixture[str]) -> None:
    """DeepSeek-V3 FP8 at TP 8 on H200, batch 1, 4096 tokens of context: the issue's
    independent figure is 801 tok/s on the memory roof, where an even 1/8 split of every weight
    gave 957. Replicated per GPU: fused q_a + kv_a 7168 x 2112 FP8 (+ block scales) x 61 =
    923.7 MB, router 7168 x 256 BF16 x 58 = 212.9 MB (+ its bias), norms 2.0 MB: 1,138.6 MB,
    7/8 of which an even split misses (996.3 MB; worked in
    test_roofline.test_deepseek_mla_decode_kv_read)."""
    ds = lookup_model("deepseek-v3")
    assert replicated_weight_bytes(ds, "fp8", 8) == pytest.approx(996_278_388, rel=1e-9)
    argv = ["plan", "--gpu", "h200", "--model", "deepseek-v3", "--tp", "8", "--batch", "1"]
    assert main([*argv, "--json"]) == 0
    (point,) = json.loads(capsys.readouterr().out)["points"]
    assert 1 / point["memory_seconds"] == pytest.approx(801, rel=0.005)
    assert 1 / point["memory_seconds"] < 957 * 0.85


def test_kv_heads_replicated_when_fewer_than_gpus() -> None:
    """Qwen3-30B-A3B has 4 KV heads; at TP 8 each GPU keeps one whole head (vLLM
    ``max(1, n_kv // tp)``), so its K/V projection columns are 1 x 128 x 2 per layer, not half a
    head: per GPU the fused qkv holds 2048 x (32/8 + 2 x 1) x 128 weights per layer, i.e. the
    K/V part is 2048 x 256 x 48 layers x 2 bytes = 50,331,648 bytes where an even split gives
    25,165,824."""
    qwen = lookup_model("qwen3-30b-a3b")
    extra = stored_weight_bytes(qwen, "bf16", 8) - stored_weight_bytes(qwen, "bf16", 1) / 8
    norms_and_router = replicated_weight_bytes(qwen, "bf16", 8) - (50_331_648 - 25_165_824)
    # router 2048 x 128 x 48 x 2 bytes and the norms are the rest, all replicated (7/8 extra)
    router = 2048 * 128 * 48 * 2
    norms = ((2 * 48 + 1) * 2048 + 2 * 128 * 48) * 2
    assert norms_and_router == pytest.approx((router + norms) * 7 / 8)
    assert extra == pytest.approx(replicated_weight_bytes(qwen, "bf16", 8))


# --- 3. communication ---------------------------------------------------------------------------


def test_tp8_all_reduces_add_to_the_step() -> None:
    """Llama-3.1-70B BF16 at TP 8 on H100 SXM over NVLink 4, batch 1, 4096 tokens: 2 x 80 + 1 =
    161 all-reduces of 8192 x 2 = 16,384 bytes, each 3.6 + 14 x 0.47 = 10.18 us of latency plus
    14/8 x 16,384 / 450e9 = 0.064 us of transfer: 1.649 ms a step. The memory roof alone gives
    5.24 ms (190.8 tok/s); with the collectives 6.89 ms, 145.2 tok/s."""
    l70 = lookup_model("llama-3.1-70b")
    assert all_reduce_seconds(16_384, 8, NVLINK4) == pytest.approx(
        3.6e-6 + 14 * 0.47e-6 + 14 / 8 * 16_384 / 450e9
    )
    step = decode_step(l70, H100_TP, 1, 4096, tp=8)
    assert step.communication_seconds == pytest.approx(161 * 10.2437e-6, rel=1e-4)
    assert 1 / step.roofline_seconds == pytest.approx(190.8, rel=1e-3)
    assert step.speed_of_light_tokens_per_second == pytest.approx(145.2, rel=1e-3)
    assert decode_step(l70, H100_TP, 1, 4096, tp=1).communication_seconds == 0.0


def test_catalog_links_have_sources() -> None:
    """NVLink 3/4/5 egress 300/450/900 GB/s per GPU (scaling book), PCIe x16 Gen4/5 31.5/63 GB/s
    per direction (PCI-SIG: 16/32 GT/s x 16 lanes x 128/130 / 8)."""
    assert lookup_gpu("a100-sxm4-80gb").interconnect.bandwidth_bytes_per_second == 300e9  # type: ignore[union-attr]
    assert lookup_gpu("h100-sxm").interconnect.bandwidth_bytes_per_second == 450e9  # type: ignore[union-attr]
    assert lookup_gpu("b200").interconnect.bandwidth_bytes_per_second == 900e9  # type: ignore[union-attr]
    pcie4 = lookup_gpu("l40s").interconnect
    assert pcie4 is not None and pcie4.bandwidth_bytes_per_second == pytest.approx(
        16e9 * 16 * 128 / 130 / 8, rel=1e-3
    )
    assert "tuning.cc" in pcie4.source and "PCI-SIG" in pcie4.source


def test_communication_bound_verdict() -> None:
    """A GPU busy 95 % while DRAM is 30 % and tensor 5 %, TP 8 with the model putting 24 % of each
    step in all-reduces and GPM's NVLink rates at 40 % of the link: latency, waiting on
    collectives (thresholds 20 % of the step, 30 % of the link)."""
    verdict = classify(
        VerdictEvidence(
            tier="gpm",
            dram_active_ratio=0.30,
            sm_active_ratio=0.95,
            tensor_active_ratio=0.05,
            decode_tokens_per_second=140.0,
            batch_size=1,
            communication_share_ratio=0.24,
            interconnect_active_ratio=0.40,
        )
    )
    assert verdict.state == "latency"
    assert "waiting on tensor-parallel collectives" in verdict.reason
    assert "24% of each step" in verdict.reason and "NVLink 40% busy" in verdict.reason
    assert verdict.codes == ("communication",)


def test_plan_shows_communication_column(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "h100-sxm", "--model", "llama-3.1-70b", "--tp", "8"]) == 0
    out = capsys.readouterr().out
    assert "comm ms" in out and "nvlink4" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("1 "))
    assert row[6] == "1.649"  # comm ms of batch 1 (after "17.6 GB", "18.7 GFLOP", "1.1")


# --- 4. prefix caching --------------------------------------------------------------------------


def test_prefix_cache_hits_leave_computed_prefill_and_mark_upper_bounds() -> None:
    """10,000 prompt tokens/s at an 80 % prefix-cache hit rate compute 2,000 tokens/s; without a
    hit counter the 10,000 stand, marked as an upper bound (5x the work at that hit rate)."""
    known = computed_prefill(10_000, includes_cached=True, hit_ratio=0.8)
    assert known.tokens_per_second == pytest.approx(2_000) and not known.upper_bound
    unknown = computed_prefill(10_000, includes_cached=True, hit_ratio=None)
    assert unknown.tokens_per_second == 10_000 and unknown.upper_bound
    assert not computed_prefill(2_000, includes_cached=False, hit_ratio=None).upper_bound


def test_upper_bound_mfu_never_decides_compute() -> None:
    """The issue's case: at an 80 % hit rate the raw-prompt MFU reads 0.84 where the real one is
    0.17; decode alone is 0.10. With DRAM (MBU) at 0.55 the verdict is memory, not compute, and
    the reason says the MFU is an upper bound."""
    evidence = VerdictEvidence(
        decode_tokens_per_second=3_000,
        prefill_tokens_per_second=40_000,
        batch_size=64,
        model_bandwidth_utilization_ratio=0.55,
        model_flops_utilization_ratio=0.84,
        decode_mfu_ratio=0.10,
        mfu_upper_bound=True,
        ridge_point_flops_per_byte=RIDGE,
    )
    verdict = classify(evidence)
    assert verdict.state == "memory"
    assert "MFU 84% is an upper bound" in verdict.reason and "decode alone 10%" in verdict.reason
    assert "prefix_upper_bound" in verdict.codes
    # The same figures measured (hit counters present) do decide compute.
    measured = classify(
        VerdictEvidence(
            decode_tokens_per_second=3_000,
            prefill_tokens_per_second=40_000,
            batch_size=64,
            model_bandwidth_utilization_ratio=0.55,
            model_flops_utilization_ratio=0.84,
            arithmetic_intensity_flops_per_byte=400,
            ridge_point_flops_per_byte=RIDGE,
        )
    )
    assert measured.state == "compute"


def test_operating_point_flags_raw_prompt_prefill() -> None:
    """Llama-3.1-8B on H100: raw prompt tokens with no hit counter set the upper-bound flag; an
    80 % hit ratio computes a fifth of them."""
    base = {
        "model": LLAMA_8B,
        "roof": H100,
        "weights": "bf16",
        "kv_dtype": "bf16",
        "tensor_parallel": 1,
        "batch": 32,
        "context_tokens": 2048,
        "decode_tokens_per_second": 1_000.0,
        "prefill_tokens_per_second": 10_000.0,
        "dram_bytes_per_second": None,
        "prefill_includes_cached": True,
    }
    raw = operating_point(LiveWorkload(**base))  # type: ignore[arg-type]
    assert raw.prefill_flops_upper_bound
    hit = operating_point(LiveWorkload(**base, prefix_cache_hit_ratio=0.8))  # type: ignore[arg-type]
    assert not hit.prefill_flops_upper_bound
    assert hit.prefill_computed_tokens_per_second == pytest.approx(2_000)
    assert hit.model_flops_utilization_ratio < raw.model_flops_utilization_ratio  # type: ignore[operator]


def test_per_sequence_context_counts_the_shared_prefix_per_sequence() -> None:
    """64 sequences share a 3,000-token system prompt and hold 1,000 tokens each: resident KV
    3,000 + 64 x 1,000 = 67,000 tokens. Resident / batch = 1,047 tokens, but each sequence
    reads 4,000: with the shared share h = 0.75, 67,000 / (0.75 + 64 x 0.25) = 4,000."""
    assert per_sequence_context_tokens(67_000, 64, None) == pytest.approx(67_000 / 64)
    assert per_sequence_context_tokens(67_000, 64, 0.75) == pytest.approx(4_000)
    assert per_sequence_context_tokens(5_000, 10, 1.0) == pytest.approx(5_000)


# --- 5. model step intensity instead of the tokens-per-step proxy ------------------------------


def test_model_intensity_replaces_token_proxy() -> None:
    """Llama-3.1-8B BF16 at batch 300 and 4096 tokens of context on H100: per step the weights
    are 15.0 GB, each sequence reads 4096 x 131,072 = 537 MB of KV (161 GB for 300), and the
    FLOPs are 300 x (2 x 7.50e9 + 4 x 32 x 128 x 32 x 4096 = 17.16e9) = 5.15e12: intensity
    5.15e12 / 176.4e9 = 29.0 FLOP/byte, ten times below the 295 ridge. The proxy (300 tokens
    per step) would say compute; the model's intensity says memory."""
    step = decode_step(LLAMA_8B, H100, 300, 4096)
    assert step.arithmetic_intensity_flops_per_byte == pytest.approx(29.0, rel=2e-3)
    common = {
        "decode_tokens_per_second": 6_000.0,
        "batch_size": 300,
        "ridge_point_flops_per_byte": RIDGE,
    }
    proxy = classify(VerdictEvidence(**common))  # type: ignore[arg-type]
    assert proxy.state == "compute" and "token_proxy" in proxy.codes
    assert "model unknown" in proxy.reason
    known = classify(
        VerdictEvidence(**common, arithmetic_intensity_flops_per_byte=29.0)  # type: ignore[arg-type]
    )
    assert known.state == "memory"
    assert "model step intensity 29.0 FLOP/byte < ridge 295" in known.reason
    assert known.codes == ("model_intensity",)


def test_token_proxy_is_dtype_aware() -> None:
    """Model unknown, 200 tokens per step: BF16 weights (2 bytes) give 200 FLOP/byte < 295; FP8
    (1 byte per weight: 2 FLOP per byte read) doubles it to 400 ≥ 295."""
    common = {
        "decode_tokens_per_second": 4_000.0,
        "batch_size": 200,
        "ridge_point_flops_per_byte": RIDGE,
    }
    assert classify(VerdictEvidence(**common)).state == "memory"  # type: ignore[arg-type]
    fp8 = classify(VerdictEvidence(**common, weight_bytes_per_parameter=1.0))  # type: ignore[arg-type]
    assert fp8.state == "compute" and "= 400 FLOP/byte" in fp8.reason


# --- 6. unknown ---------------------------------------------------------------------------------


def test_no_evidence_is_unknown_not_idle() -> None:
    """Empty evidence, or tier nvml with no utilization reading and no engine: unknown. An engine
    that reports 0 tokens with no GPU reading is still idle (the engine is evidence)."""
    assert classify(VerdictEvidence()).state == "unknown"
    nvml = classify(VerdictEvidence(tier="nvml"))
    assert nvml.state == "unknown" and nvml.codes == ("no_evidence",)
    assert classify(VerdictEvidence(decode_tokens_per_second=0.0)).state == "idle"


# --- 7. capacity --------------------------------------------------------------------------------


def test_capacity_marks_what_does_not_fit() -> None:
    """Llama-3.1-8B BF16 on an 80 GB H100, 90 % usable (vLLM --gpu-memory-utilization 0.9):
    weights 16.06 GB, KV 131,072 B/token x 131,072 tokens = 17.18 GB per sequence at 128k. Batch
    64 needs 1.1 TB: infeasible; the largest batch is floor((72 - 16.06) / 17.18) = 3.
    DeepSeek-V3 FP8 on one H200 (141 GB): weights alone are 673 GB."""
    fit = capacity(LLAMA_8B, 80e9, 131_072)
    assert fit.kv_bytes_per_sequence == 131_072 * 131_072
    assert fit.needed_bytes(64) == pytest.approx(1.116e12, rel=1e-3)
    assert not fit.fits(64) and fit.fits(3) and not fit.fits(4)
    assert fit.max_batch == 3
    ds = capacity(lookup_model("deepseek-v3"), 141e9, 4096)
    assert not ds.weights_fit and ds.max_batch == 0
    assert kv_headroom_ratio(200_000, 64 * 4096) == pytest.approx(0.763, rel=1e-3)


def test_plan_prints_feasibility_and_largest_batch(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--gpu", "h100-sxm", "--model", "llama-3.1-8b", "--context", "131072"]
    assert main([*argv, "--batch", "1,64"]) == 0
    out = capsys.readouterr().out
    assert "largest batch that fits 3" in out
    rows = [line.split() for line in out.splitlines() if line.strip().endswith(("yes", "NO"))]
    assert [row[-1] for row in rows] == ["yes", "NO"]
    assert main([*argv, "--batch", "1,64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["fits"] for p in data["points"]] == [True, False]
    assert data["capacity"]["max_batch"] == 3


# --- 8. fused chunked prefill ------------------------------------------------------------------


def test_fused_step_reads_weights_once() -> None:
    """Llama-3.1-8B on H100: 256 sequences decoding at 128 tokens with a 256-token prefill chunk
    in the same step. Weights at T tokens are 15,009,849,344 + 8,192 T bytes (research §3.5:
    linear + norms in BF16, one 4096-wide embedding row per token), so the fused step reads
    15,009,849,344 + 8,192 x 512 once where separate steps read the 15.0 GB twice. Separately
    10.99 ms; fused 7.82 ms (the fused step sits near the ridge, intensity 355)."""
    decode = decode_step(LLAMA_8B, H100, 256, 128)
    chunk = prefill_chunk(LLAMA_8B, H100, 256, 128)
    fused = mixed_step(LLAMA_8B, H100, 256, 128, 256, 128)
    assert fused.weight_bytes == pytest.approx(15_009_849_344 + 8_192 * 512)
    assert decode.weight_bytes + chunk.weight_bytes - fused.weight_bytes == pytest.approx(
        15_009_849_344
    )
    assert fused.flops == pytest.approx(decode.flops + chunk.flops)
    assert fused.emitted_tokens == 256
    assert decode.step_seconds + chunk.step_seconds == pytest.approx(10.99e-3, rel=1e-3)
    assert fused.step_seconds == pytest.approx(7.82e-3, rel=1e-3)


def test_prefilling_requests_are_not_in_the_decode_batch() -> None:
    """10 running requests of which 2 are still prefilling: the decode batch is 8."""
    point = operating_point(
        LiveWorkload(
            LLAMA_8B,
            H100,
            "bf16",
            "bf16",
            1,
            10,
            1024,
            800.0,
            4_000.0,
            None,
            prefilling_requests=2,
        )
    )
    assert point.batch == 8
    # 800 tok/s at 8 per step: 100 steps/s, so 40 prefill tokens ride in each step.
    assert point.prefill_tokens_per_step == pytest.approx(40)


# --- 9. mixed compute dtypes -------------------------------------------------------------------


def test_attention_at_bf16_beside_fp8_gemms() -> None:
    """DeepSeek-V3 FP8 on one H200, batch 1, 4096 tokens: attention (FlashMLA, BF16) is
    278,528 FLOPs per cached token per layer x 4096 x 61 = 69.59 GFLOP, charged at 989 TFLOP/s;
    the GEMMs at 1979. Charging each part at its own peak moves the compute-bound crossover at
    4096 tokens from batch 4,527 (everything at the FP8 peak) to 2,116."""
    ds = lookup_model("deepseek-v3")
    fp8_only = Roof(1979e12, 4.8e12)
    mixed = Roof(1979e12, 4.8e12, 989e12)
    step = decode_step(ds, mixed, 1, 4096, "fp8")
    attention = 278_528 * 4096 * 61
    assert step.attention_flops == attention
    assert step.compute_seconds == pytest.approx(
        (step.flops - attention) / 1979e12 + attention / 989e12
    )
    assert crossover_batch(ds, fp8_only, 4096, "fp8", "fp8") == 4527
    assert crossover_batch(ds, mixed, 4096, "fp8", "fp8") == 2116


# --- 10. hysteresis with a dead band -----------------------------------------------------------


def test_dead_band_holds_memory_while_dram_hovers_at_threshold() -> None:
    """DRAM hovering around the 0.60 enter threshold (0.62, 0.58, 0.61, 0.57, ...) with tensor
    at 5 %: without a dead band the observed state alternates memory/latency and, held 3
    samples, still flips whenever three lows line up; with the 0.50 leave threshold it stays
    memory, and leaves only after three samples below 0.50."""
    th = VerdictThresholds()
    state = HysteresisState()
    hover = [0.62, 0.61, 0.63, 0.58, 0.57, 0.59, 0.61, 0.58, 0.56, 0.59, 0.57]

    def evidence(dram: float) -> VerdictEvidence:
        return VerdictEvidence(
            tier="gpm",
            dram_active_ratio=dram,
            sm_active_ratio=0.9,
            tensor_active_ratio=0.05,
            decode_tokens_per_second=100.0,
        )

    published = []
    for dram in hover:
        state = classify_held(state, evidence(dram), th)
        assert state.current is not None
        published.append(state.current.state)
    assert set(published) == {"memory"}
    # Without the dead band, three lows in a row (0.58, 0.57, 0.59) flip it to latency.
    plain = [classify(evidence(d), th).state for d in hover]
    assert plain[3:6] == ["latency"] * 3
    for dram in (0.45, 0.44, 0.43):
        state = classify_held(state, evidence(dram), th)
    assert state.current is not None and state.current.state == "latency"


def test_leave_threshold_must_sit_below_enter() -> None:
    with pytest.raises(ValueError, match="dead band"):
        VerdictThresholds(memory_dram_leave_ratio=0.7)


# --- 11. three-way cross-check -----------------------------------------------------------------


def test_cross_check_names_the_largest_disagreement() -> None:
    """A MoE model: rooftop's model moves 2.0 TB/s, vLLM's estimated read + write bytes say
    1.2 TB/s (0.6x), the DRAM counters 2.1 TB/s (1.05x); FLOP/s agree (1.1x). The largest
    distance from 1 on a log scale, each source against the model, is |ln 0.6| = 0.51: the
    engine's bytes (hardware vs engine, 1.75x, is the same disagreement seen from the side that
    agrees with the model, so it is not named)."""
    check = cross_check(
        model_flops_per_second=3.0e14,
        engine_flops_per_second=3.3e14,
        model_bytes_per_second=2.0e12,
        engine_bytes_per_second=1.2e12,
        hardware_bytes_per_second=2.1e12,
        moe=True,
    )
    assert check.ratio("bytes", "engine/model") == pytest.approx(0.6)
    assert check.ratio("bytes", "hardware/model") == pytest.approx(1.05)
    assert check.ratio("flops", "engine/model") == pytest.approx(1.1)
    assert check.largest is not None
    assert check.largest.pair == "engine/model" and check.largest.quantity == "bytes"
    assert check.largest.phrase.startswith("engine estimate 0.6x model bytes/s: it ignores MoE")
    verdict = classify(
        VerdictEvidence(
            tier="gpm",
            dram_active_ratio=0.62,
            sm_active_ratio=0.9,
            tensor_active_ratio=0.1,
            decode_tokens_per_second=2_000.0,
            cross_check=check,
        )
    )
    assert verdict.state == "memory" and "cross-check: engine estimate 0.6x" in verdict.reason
    assert "cross_check" in verdict.codes
    agree = cross_check(
        model_flops_per_second=1e14,
        engine_flops_per_second=1.1e14,
        model_bytes_per_second=1e12,
        engine_bytes_per_second=0.9e12,
        hardware_bytes_per_second=None,
    )
    assert agree.largest is None
    assert math.isclose(agree.ratio("bytes", "engine/model") or 0, 0.9)


def test_live_speculation_prefers_counters_then_accept_length_then_setting() -> None:
    """Counter rates 100 drafts/s, 300 draft tokens/s, 240 accepted/s: k = 3, alpha = 0.8. An
    SGLang accept length of 2.5 with the configured k = 3: alpha = 0.5. Nothing drafted: the
    setting (k = 4, alpha 0.6) stands."""
    from rooftop.classifiers.speculative import live_speculation

    setting = Speculation("mtp", 4, 0.6)
    counted = live_speculation(
        setting, drafts_per_second=100, draft_tokens_per_second=300, accepted_tokens_per_second=240
    )
    assert counted is not None and (counted.method, counted.num_speculative_tokens) == ("mtp", 3)
    assert counted.acceptance_rate == pytest.approx(0.8)
    by_length = live_speculation(Speculation("eagle", 3, 0.9), accept_length=2.5)
    assert by_length is not None and by_length.acceptance_rate == pytest.approx(0.5)
    idle = live_speculation(
        setting, drafts_per_second=0, draft_tokens_per_second=0, accepted_tokens_per_second=0
    )
    assert idle == setting
    assert live_speculation(None) is None
    # 100 drafts/s + 240 accepted/s = 340 tok/s emitted by speculative steps: of 1,000 tok/s
    # generated (a window straddling the end of speculation) that is a share of 0.34, the
    # other 660 tok/s from plain steps. Counters past the generated count clamp the share at 1.
    straddling = live_speculation(
        None,
        drafts_per_second=100,
        draft_tokens_per_second=300,
        accepted_tokens_per_second=240,
        decode_tokens_per_second=1_000,
    )
    assert straddling is not None and straddling.token_share == pytest.approx(0.34)
    assert (straddling.num_speculative_tokens, straddling.acceptance_rate) == (3, 0.8)
    ahead = live_speculation(
        None,
        drafts_per_second=100,
        draft_tokens_per_second=300,
        accepted_tokens_per_second=240,
        decode_tokens_per_second=300,
    )
    assert ahead is not None and ahead.token_share == 1.0
    assert setting.token_share == 1.0
    with pytest.raises(SpeculationError, match="token_share"):
        Speculation("eagle", 3, 0.8, 1.5)


def test_live_helpers_nvlink_share_and_prefix_hit_ratio() -> None:
    """GPM NVLink 180 GB/s out and 180 GB/s in on NVLink 4 (450 GB/s each way): 40 % busy.
    vLLM prefix counters over a window: 10,000 queried tokens, 8,000 hits: 0.8."""
    from rooftop.classifiers.communication import interconnect_active_ratio
    from rooftop.classifiers.prefix_cache import hit_ratio_from_counters

    assert interconnect_active_ratio(180e9, 180e9, NVLINK4) == pytest.approx(0.4)
    assert interconnect_active_ratio(180e9, None, NVLINK4) is None
    assert hit_ratio_from_counters(10_000, 8_000) == pytest.approx(0.8)
    assert hit_ratio_from_counters(0, 0) is None
