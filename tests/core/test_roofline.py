"""Roofline maths: ridge point, decode/prefill step cost, crossover batch, MBU/MFU.

H100 SXM dense BF16: 989.4e12 FLOP/s (research §0: never the 1,979 "with sparsity" figure),
3.35e12 B/s; the ridge point 989.4/3.35 = 295.34 FLOP/byte.
"""

from __future__ import annotations

import pytest

from rooftop.classifiers.model_catalog import lookup_model
from rooftop.classifiers.models import (
    activation_bytes_per_token,
    kv_bytes_per_token,
    linear_parameters_per_token,
    weight_bytes_per_step,
)
from rooftop.classifiers.roofline import (
    COMPUTE_DTYPE,
    CROSSOVER_SEARCH_LIMIT,
    DenseModel,
    Roof,
    RooflineInputError,
    crossover_batch,
    decode_step,
    dense_model,
    model_bandwidth_utilization,
    model_flops_utilization,
    prefill_chunk,
)

H100 = Roof(989.4e12, 3.35e12)
MUST_SHOW = Roof(989e12, 3.35e12)


def test_ridge_point() -> None:
    assert H100.ridge_point_flops_per_byte == pytest.approx(295.343, rel=1e-5)
    # A100-80 SXM: 312e12 / 2.039e12 = 153.0
    assert Roof(312e12, 2.039e12).ridge_point_flops_per_byte == pytest.approx(153.02, rel=1e-4)


def test_napkin_8b_bf16_batch_1_must_show() -> None:
    # 8e9 params * 2 bytes = 16e9 bytes; 16e9 / 3.35e12 = 4.776 ms; 1 / 4.776 ms = 209.4 tok/s.
    # Compute: 2 * 8e9 = 16e9 FLOP / 989e12 = 0.0162 ms, so memory-bound.
    step = decode_step(dense_model(8e9), MUST_SHOW, batch=1, context_tokens=4096)
    assert step.bytes == 16e9
    assert step.flops == 16e9
    assert step.step_seconds == pytest.approx(4.78e-3, rel=0.01)
    assert step.speed_of_light_tokens_per_second == pytest.approx(209, rel=0.01)
    assert step.arithmetic_intensity_flops_per_byte == 1.0
    assert step.bound == "memory"


@pytest.mark.parametrize(
    ("weights", "bytes_per_param"),
    [
        ("bf16", 2.0),
        ("fp8", 1.0 + 4 / 4096),  # + per-channel fp32 scale on a 4096-wide matrix
        ("int4-awq", (4 + 16 / 128 + 4 / 128) / 8),
        ("mxfp4", 4.25 / 8),
    ],
)
def test_napkin_weight_formats(weights: str, bytes_per_param: float) -> None:
    model = dense_model(8e9, weights)  # type: ignore[arg-type]
    assert model.weight_bytes == pytest.approx(8e9 * bytes_per_param, rel=1e-9)
    step = decode_step(model, MUST_SHOW, 1, 0)
    assert step.step_seconds == pytest.approx(8e9 * bytes_per_param / 3.35e12, rel=1e-9)


@pytest.mark.parametrize("batch", [1, 2, 4, 8, 16])
def test_decode_intensity_is_about_batch_at_bf16(batch: int) -> None:
    # napkin: 2*P*B FLOPs over 2*P bytes = B exactly
    napkin = decode_step(dense_model(8e9), H100, batch, 0)
    assert napkin.arithmetic_intensity_flops_per_byte == pytest.approx(batch)
    # Llama-3.1-8B at ctx 128: KV (16.8 MB) and activations (4.7 MB) per sequence add <3 % of
    # bytes up to B=16 (at B=64, 9 %: "AI ≈ B" holds for small B only)
    real = decode_step(lookup_model("llama-3.1-8b"), H100, batch, 128)
    assert real.arithmetic_intensity_flops_per_byte == pytest.approx(batch, rel=0.06)


def test_llama_8b_decode_step_by_hand() -> None:
    arch = lookup_model("llama-3.1-8b")
    step = decode_step(arch, H100, batch=4, context_tokens=4096)
    weights = weight_bytes_per_step(arch, "bf16", 4)
    # KV read: 4 seqs * 4096 tokens * 131,072 B; KV write: 4 new tokens * 131,072 B
    assert step.kv_read_bytes == 4 * 4096 * 131_072
    assert step.kv_write_bytes == 4 * 131_072
    assert step.activation_bytes == 4 * activation_bytes_per_token(arch)
    assert step.bytes == weights + 4 * 4097 * 131_072 + step.activation_bytes
    # FLOPs: 4 * (2 * 7,504,658,432 + 4*32*128*4096*32)
    assert step.flops == 4 * (2 * 7_504_658_432 + 2_147_483_648)
    assert step.memory_seconds == pytest.approx(step.bytes / 3.35e12)
    assert step.compute_seconds == pytest.approx(step.flops / 989.4e12)
    assert step.step_seconds == step.memory_seconds
    assert step.speed_of_light_tokens_per_second == pytest.approx(4 / step.memory_seconds)


