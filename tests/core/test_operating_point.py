"""classifiers.operating_point: live roofline figures, each expected value worked by hand."""

from __future__ import annotations

import pytest

from rooftop.classifiers.model_catalog import lookup_model
from rooftop.classifiers.operating_point import PREFILL_CHUNK_TOKENS, LiveWorkload, operating_point
from rooftop.classifiers.roofline import Model, Roof, dense_model

H100_SXM = Roof(peak_flops_per_second=989.4e12, peak_bandwidth_bytes_per_second=3.35e12)
"""H100 SXM5: dense BF16 989.4 TFLOP/s, HBM3 3.35 TB/s; ridge 989.4 / 3.35 = 295.34 FLOP/B."""
LLAMA_8B = lookup_model("meta-llama/Llama-3.1-8B-Instruct")

# Llama-3.1-8B (d 4096, 32 layers, 32 q / 8 kv heads of 128, MLP 14336, vocab 128256, untied):
#   linear parameters a token passes = 32 x (q 4096·4096 + k,v 2·4096·1024 + o 4096·4096
#   + MLP 3·4096·14336 = 218,103,808) + LM head 128256·4096 = 7,504,658,432.
#   Weights read per decode step (BF16): 2 B x (linear + 32·2·4096 + 4096 norm weights + one
#   4096-wide embedding row) = 2 x 7,504,928,768 = 15,009,857,536 B.
#   KV per token: 2 (K,V) x 8 heads x 128 x 2 B x 32 layers = 131,072 B.
#   At context 1024: KV read 134,217,728 B; KV write 131,072 B.
#   Activations (16-bit in + out of each fused matmul): 2 x (4096 embedding + 32 x (qkv 4096+6144
#   + o 4096+4096 + gate_up 4096+28672 + down 14336+4096 = 69,632) + LM head 4096+128256)
#   = 4,729,344 B.
LLAMA_STEP_BYTES_B1_C1024 = 15_009_857_536 + 134_217_728 + 131_072 + 4_729_344
#   FLOPs per token: 2 x 7,504,658,432 + attention 4 x 32 heads x 128 x 32 layers x 1024.
LLAMA_FLOPS_PER_TOKEN_C1024 = 2 * 7_504_658_432 + 4 * 32 * 128 * 32 * 1024


def live(
    model: Model = LLAMA_8B,
    *,
    batch: float | None = 1,
    context: int = 1024,
    decode: float | None = 150.0,
    prefill: float | None = 0.0,
    dram: float | None = None,
    tp: int = 1,
) -> LiveWorkload:
    return LiveWorkload(
        model=model,
        roof=H100_SXM,
        weights="bf16",
        kv_dtype="bf16",
        tensor_parallel=tp,
        batch=batch,
        context_tokens=context,
        decode_tokens_per_second=decode,
        prefill_tokens_per_second=prefill,
        dram_bytes_per_second=dram,
    )


def test_llama_8b_h100_batch_1_hand_worked() -> None:
    point = operating_point(live(decode=150.0, dram=2.4e12))
    assert point.batch == 1
    assert point.ridge_point_flops_per_byte == pytest.approx(989.4 / 3.35)  # 295.34
    assert point.decode_bytes_per_token == pytest.approx(LLAMA_STEP_BYTES_B1_C1024)
    assert point.decode_flops_per_token == pytest.approx(LLAMA_FLOPS_PER_TOKEN_C1024)
    # AI = 15,546,187,776 / 15,148,935,680 = 1.026 FLOP/B, far left of the 295 ridge.
    assert point.decode_arithmetic_intensity == pytest.approx(1.02622, rel=1e-5)
    assert point.decode_bound == "memory"
    # SOL = 3.35e12 B/s / 15,148,935,680 B = 221.14 tok/s; 150 / 221.14 = 0.6783.
    assert point.decode_speed_of_light_tokens_per_second == pytest.approx(221.1376, rel=1e-6)
    assert point.decode_speed_of_light_ratio == pytest.approx(0.678310, rel=1e-5)
    # MBU at batch 1 equals the SOL ratio: 15.149e9 B x 150 /s / 3.35e12 B/s.
    assert point.model_bandwidth_utilization_ratio == pytest.approx(0.678310, rel=1e-5)
    # MFU = 150 x 15,546,187,776 / 989.4e12 = 0.0023569.
    assert point.model_flops_utilization_ratio == pytest.approx(2.35691e-3, rel=1e-4)
    assert point.decode_achieved_flops_per_second == pytest.approx(
        150 * LLAMA_FLOPS_PER_TOKEN_C1024
    )
    # Observed bytes per token = DRAM bytes/s / decode tok/s = 2.4e12 / 150 = 1.6e10 B.
    assert point.decode_observed_bytes_per_token == pytest.approx(1.6e10)
    # Observed AI = model FLOP/s / DRAM B/s = 150 x 15.546e9 / 2.4e12 = 0.97164.
    assert point.decode_observed_arithmetic_intensity == pytest.approx(0.971637, rel=1e-5)
    assert point.prefill_speed_of_light_ratio == 0.0
    assert point.prefill_achieved_flops_per_second == 0.0


