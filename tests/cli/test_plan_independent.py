"""``rooftop plan --json`` against an independent first-principles calculation (issue 11).

The calculation below is written from the HF configs and the hardware datasheets alone, without
rooftop's model code: per-GPU weight bytes matrix by matrix (split ``/ tp``, replicated parts
whole), KV read, activations (each matmul reads its 16-bit input and writes its output), FLOPs
and the TP collectives. Norms are left out (under 0.01 %). Agreement must be within 2 % on one
GPU and 3 % under TP.

Config constants (HF ``config.json`` of each model; research/roofline-anchors.md §4 table):

- Llama-3.1-8B: d 4096, 32 layers, 32 q / 8 KV heads of 128, MLP 14336, vocab 128256, untied.
- Llama-3.1-70B: d 8192, 80 layers, 64 q / 8 KV heads of 128, MLP 28672, vocab 128256.
- Mixtral-8x7B: d 4096, 32 layers, 32 q / 8 KV of 128, 8 experts top-2 of width 14336,
  vocab 32000.
- Qwen3-30B-A3B: d 2048, 48 layers, 32 q / 4 KV of 128, 128 experts top-8 of width 768,
  vocab 151936 (at TP 8 each GPU keeps one whole KV head: 4 < 8).
- DeepSeek-V3: d 7168, 61 layers (3 dense of width 18432, 58 MoE), 128 heads, q_lora 1536,
  kv_lora 512, nope 128, rope 64, v 128, 256 routed experts top-8 + 1 shared of width 2048,
  vocab 129280, FP8 weights (128 x 128 blocks), BF16 router and LM head.

Hardware: H100 SXM 989.4 TFLOP/s BF16, 1979 FP8 dense, 3.35 TB/s; H200 989/1979, 4.8 TB/s
(research/roofline-anchors.md §1.2). NVLink 4: 450 GB/s per direction per GPU (scaling book,
gpus.md); NCCL ring/LL latency 3.6 us + 0.47 us per hop, 2 (n - 1) hops per all-reduce
(NVIDIA/nccl src/graph/tuning.cc). Bytes per weight: BF16 2, FP8 1 (+ one fp32 scale per
128 x 128 block), AWQ INT4 g128 0.5 + (2 + 0.5) / 128 (fp16 scale and 4-bit zero per group).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest

from rooftop.exporter.cli import main

BPW = {"bf16": 2.0, "fp8": 1.0 + 4.0 / (128 * 128), "int4-awq": 0.5 + 2.5 / 128}
KV_B = {"bf16": 2.0, "fp8": 1.0}
GPUS = {
    "h100-sxm": {"bf16": 989.4e12, "fp8": 1979e12, "bw": 3.35e12},
    "h200": {"bf16": 989e12, "fp8": 1979e12, "bw": 4.8e12},
}
NVLINK_BW, BASE_LAT, HOP_LAT = 450e9, 3.6e-6, 0.47e-6


@dataclass(frozen=True)
class Cfg:
    d: int
    layers: int
    n_q: int
    n_kv: int
    h: int
    mlp: int
    vocab: int
    experts: int = 0
    top_k: int = 0
    moe_width: int = 0
    shared: int = 0
    dense_layers: int = 0
    mla: tuple[int, int, int, int, int] | None = None  # q_lora, kv_lora, nope, rope, v


CFGS = {
    "llama-3.1-8b": Cfg(4096, 32, 32, 8, 128, 14336, 128256),
    "llama-3.1-70b": Cfg(8192, 80, 64, 8, 128, 28672, 128256),
    "mixtral-8x7b": Cfg(4096, 32, 32, 8, 128, 0, 32000, 8, 2, 14336),
    "qwen3-30b-a3b": Cfg(2048, 48, 32, 4, 128, 0, 151936, 128, 8, 768),
    "deepseek-v3": Cfg(
        7168, 61, 128, 128, 0, 18432, 129280, 256, 8, 2048, 1, 3, (1536, 512, 128, 64, 128)
    ),
}


def independent(
    name: str, gpu: str, fmt: str, kv: str, batch: int, ctx: int, tp: int
) -> tuple[float, float, float]:
    """(bytes per step, FLOPs per step, step seconds) of one decode step, per GPU."""
    c = CFGS[name]
    w = BPW[fmt]
    tokens = batch
    kv_heads = math.ceil(c.n_kv / tp)
    # --- attention weights (quantized) and per-token-per-layer FLOPs of attention
    if c.mla is None:
        attn_params = c.d * c.n_q * c.h / tp + c.d * 2 * kv_heads * c.h + c.n_q * c.h * c.d / tp
        kv_per_token_layer = 2 * kv_heads * c.h * KV_B[kv]
        attn_flops_per_ctx = 4 * c.n_q * c.h / tp
    else:
        q_lora, kv_lora, nope, rope, v = c.mla
        attn_params = (
            c.d * (q_lora + kv_lora + rope)  # replicated q_a + kv_a
            + q_lora * c.n_q * (nope + rope) / tp
            + kv_lora * c.n_q * (nope + v) / tp
            + c.n_q * v * c.d / tp
        )
        kv_per_token_layer = (kv_lora + rope) * 2 if kv == "bf16" else kv_lora + 16 + 2 * rope
        attn_flops_per_ctx = (2 * c.n_q * (kv_lora + rope) + 2 * c.n_q * kv_lora) / tp
    # --- MLP weights
    moe_layers = c.layers - c.dense_layers if c.experts else 0
    dense_layers = c.layers - moe_layers
    dense_mlp = 3 * c.d * c.mlp / tp
    expert = 3 * c.d * c.moe_width / tp
    distinct = c.experts * (1 - (1 - c.top_k / c.experts) ** tokens) if c.experts else 0
    quantized = (
        c.layers * attn_params
        + dense_layers * dense_mlp
        + moe_layers * (distinct + c.shared) * expert
    )
    router = moe_layers * c.d * c.experts * 2.0  # BF16, replicated
    head = c.vocab * c.d * 2.0 / tp  # BF16 LM head, vocab-split
    embedding_rows = tokens * c.d * 2.0 / tp
    weights = quantized * w + router + head + embedding_rows
    kv_read = batch * ctx * c.layers * kv_per_token_layer
    kv_write = tokens * c.layers * kv_per_token_layer
    # activations, elements per token: column-parallel layers read d and write out / tp,
    # row-parallel ones read in / tp and write d (the reduced output)
    if c.mla is None:
        attn_act = (c.d + (c.n_q / tp + 2 * kv_heads) * c.h) + (c.n_q * c.h / tp + c.d)
    else:
        q_lora, kv_lora, nope, rope, v = c.mla
        attn_act = (
            (c.d + q_lora + kv_lora + rope)
            + (q_lora + c.n_q * (nope + rope) / tp)
            + (kv_lora + c.n_q * (nope + v) / tp)
            + (c.n_q * v / tp + c.d)
        )

    def mlp_act(width: int) -> float:
        return (c.d + 2 * width / tp) + (width / tp + c.d)

    act = c.layers * attn_act + dense_layers * mlp_act(c.mlp)
    act += moe_layers * ((c.top_k + c.shared) * mlp_act(c.moe_width) + c.d + c.experts)
    act += c.d + c.vocab / tp + c.d  # LM head in/out, embedding row out
    total_bytes = weights + kv_read + kv_write + tokens * act * 2
    # --- FLOPs: 2 per active weight per token (replicated matmuls whole), attention over ctx
    active = (
        c.layers * attn_params
        + dense_layers * dense_mlp
        + moe_layers * ((c.top_k + c.shared) * expert + c.d * c.experts)
        + c.vocab * c.d / tp
    )
    attention = tokens * c.layers * ctx * attn_flops_per_ctx
    flops = tokens * 2 * active + attention
    # --- time
    peaks = GPUS[gpu]
    gemm_peak = peaks["fp8"] if fmt == "fp8" else peaks["bf16"]
    compute = (flops - attention) / gemm_peak + attention / peaks["bf16"]
    memory = total_bytes / peaks["bw"]
    comm = 0.0
    if tp > 1:
        message = tokens * c.d * 2
        one = BASE_LAT + 2 * (tp - 1) * HOP_LAT + 2 * (tp - 1) / tp * message / NVLINK_BW
        comm = (2 * c.layers + 1) * one
    return total_bytes, flops, max(compute, memory) + comm


CASES = [
    # (model, gpu, weights, kv dtype, tp)
    ("llama-3.1-8b", "h100-sxm", "bf16", "bf16", 1),
    ("llama-3.1-8b", "h100-sxm", "bf16", "bf16", 2),
    ("llama-3.1-8b", "h100-sxm", "int4-awq", "bf16", 1),
    ("llama-3.1-8b", "h100-sxm", "int4-awq", "bf16", 4),
    ("llama-3.1-70b", "h100-sxm", "fp8", "fp8", 1),
    ("llama-3.1-70b", "h100-sxm", "fp8", "fp8", 8),
    ("mixtral-8x7b", "h100-sxm", "bf16", "bf16", 1),
    ("mixtral-8x7b", "h100-sxm", "bf16", "bf16", 8),
    ("qwen3-30b-a3b", "h200", "bf16", "bf16", 1),
    ("qwen3-30b-a3b", "h200", "bf16", "bf16", 8),
    ("deepseek-v3", "h200", "fp8", "bf16", 1),
    ("deepseek-v3", "h200", "fp8", "bf16", 8),
]


@pytest.mark.parametrize(("model", "gpu", "fmt", "kv", "tp"), CASES)
def test_plan_json_agrees_with_first_principles(
    capsys: pytest.CaptureFixture[str], model: str, gpu: str, fmt: str, kv: str, tp: int
) -> None:
    argv = ["plan", "--gpu", gpu, "--model", model, "--weights", fmt, "--kv-dtype", kv]
    argv += ["--tp", str(tp), "--batch", "1,16,64", "--context", "4096", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    tolerance = 0.02 if tp == 1 else 0.03
    for point in data["points"]:
        want_bytes, want_flops, want_seconds = independent(
            model, gpu, fmt, kv, point["batch"], 4096, tp
        )
        assert point["bytes_per_step"] == pytest.approx(want_bytes, rel=tolerance)
        assert point["flops_per_step"] == pytest.approx(want_flops, rel=tolerance)
        assert point["step_seconds"] == pytest.approx(want_seconds, rel=tolerance)
        assert point["speed_of_light_tokens_per_second"] == pytest.approx(
            point["batch"] / want_seconds, rel=tolerance
        )