def test_llama_8b_batch_1_sol_matches_research() -> None:
    # research §4: 15.01 GB streamed + KV at ctx 1024, H100 SXM -> 221 tok/s
    step = decode_step(lookup_model("llama-3.1-8b"), H100, 1, 1024)
    assert step.speed_of_light_tokens_per_second == pytest.approx(221, rel=0.01)


def test_napkin_crossover_is_the_ridge() -> None:
    # AI = B exactly, so the first compute-bound batch is the first integer above 295.34
    assert crossover_batch(dense_model(8e9), H100, 0) == 296
    # W8A8 FP8 on the FP8 roof: 1-byte weights give AI ~ 2B against a ridge of
    # 1979/3.35 = 590.7, so B_crit ~ 296 again (the scaling book's int8/int8 point)
    fp8 = Roof(1979e12, 3.35e12)
    assert crossover_batch(dense_model(8e9, "fp8"), fp8, 0) == pytest.approx(296, abs=1)
    # W4A16 on the BF16 roof: 4.156-bit weights -> B_crit ~ 295.34 * 4.156 / 16 = 76.7
    assert crossover_batch(dense_model(8e9, "int4-awq"), H100, 0) == 77


def test_llama_8b_crossover_near_ridge_at_short_context() -> None:
    arch = lookup_model("llama-3.1-8b")
    crossover = crossover_batch(arch, H100, 16)
    # activations (4.7 MB/token) and KV push it a little above the ridge (295)
    assert crossover is not None
    assert 296 <= crossover <= 1.2 * 295.34
    step = decode_step(arch, H100, crossover, 16)
    before = decode_step(arch, H100, crossover - 1, 16)
    assert step.bound == "compute" and before.bound == "memory"


@pytest.mark.parametrize("context", [512, 4096, 32_768, 131_072])
def test_llama_8b_never_compute_bound_at_long_context(context: int) -> None:
    # per sequence: FLOPs ~ 15e9 + 16,384*ctx*32; bytes ~ 131,072*ctx. At ctx 512 the limit
    # AI is 15.3e9 / 72e6 = 212 < 295: decode never reaches the compute roof.
    assert crossover_batch(lookup_model("llama-3.1-8b"), H100, context) is None
    huge = decode_step(lookup_model("llama-3.1-8b"), H100, CROSSOVER_SEARCH_LIMIT, context)
    assert huge.bound == "memory"


def test_moe_decode_reads_expected_experts() -> None:
    arch = lookup_model("mixtral-8x7b")
    one = decode_step(arch, H100, 1, 0)
    eight = decode_step(arch, H100, 8, 0)
    # research §3.3: 25.5 GB at T=1, 84.1 GB at T=8 (7.2 of 8 experts per layer)
    assert one.weight_bytes / 1e9 == pytest.approx(25.5, rel=0.005)
    assert eight.weight_bytes / 1e9 == pytest.approx(84.1, rel=0.005)
    # FLOPs per token still use top-2 only
    assert eight.flops == pytest.approx(8 * one.flops)


def test_deepseek_mla_decode_kv_read() -> None:
    """DeepSeek-V3 FP8 (HF config: d 7168, 61 layers, 58 MoE layers, q_lora 1536, kv_lora 512,
    rope 64, 256 experts, 128x128 FP8 blocks) at TP 8: every GPU keeps whole what vLLM
    replicates (``ReplicatedLinear``):

    - fused q_a + kv_a, 7168 -> 1536 + 576 = 2112, FP8 + one fp32 scale per 128x128 block:
      (7168 x 2112 + 4 x 17 x 56) x 61 = 923,700,064 bytes
    - router, BF16 7168 x 256 x 2 x 58 = 212,860,928 bytes (+ its bias 256 x 58 x 2 = 29,696)
    - norms, BF16 (2 x 7168 x 61 + 7168 + (512 + 1536) x 61) x 2 = 2,013,184 bytes

    1,138,603,872 bytes in all, so each GPU reads 7/8 of that, 996,278,388 bytes, more than an
    even 1/8 split."""
    arch = lookup_model("deepseek-v3")
    step = decode_step(arch, Roof(1979e12, 3.35e12), 2, 10_000, kv_dtype="fp8", tp=8)
    # latent replicated on each of 8 GPUs: 2 seqs * 10,000 tokens * 40,016 B
    assert step.kv_read_bytes == 2 * 10_000 * 40_016
    assert step.weight_bytes == pytest.approx(
        weight_bytes_per_step(arch, "fp8", 2) / 8 + 996_278_388
    )