def test_tensor_parallel_two_halves_bytes_and_doubles_speed_of_light() -> None:
    one = operating_point(live(tp=1))
    two = operating_point(live(tp=2))
    # Weights and KV heads (8 over 2 GPUs) split exactly but for the norms every GPU keeps
    # whole; activations almost (row-parallel outputs stay whole): within 0.02 % of half.
    assert two.decode_bytes_per_token == pytest.approx(one.decode_bytes_per_token / 2, rel=2e-4)
    assert two.decode_flops_per_token == pytest.approx(one.decode_flops_per_token / 2)
    assert two.decode_speed_of_light_tokens_per_second == pytest.approx(
        2 * one.decode_speed_of_light_tokens_per_second, rel=2e-4
    )
    # The engine's token rate applies to each GPU unchanged, so the SOL ratio halves.
    assert one.decode_speed_of_light_ratio is not None
    assert two.decode_speed_of_light_ratio == pytest.approx(
        one.decode_speed_of_light_ratio / 2, rel=2e-4
    )


DENSE_8B = dense_model(8e9)
"""Napkin model: 8e9 BF16 weights = 16e9 B read per step, 2 x 8e9 = 16e9 FLOP per token."""


@pytest.mark.parametrize(
    ("batch", "tp", "bytes_per_token", "sol_tokens_per_second"),
    [
        # 16e9 B / 1 token; SOL = 3.35e12 / 16e9 = 209.375 tok/s.
        (1, 1, 16e9, 209.375),
        # TP 2: 8e9 B per GPU; SOL 418.75.
        (1, 2, 8e9, 418.75),
        # Batch 8 shares the weights: 2e9 B per token; step 16e9 B -> 8 x 209.375 = 1675 tok/s.
        (8, 1, 2e9, 1675.0),
        # Batch 400 is past the ridge (AI 400 > 295.3): compute-bound,
        # SOL = 989.4e12 / 16e9 FLOP per token = 61,837.5 tok/s.
        (400, 1, 16e9 / 400, 61_837.5),
    ],
)
def test_dense_model_exact(
    batch: int, tp: int, bytes_per_token: float, sol_tokens_per_second: float
) -> None:
    point = operating_point(live(DENSE_8B, batch=batch, tp=tp, decode=100.0))
    assert point.decode_bytes_per_token == pytest.approx(bytes_per_token)
    assert point.decode_flops_per_token == pytest.approx(16e9 / tp)
    assert point.decode_arithmetic_intensity == pytest.approx(batch)
    assert point.decode_speed_of_light_tokens_per_second == pytest.approx(sol_tokens_per_second)
    assert point.decode_speed_of_light_ratio == pytest.approx(100.0 / sol_tokens_per_second)
    assert point.decode_bound == ("compute" if batch > 295.34 else "memory")


def test_dense_crossover_batch_is_first_batch_past_the_ridge() -> None:
    # AI = batch for the dense model; compute-bound once batch > 295.34: batch 296.
    assert operating_point(live(DENSE_8B)).crossover_batch == 296


def test_dense_prefill_ratio_and_mfu() -> None:
    # Prefill 5000 tok/s x 16e9 FLOP = 8e13 FLOP/s = 8.0857 % of 989.4e12.
    # Decode 200 tok/s x 16e9 = 3.2e12 FLOP/s. MFU = (8e13 + 3.2e12) / 989.4e12 = 0.084091.
    point = operating_point(live(DENSE_8B, decode=200.0, prefill=5000.0))
    assert point.prefill_achieved_flops_per_second == pytest.approx(8e13)
    assert point.prefill_speed_of_light_ratio == pytest.approx(8e13 / 989.4e12)
    assert point.model_flops_utilization_ratio == pytest.approx(8.32e13 / 989.4e12)
    # Prefill intensity of a 2048-token chunk: 2048 x 16e9 FLOP over 16e9 B = 2048 FLOP/B.
    assert point.prefill_arithmetic_intensity == pytest.approx(PREFILL_CHUNK_TOKENS)


@pytest.mark.parametrize("batch", [None, 0, 0.4])
def test_unknown_or_empty_batch_is_taken_as_one(batch: float | None) -> None:
    assert operating_point(live(DENSE_8B, batch=batch)).batch == 1


def test_fractional_batch_rounds() -> None:
    assert operating_point(live(DENSE_8B, batch=7.6)).batch == 8


def test_no_decode_rate_leaves_rate_figures_undefined() -> None:
    point = operating_point(live(DENSE_8B, decode=None, prefill=None, dram=1e12))
    assert point.decode_speed_of_light_ratio is None
    assert point.model_bandwidth_utilization_ratio is None
    assert point.model_flops_utilization_ratio is None
    assert point.decode_observed_bytes_per_token is None
    assert point.decode_observed_arithmetic_intensity is None
    # The model's own figures do not depend on rates.
    assert point.decode_speed_of_light_tokens_per_second == pytest.approx(209.375)


def test_zero_decode_rate_is_zero_mbu_and_no_ratio() -> None:
    point = operating_point(live(DENSE_8B, decode=0.0, dram=1e12))
    assert point.model_bandwidth_utilization_ratio == 0.0
    assert point.decode_speed_of_light_ratio is None
    assert point.decode_observed_bytes_per_token is None  # undefined per token with no tokens


def test_long_context_never_crosses_the_ridge() -> None:
    # At 128k context each sequence's KV read (131,072 B x 131,072 tokens = 17.2 GB) dwarfs its
    # FLOPs share: per-sequence intensity tends to ~2 FLOP/B, never 295.
    point = operating_point(live(context=131_072))
    assert point.crossover_batch is None
