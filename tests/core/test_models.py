"""Model architecture maths: parameter counts, weight bytes per step, KV bytes, FLOPs.

Expected values are worked by hand in the comments, or are the published/computed figures of
research/roofline-anchors.md §3-§4 (HF config fields through the §3 formulas).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rooftop.classifiers.model_catalog import (
    MODEL_CATALOG,
    UnknownModelError,
    catalog_models,
    lookup_model,
    resolve_model_id,
)
from rooftop.classifiers.models import (
    WEIGHT_FORMATS,
    ModelArchitecture,
    ModelConfigError,
    activation_bytes_per_token,
    active_parameter_count,
    architecture_from_hf_config,
    attention_flops_per_token,
    effective_bits_per_weight,
    expected_distinct_experts,
    flops_per_token,
    kv_bytes_per_token,
    kv_bytes_read_per_sequence,
    kv_heads_per_gpu,
    linear_parameters_per_token,
    matrix_bytes,
    parameter_count,
    stored_weight_bytes,
    weight_bytes_per_step,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf-configs"
GB = 1e9


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


# --- Llama-3.1-8B worked in full ------------------------------------------------------------
# d=4096, L=32, n_q=32, n_kv=8, h=128, I=14336, V=128256, untied.
# attention/layer: qkv 4096*(4096+2*1024) = 25,165,824 + o 4096*4096 = 16,777,216 -> 41,943,040
# mlp/layer: 3*4096*14336 = 176,160,768; norms/layer 2*4096 = 8,192 -> 218,112,000 per layer
# 32 layers = 6,979,584,000; embedding + LM head 2*128256*4096 = 1,050,673,152; final norm 4,096
LLAMA_8B_PARAMS = 6_979_584_000 + 1_050_673_152 + 4_096  # = 8,030,261,248 (HF reports 8.03 B)
# matmul weights per token: 32*(41,943,040+176,160,768) + LM head 525,336,576 = 7,504,658,432
LLAMA_8B_LINEAR = 32 * (41_943_040 + 176_160_768) + 525_336_576


def test_llama_8b_parameter_count_by_hand() -> None:
    arch = lookup_model("llama-3.1-8b")
    assert parameter_count(arch) == LLAMA_8B_PARAMS == 8_030_261_248
    assert active_parameter_count(arch) == LLAMA_8B_PARAMS
    assert linear_parameters_per_token(arch) == LLAMA_8B_LINEAR


def test_llama_8b_kv_bytes_per_token() -> None:
    # 2 (K,V) * 8 heads * 128 dims * 2 bytes * 32 layers = 131,072 (research §4: 128 KiB)
    arch = lookup_model("meta-llama/Llama-3.1-8B-Instruct")
    assert kv_bytes_per_token(arch, "bf16") == 131_072
    assert kv_bytes_per_token(arch, "fp16") == 131_072
    assert kv_bytes_per_token(arch, "fp8") == 65_536


def test_llama_8b_weight_bytes_per_step_bf16() -> None:
    # every linear weight + LM head at 2 bytes, + norms (32*8192+4096 = 266,240 params) at 2
    # bytes, + one embedding row (4096 * 2 bytes) per token. gpt-fast implies 15.03 GB.
    arch = lookup_model("llama-3.1-8b")
    expected_t1 = 2 * (LLAMA_8B_LINEAR + 266_240) + 4096 * 2
    assert weight_bytes_per_step(arch, "bf16", 1) == expected_t1 == 15_009_857_536
    # a dense model reads the same weights for any batch: only embedding rows are added
    assert weight_bytes_per_step(arch, "bf16", 64) == expected_t1 + 63 * 4096 * 2


@pytest.mark.parametrize(
    ("fmt", "research_gb"),
    [
        # research §3.5 table "Llama-3.1-8B streamed bytes by format, LM head kept BF16"
        ("bf16", 15.0),
        ("fp8", 8.0),
        ("int4-awq", 4.68),
        ("mxfp4", 4.76),
        ("nvfp4", 4.98),
    ],
)
def test_llama_8b_streamed_bytes_by_format(fmt: Any, research_gb: float) -> None:
    arch = lookup_model("llama-3.1-8b")
    assert weight_bytes_per_step(arch, fmt, 1) / GB == pytest.approx(research_gb, rel=0.006)


@pytest.mark.parametrize(
    ("fmt", "bits"),
    [
        ("bf16", 16.0),
        ("fp16", 16.0),
        # 4096x4096: 1 byte each + one fp32 scale per output channel: 8 + 32/4096
        ("fp8", 8 + 32 / 4096),
        ("int8", 8 + 32 / 4096),
        # 4 bits + fp16 scale/128 + packed 4-bit zero/128 (AutoAWQ WQLinear_GEMM)
        ("int4-awq", 4 + 16 / 128 + 4 / 128),
        # as AWQ + int32 g_idx per input row: 32*4096 bits over 4096*4096 weights
        ("int4-gptq", 4 + 16 / 128 + 4 / 128 + 32 / 4096),
        ("mxfp4", 4 + 8 / 32),
        # E4M3 scale per 16 + two fp32 global scales per tensor (64 bits over 16.8 M weights)
        ("nvfp4", 4 + 8 / 16 + 64 / 4096**2),
    ],
)
def test_effective_bits_per_weight(fmt: Any, bits: float) -> None:
    assert effective_bits_per_weight(fmt) == pytest.approx(bits, rel=1e-12)


def test_fp8_block_scales() -> None:
    # DeepSeek 128x128 blocks: 7168x2048 -> 56*16 = 896 blocks * 4 bytes
    assert matrix_bytes(7168, 2048, "fp8", block_size=(128, 128)) == 7168 * 2048 + 896 * 4


def test_unknown_weight_format_is_rejected() -> None:
    with pytest.raises(ModelConfigError, match="unknown weight format"):
        matrix_bytes(16, 16, "int3")  # type: ignore[arg-type]


# --- the catalog against research §4 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "params_b", "active_b", "kv_bf16"),
    [
        ("llama-3.2-1b", 1.236, 1.236, 32_768),
        ("llama-3.2-3b", 3.213, 3.213, 114_688),
        ("llama-3.1-8b", 8.030, 8.030, 131_072),
        ("llama-3.1-70b", 70.55, 70.55, 327_680),
        ("llama-3.3-70b", 70.55, 70.55, 327_680),
        ("llama-3.1-405b", 405.85, 405.85, 516_096),
        ("mistral-7b", 7.242, 7.242, 131_072),
        ("mixtral-8x7b", 46.70, 12.88, 131_072),
        ("qwen2.5-7b", 7.616, 7.616, 57_344),
        ("qwen2.5-72b", 72.71, 72.71, 327_680),
        ("qwen3-8b", 8.191, 8.191, 147_456),
        ("qwen3-32b", 32.76, 32.76, 262_144),
        ("qwen3-30b-a3b", 30.53, 3.35, 98_304),
        ("qwen3-235b-a22b", 235.1, 22.2, 192_512),
        ("gemma-2-9b", 9.242, 9.242, 344_064),
        ("phi-3-mini", 3.821, 3.821, 393_216),
        ("deepseek-v3", 671.0, 37.6, 70_272),
        ("gpt-oss-20b", 20.91, 4.19, 49_152),
        ("gpt-oss-120b", 116.83, 5.71, 73_728),
    ],
)
def test_catalog_matches_research(
    model_id: str, params_b: float, active_b: float, kv_bf16: int
) -> None:
    arch = lookup_model(model_id)
    assert parameter_count(arch) / GB == pytest.approx(params_b, rel=2e-3)
    assert active_parameter_count(arch) / GB == pytest.approx(active_b, rel=3e-3)
    assert kv_bytes_per_token(arch, "bf16") == kv_bf16


def test_gemma_3_27b_language_model() -> None:
    # 62 layers * (attention 5376*(32+2*16)*128 + 32*128*5376 = 66,060,288
    #  + mlp 3*5376*21504 = 346,816,512 + 4 norms 21,504 + q/k norm 256) + tied 262208*5376
    #  + final norm 5376
    per_layer = 66_060_288 + 346_816_512 + 4 * 5376 + 2 * 128
    expected = 62 * per_layer + 262_208 * 5376 + 5376
    arch = lookup_model("google/gemma-3-27b-it")
    assert parameter_count(arch) == expected
    # KV: 2*16*128*2 bytes = 8192 per layer * 62
    assert kv_bytes_per_token(arch, "bf16") == 8192 * 62


def test_gpt_oss_active_excluding_input_embedding_matches_openai() -> None:
    # OpenAI quotes 3.6 B / 5.1 B active: ours minus the input embedding (201088*2880)
    for model_id, openai_b in (("gpt-oss-20b", 3.61), ("gpt-oss-120b", 5.13)):
        arch = lookup_model(model_id)
        active = active_parameter_count(arch) - 201_088 * 2880
        assert active / GB == pytest.approx(openai_b, rel=3e-3)


@pytest.mark.parametrize(
    ("model_id", "t1", "t8", "t32", "t128", "rel"),
    [
        # research §3.3 "Weight bytes per step (computed)", GB
        ("mixtral-8x7b", 25.5, 84.1, 93.1, 93.1, 0.005),
        ("qwen3-30b-a3b", 6.1, 25.8, 53.1, 60.4, 0.005),
        ("gpt-oss-20b", 3.7, 9.1, 12.5, 12.6, 0.005),
        ("gpt-oss-120b", 5.0, 16.8, 42.0, 63.0, 0.005),
        # research counts 1 byte/param everywhere; we keep LM head, router, norms in BF16
        # (+0.93 GB of LM head) and add fp32 block scales: up to 3 % more.
        ("deepseek-v3", 36.6, 163.0, 433.0, 659.0, 0.03),
    ],
)
def test_moe_weight_bytes_per_step(
    model_id: str, t1: float, t8: float, t32: float, t128: float, rel: float
) -> None:
    arch = lookup_model(model_id)
    fmt = arch.default_weight_format
    for tokens, gb in ((1, t1), (8, t8), (32, t32), (128, t128)):
        got = weight_bytes_per_step(arch, fmt, tokens) / GB
        assert got == pytest.approx(gb, rel=rel), tokens


@pytest.mark.parametrize(
    ("experts", "k", "tokens", "expected"),
    [
        (8, 2, 1, 2.0),
        # 8 * (1 - 0.75**2) = 8 * 0.4375
        (8, 2, 2, 3.5),
        # 8 * (1 - 0.75**8) = 8 * (1 - 0.100112915) = 7.1991
        (8, 2, 8, 7.19909668),
        # 128 * (1 - (15/16)**8) = 128 * (1 - 0.596719) = 51.6199
        (128, 8, 8, 51.6199),
        # 256 * (1 - (31/32)**16) = 256 * (1 - 0.601710) = 101.962
        (256, 8, 16, 101.962),
        # 32 * (1 - (7/8)**4) = 32 * (1 - 0.586182) = 13.242
        (32, 4, 4, 13.2422),
        (32, 4, 0, 0.0),
    ],
)
def test_expected_distinct_experts(experts: int, k: int, tokens: int, expected: float) -> None:
    assert expected_distinct_experts(experts, k, tokens) == pytest.approx(expected, rel=1e-5)


def test_expected_distinct_experts_never_exceeds_bounds() -> None:
    for tokens in range(1, 300):
        got = expected_distinct_experts(256, 8, tokens)
        assert got <= min(tokens * 8, 256) + 1e-9


def test_expected_distinct_experts_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        expected_distinct_experts(8, 9, 1)
    with pytest.raises(ValueError):
        expected_distinct_experts(8, 2, -1)


# --- KV: MLA, sliding windows, TP ------------------------------------------------------------


def test_deepseek_v3_mla_kv_bytes() -> None:
    arch = lookup_model("deepseek-ai/DeepSeek-V3")
    # one latent of kv_lora_rank + rope = 512 + 64 = 576 elements * 2 bytes * 61 layers
    assert kv_bytes_per_token(arch, "bf16") == 576 * 2 * 61 == 70_272
    # vLLM packed FP8: 512 e4m3 + 4 fp32 scales + 64 bf16 rope = 656 bytes/layer
    assert kv_bytes_per_token(arch, "fp8") == 656 * 61 == 40_016
    # the latent has no head axis: replicated on every TP rank
    assert kv_bytes_per_token(arch, "bf16", tp=8) == 70_272


@pytest.mark.parametrize(
    ("model_id", "context", "expected"),
    [
        # gemma-2-9b: 21 global layers read 8192, 21 local layers cap at 4096;
        # per layer per token 2*8*256*2 = 8192 bytes
        ("gemma-2-9b", 8192, (21 * 8192 + 21 * 4096) * 8192),
        ("gemma-2-9b", 1000, 42 * 1000 * 8192),
        # gpt-oss-20b: 12 full layers read 1000, 12 sliding layers read 128; 2*8*64*2 = 2048
        ("gpt-oss-20b", 1000, (12 * 1000 + 12 * 128) * 2048),
        # mistral-7b v0.1: every layer windowed at 4096; 2*8*128*2 = 4096 bytes/layer
        ("mistral-7b", 10_000, 32 * 4096 * 4096),
        ("llama-3.1-8b", 10_000, 10_000 * 131_072),
    ],
)
def test_kv_bytes_read_honours_sliding_windows(model_id: str, context: int, expected: int) -> None:
    assert kv_bytes_read_per_sequence(lookup_model(model_id), "bf16", context) == expected


@pytest.mark.parametrize(
    ("tp", "heads", "kv_bytes"),
    [
        # llama-3.1-70b, 8 KV heads, 80 layers: 2*h*2 bytes*80 = 40,960 per head
        (1, 8, 8 * 40_960),
        (2, 4, 4 * 40_960),
        (8, 1, 40_960),
        # tp > n_kv: each GPU still holds one whole head (replicated)
        (16, 1, 40_960),
    ],
)
def test_tp_splits_kv_heads_and_replicates_below_one(tp: int, heads: int, kv_bytes: int) -> None:
    arch = lookup_model("llama-3.1-70b")
    assert kv_heads_per_gpu(arch, tp) == heads
    assert kv_bytes_per_token(arch, "bf16", tp) == kv_bytes


def test_tp_divides_weights_and_flops() -> None:
    """Llama-3.1-70B at TP 4 (8 KV heads >= 4 GPUs, no replicated matmul): everything splits
    evenly except the norms, which every GPU keeps whole: (2 per layer x 80 + final) x 8192
    = 1,318,912 BF16 weights = 2,637,824 bytes, of which each GPU holds 3/4 more than an even
    split: 1,978,368 bytes."""
    arch = lookup_model("llama-3.1-70b")
    assert weight_bytes_per_step(arch, "bf16", 1, tp=4) == pytest.approx(
        weight_bytes_per_step(arch, "bf16", 1) / 4 + 1_978_368
    )
    assert flops_per_token(arch, 4096, tp=4) == pytest.approx(flops_per_token(arch, 4096) / 4)
    # 2 bytes per parameter, over 2 GPUs: one byte per parameter each (+ half the norms)
    assert stored_weight_bytes(arch, "bf16", tp=2) == pytest.approx(
        parameter_count(arch) + 2_637_824 / 2
    )


# --- FLOPs -----------------------------------------------------------------------------------


def test_llama_8b_flops_per_token() -> None:
    arch = lookup_model("llama-3.1-8b")
    # 2 * linear params + 4 * n_q * h * ctx * L = 4*32*128*4096*32 = 2,147,483,648
    assert attention_flops_per_token(arch, 4096) == 2_147_483_648
    assert flops_per_token(arch, 4096) == 2 * LLAMA_8B_LINEAR + 2_147_483_648
    assert flops_per_token(arch, 0) == 2 * LLAMA_8B_LINEAR


def test_mla_attention_flops_absorbed_and_not() -> None:
    arch = lookup_model("deepseek-v3")
    # absorbed: 2*128*(512+64) + 2*128*512 = 278,528 per token per layer
    assert attention_flops_per_token(arch, 1000) == 278_528 * 1000 * 61
    # non-absorbed: 2*128*192 + 2*128*128 = 81,920
    assert attention_flops_per_token(arch, 1000, mla_absorbed=False) == 81_920 * 1000 * 61


def test_moe_flops_use_top_k_experts() -> None:
    arch = lookup_model("mixtral-8x7b")
    # per layer: attention 4096*6144 + 4096*4096 = 41,943,040; 2 experts * 3*4096*14336
    # = 352,321,536; router 4096*8 = 32,768; 32 layers, + LM head 32000*4096
    expected = 32 * (41_943_040 + 352_321_536 + 32_768) + 32000 * 4096
    assert linear_parameters_per_token(arch) == expected


def test_activation_bytes_per_token_llama_8b() -> None:
    # per layer: qkv in 4096 + out 6144, o 4096+4096, gate_up 4096+28672, down 14336+4096
    # = 69,632 elements; 32 layers + LM head 4096+128256 + embedding row 4096; 2 bytes each
    expected = 2 * (32 * 69_632 + 4096 + 128_256 + 4096)
    assert activation_bytes_per_token(lookup_model("llama-3.1-8b")) == expected


# --- config parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "model_id"),
    [
        ("llama-3.1-8b-instruct.json", "llama-3.1-8b"),
        ("deepseek-v3.json", "deepseek-v3"),
        ("gpt-oss-20b.json", "gpt-oss-20b"),
        ("gemma-3-27b-it.json", "gemma-3-27b"),
        ("gemma-2-9b-it.json", "gemma-2-9b"),
        ("qwen3-30b-a3b.json", "qwen3-30b-a3b"),
        ("mixtral-8x7b-instruct-v0.1.json", "mixtral-8x7b"),
        ("qwen2.5-7b-instruct.json", "qwen2.5-7b"),
        ("phi-3-mini-4k-instruct.json", "phi-3-mini"),
    ],
)
def test_full_hf_configs_parse_like_the_catalog(fixture: str, model_id: str) -> None:
    parsed = architecture_from_hf_config(load_fixture(fixture), model_id)
    built_in = dataclasses.replace(lookup_model(model_id), source="")
    assert parsed == built_in


def test_parsed_details() -> None:
    gemma3 = architecture_from_hf_config(load_fixture("gemma-3-27b-it.json"), "g")
    assert gemma3.model_type == "gemma3_text"
    assert gemma3.vocab_size == 262_208 and gemma3.tie_word_embeddings
    # 5 local : 1 global, layers 5, 11, ..., 59 global
    assert [i for i, w in enumerate(gemma3.layer_windows) if w is None] == list(range(5, 62, 6))
    assert set(gemma3.layer_windows) == {1024, None}

    ds = architecture_from_hf_config(load_fixture("deepseek-v3.json"), "ds")
    assert ds.moe is not None and ds.moe.dense_layers == (0, 1, 2)
    assert ds.mla is not None and ds.mla.kv_lora_rank == 512
    assert ds.quantization is not None and ds.quantization.weight_block_size == (128, 128)
    assert ds.default_weight_format == "fp8"

    oss = architecture_from_hf_config(load_fixture("gpt-oss-20b.json"), "oss")
    assert oss.default_weight_format == "mxfp4"
    assert oss.quantization is not None and not oss.quantization.attention_quantized
    assert oss.layer_windows[:2] == (128, None)

    qwen = architecture_from_hf_config(load_fixture("qwen2.5-7b-instruct.json"), "q")
    assert qwen.qkv_bias and set(qwen.layer_windows) == {None}  # use_sliding_window false


def test_gpt_oss_mxfp4_covers_experts_only() -> None:
    arch = lookup_model("gpt-oss-20b")
    mxfp4 = weight_bytes_per_step(arch, "mxfp4", 1)
    bf16 = weight_bytes_per_step(arch, "bf16", 1)
    # attention (bf16 in both) is 24 * (2880*(4096+1024) + 4096*2880) = 636,764,160 params
    attention_bytes = 2 * 24 * (2880 * 5120 + 4096 * 2880)
    assert mxfp4 > attention_bytes
    # experts are ~4.25/16 of their bf16 size; the rest is unchanged
    assert bf16 - mxfp4 > 0.5 * (bf16 - attention_bytes - 2 * 2 * 201_088 * 2880)


@pytest.mark.parametrize(
    ("quantization_config", "fmt"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4-awq"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "int4-gptq"),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128}, None),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8"),
        ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "nvfp4"),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"}}},
                "ignore": ["lm_head"],
            },
            "fp8",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int"}}},
            },
            "int8",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "group_0": {"weights": {"num_bits": 4, "type": "float", "group_size": 16}}
                },
            },
            "nvfp4",
        ),
        ({"quant_method": "bitsandbytes"}, None),
    ],
)
def test_declared_quantization(quantization_config: dict[str, Any], fmt: str | None) -> None:
    arch = architecture_from_hf_config(_llama_cfg(quantization_config=quantization_config), "q")
    assert arch.declared_weight_format == fmt
    assert arch.default_weight_format == (fmt or "bf16")


def _llama_cfg(**overrides: Any) -> dict[str, Any]:
    cfg = load_fixture("llama-3.1-8b-instruct.json")
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hidden_size": 10}, "model_type"),
        (_llama_cfg(model_type="mamba"), "model_type 'mamba' is not supported"),
        ({k: v for k, v in _llama_cfg().items() if k != "hidden_size"}, "'hidden_size'"),
        (_llama_cfg(num_hidden_layers="32"), "'num_hidden_layers' must be an integer"),
        (_llama_cfg(num_key_value_heads=5), "not a multiple of num_key_value_heads"),
        (_llama_cfg(tie_word_embeddings="no"), "'tie_word_embeddings' must be true or false"),
        (_llama_cfg(layer_types=["full_attention"]), "'layer_types' must list one entry"),
        ({"model_type": "gemma3"}, "no 'text_config'"),
        (_llama_cfg(num_key_value_heads=0), "'num_key_value_heads' must be positive"),
        (_llama_cfg(vocab_size=-1), "'vocab_size' must be positive"),
        (
            {**load_fixture("mixtral-8x7b-instruct-v0.1.json"), "num_experts_per_tok": 9},
            "experts_per_token",
        ),
        (
            {k: v for k, v in load_fixture("deepseek-v3.json").items() if k != "kv_lora_rank"},
            "'kv_lora_rank'",
        ),
    ],
)
def test_bad_configs_name_what_to_fix(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        architecture_from_hf_config(config, "bad")


def test_architecture_validates_layer_windows() -> None:
    arch = lookup_model("llama-3.2-1b")
    with pytest.raises(ModelConfigError, match="layer_windows"):
        dataclasses.replace(arch, layer_windows=(None,))


# --- lookup ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "model_id"),
    [
        ("llama-3.1-8b", "llama-3.1-8b"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "llama-3.1-8b"),
        ("/models/Llama-3.1-8B-Instruct/", "llama-3.1-8b"),
        ("meta/llama-3.1-8b-instruct", "llama-3.1-8b"),  # NIM
        ("RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic", "llama-3.1-8b"),
        ("/shared/public/models/Meta-Llama-3-8B-Instruct", "llama-3-8b"),
        ("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "llama-3.1-70b"),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.3-70b"),
        ("Qwen/Qwen3-8B", "qwen3-8b"),
        ("Qwen/Qwen3-0.6B", "qwen3-0.6b"),
        ("qwen/qwen3-0.6b", "qwen3-0.6b"),
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", "qwen3-30b-a3b"),
        ("Qwen/Qwen2.5-Coder-32B-Instruct", "qwen2.5-32b"),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b"),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b-v0.3"),
        ("google/gemma-2-9b-it", "gemma-2-9b"),
        ("deepseek-ai/DeepSeek-R1", "deepseek-v3"),
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("microsoft/Phi-3-mini-4k-instruct", "phi-3-mini"),
    ],
)
def test_lookup_by_engine_names(key: str, model_id: str) -> None:
    assert resolve_model_id(key) == model_id
    assert lookup_model(key).name == model_id


def test_unknown_model_names_closest_ids() -> None:
    with pytest.raises(UnknownModelError) as info:
        lookup_model("llama-3.1-9b")
    assert "llama-3.1-8b" in info.value.closest
    assert "llama-3.1-8b" in str(info.value)


def test_every_catalog_entry_parses_and_cites_a_source() -> None:
    assert len(MODEL_CATALOG) >= 19
    for entry in catalog_models():
        arch = entry.architecture
        assert isinstance(arch, ModelArchitecture)
        assert entry.source
        assert resolve_model_id(entry.hf_id) == entry.id
        row = 2 * arch.hidden_size  # a tied model's gathered row is read twice in a step
        for fmt in WEIGHT_FORMATS:
            step = weight_bytes_per_step(arch, fmt, 1)
            assert 0 < step <= stored_weight_bytes(arch, fmt) + row