def test_decode_uses_declared_weights_by_default() -> None:
    arch = lookup_model("gpt-oss-120b")
    assert (
        decode_step(arch, H100, 1, 0).weight_bytes
        == decode_step(arch, H100, 1, 0, weights="mxfp4").weight_bytes
    )
    assert decode_step(arch, H100, 1, 0, weights="bf16").weight_bytes > 2 * (
        decode_step(arch, H100, 1, 0).weight_bytes
    )


def test_tp_halves_a_memory_bound_step() -> None:
    one = decode_step(dense_model(70e9), H100, 1, 0)
    two = decode_step(dense_model(70e9), H100, 1, 0, tp=2)
    assert two.step_seconds == pytest.approx(one.step_seconds / 2)


def test_prefill_chunk_llama_8b_by_hand() -> None:
    arch = lookup_model("llama-3.1-8b")
    chunk = prefill_chunk(arch, H100, chunk_tokens=2048)
    # causal: token i attends i tokens; Σ_{i=1}^{2048} i = 2,098,176; 32 layers; 16,384 FLOPs
    # (4*32*128) per attended token-layer
    attention = 16_384 * 32 * 2_098_176
    assert chunk.flops == 2 * linear_parameters_per_token(arch) * 2048 + attention
    assert chunk.kv_write_bytes == 2048 * kv_bytes_per_token(arch, "bf16")
    assert chunk.kv_read_bytes == 0
    # 31.8 TFLOP over 15 GB: AI ~ 2,000 >> ridge
    assert chunk.bound == "compute"
    assert chunk.speed_of_light_tokens_per_second == pytest.approx(2048 / chunk.compute_seconds)


def test_prefill_sliding_windows_cap_attention() -> None:
    arch = lookup_model("gpt-oss-20b")
    chunk = prefill_chunk(arch, H100, chunk_tokens=200, context_tokens=0)
    # 12 sliding layers: Σ min(i,128) = 8,256 + 72*128 = 17,472; 12 full layers: Σ i = 20,100;
    # 4*64*64 = 16,384 FLOPs per attended token-layer
    attention = 16_384 * 12 * (17_472 + 20_100)
    assert chunk.flops == 2 * linear_parameters_per_token(arch) * 200 + attention


def test_prefill_after_cached_context() -> None:
    arch = lookup_model("llama-3.1-8b")
    chunk = prefill_chunk(arch, H100, chunk_tokens=2, context_tokens=10)
    # tokens attend 11 and 12: 23 * 32 layers * 16,384
    assert chunk.flops == 2 * linear_parameters_per_token(arch) * 2 + 23 * 32 * 16_384
    assert chunk.kv_read_bytes == 10 * 131_072


def test_napkin_prefill() -> None:
    chunk = prefill_chunk(dense_model(8e9), H100, 512)
    assert chunk.flops == 2 * 8e9 * 512
    assert chunk.weight_bytes == 16e9


def test_mbu_databricks_example() -> None:
    # "7B parameter ... 16-bit ... TPOT 14ms ... 14GB in 14ms = 1TB/sec ... peak 2TB/sec ... 50%"
    assert model_bandwidth_utilization(14e9, 1 / 0.014, 2e12) == pytest.approx(0.5)


def test_mfu() -> None:
    # 2 * 8e9 FLOPs/token at 30,000 tok/s = 4.8e14 FLOP/s over 989.4e12 = 0.485
    assert model_flops_utilization(16e9, 30_000, 989.4e12) == pytest.approx(0.48514, rel=1e-4)


def test_compute_dtype_for_weight_formats() -> None:
    assert COMPUTE_DTYPE["bf16"] == "bf16"
    assert COMPUTE_DTYPE["fp8"] == "fp8"
    assert COMPUTE_DTYPE["int4-awq"] == "bf16"
    assert COMPUTE_DTYPE["nvfp4"] == "fp4"


@pytest.mark.parametrize(
    "call",
    [
        lambda: Roof(0, 3.35e12),
        lambda: Roof(989e12, -1),
        lambda: Roof(float("nan"), 1),
        lambda: decode_step(dense_model(8e9), H100, 0, 0),
        lambda: decode_step(dense_model(8e9), H100, 1, -1),
        lambda: decode_step(dense_model(8e9), H100, 1, 0, tp=0),
        lambda: prefill_chunk(dense_model(8e9), H100, 0),
        lambda: DenseModel(-5),
        lambda: model_bandwidth_utilization(1, -1, 1),
        lambda: model_flops_utilization(1, 1, 0),
    ],
)
def test_bad_inputs_raise(call: object) -> None:
    with pytest.raises(RooflineInputError):
        call()  # type: ignore[operator]
