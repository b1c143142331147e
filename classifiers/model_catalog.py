"""Built-in model architectures, addressable by short id and by the names engines report.

Each entry holds the HF ``config.json`` fields that matter (values as published at
``https://huggingface.co/<hf_id>/blob/main/config.json``; research/roofline-anchors.md §4 names
where each was checked) and is parsed by
:func:`rooftop.classifiers.models.architecture_from_hf_config`,
so the catalog and user-supplied configs go through the same code.

Lookup is case-insensitive and accepts ``org/name``, a local path (``/models/Qwen3-8B``), and
the usual checkpoint suffixes (``-Instruct``, ``-it``, ``-FP8``, ``-AWQ``, a ``-2507`` date...).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from rooftop.classifiers.models import ModelArchitecture, architecture_from_hf_config


class UnknownModelError(LookupError):
    """No built-in model matches; ``closest`` lists the nearest ids."""

    def __init__(self, key: str, closest: tuple[str, ...]) -> None:
        self.key = key
        self.closest = closest
        hint = f"; closest: {', '.join(closest)}" if closest else ""
        super().__init__(
            f"unknown model {key!r}{hint}. Pass a config.json path, or see `rooftop models`"
        )


@dataclass(frozen=True)
class CatalogModel:
    id: str
    hf_id: str
    config: Mapping[str, Any]
    source: str
    aliases: tuple[str, ...] = field(default=())

    @property
    def architecture(self) -> ModelArchitecture:
        return _parse(self.id)


def _llama(
    layers: int,
    d: int,
    ffn: int,
    heads: int,
    kv: int,
    *,
    tie: bool = False,
    head_dim: int | None = None,
    vocab: int = 128256,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": d,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "tie_word_embeddings": tie,
        "torch_dtype": "bfloat16",
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    return cfg


def _qwen(
    model_type: str, layers: int, d: int, ffn: int, heads: int, kv: int, vocab: int, **extra: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model_type": model_type,
        "hidden_size": d,
        "intermediate_size": ffn,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "torch_dtype": "bfloat16",
    }
    cfg.update(extra)
    return cfg


def _gpt_oss(layers: int, experts: int) -> dict[str, Any]:
    return {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "hidden_size": 2880,
        "intermediate_size": 2880,
        "num_hidden_layers": layers,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "vocab_size": 201088,
        "num_local_experts": experts,
        "num_experts_per_tok": 4,
        "experts_per_token": 4,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * (layers // 2),
        "attention_bias": True,
        "tie_word_embeddings": False,
        "quantization_config": {
            "quant_method": "mxfp4",
            "modules_to_not_convert": [
                "model.layers.*.self_attn",
                "model.layers.*.mlp.router",
                "model.embed_tokens",
                "lm_head",
            ],
        },
    }


_HF = "https://huggingface.co/{}/blob/main/config.json"
_AIC = "ai-dynamo/aiconfigurator@095f58a5 model_configs (verbatim HF config)"

_ENTRIES: tuple[CatalogModel, ...] = (
    CatalogModel(
        "llama-3.2-1b",
        "meta-llama/Llama-3.2-1B-Instruct",
        _llama(16, 2048, 8192, 32, 8, tie=True, head_dim=64),
        "kevinstephano/thunder_model_blocks hf_llama/llama_config.py (HF copy)",
    ),
    CatalogModel(
        "llama-3.2-3b",
        "meta-llama/Llama-3.2-3B-Instruct",
        _llama(28, 3072, 8192, 24, 8, tie=True, head_dim=128),
        "HF config; dims 3072/24/8/28/8192 (research §4)",
    ),
    CatalogModel(
        "llama-3-8b",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        _llama(32, 4096, 14336, 32, 8),
        "HF config (same shapes as Llama-3.1-8B)",
    ),
    CatalogModel(
        "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", _llama(32, 4096, 14336, 32, 8), _AIC
    ),
    CatalogModel(
        "llama-3-70b",
        "meta-llama/Meta-Llama-3-70B-Instruct",
        _llama(80, 8192, 28672, 64, 8),
        "HF config (same shapes as Llama-3.1-70B)",
    ),
    CatalogModel(
        "llama-3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", _llama(80, 8192, 28672, 64, 8), _AIC
    ),
    CatalogModel(
        "llama-3.3-70b",
        "meta-llama/Llama-3.3-70B-Instruct",
        _llama(80, 8192, 28672, 64, 8),
        "ai-dynamo/aiconfigurator meta-llama--Llama-3.3-70B-Instruct_config.json",
    ),
    CatalogModel(
        "llama-3.1-405b",
        "meta-llama/Llama-3.1-405B-Instruct",
        _llama(126, 16384, 53248, 128, 8),
        _AIC,
    ),
    CatalogModel(
        "mistral-7b",
        "mistralai/Mistral-7B-v0.1",
        {
            "model_type": "mistral",
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 32000,
            "sliding_window": 4096,
            "tie_word_embeddings": False,
        },
        "sumitdotml/transformers mistral-7b-v0.1/README.md and HF",
        aliases=("mistral-7b-v0.1", "mistral-7b-instruct-v0.1"),
    ),
    CatalogModel(
        "mistral-7b-v0.3",
        "mistralai/Mistral-7B-Instruct-v0.3",
        {
            "model_type": "mistral",
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 32768,
            "sliding_window": None,
            "tie_word_embeddings": False,
        },
        "HF config (v0.3: vocab 32768, no sliding window)",
        aliases=("mistral-7b-instruct-v0.3",),
    ),
    CatalogModel(
        "mixtral-8x7b",
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        {
            "model_type": "mixtral",
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 32000,
            "num_local_experts": 8,
            "num_experts_per_tok": 2,
            "sliding_window": None,
            "tie_word_embeddings": False,
        },
        _AIC,
        aliases=("mixtral-8x7b-v0.1", "mixtral-8x7b-instruct-v0.1"),
    ),
    CatalogModel(
        "qwen2.5-7b",
        "Qwen/Qwen2.5-7B-Instruct",
        _qwen("qwen2", 28, 3584, 18944, 28, 4, 152064),
        "volcengine/verl tests/utils/test_flops_counter.py (Qwen/Qwen2.5-7B-Instruct)",
    ),
    CatalogModel(
        "qwen2.5-32b",
        "Qwen/Qwen2.5-32B-Instruct",
        _qwen("qwen2", 64, 5120, 27648, 40, 8, 152064),
        "HF config (Qwen2.5-32B and Qwen2.5-Coder-32B share shapes)",
        aliases=("qwen2.5-coder-32b",),
    ),
    CatalogModel(
        "qwen2.5-72b",
        "Qwen/Qwen2.5-72B-Instruct",
        _qwen("qwen2", 80, 8192, 29568, 64, 8, 152064),
        "HF config; dims 8192/64/8/80/29568/152064 (research §4)",
    ),
    CatalogModel(
        "qwen3-0.6b",
        "Qwen/Qwen3-0.6B",
        {
            **_qwen("qwen3", 28, 1024, 3072, 16, 8, 151936, head_dim=128),
            "tie_word_embeddings": True,
        },
        "HF config Qwen/Qwen3-0.6B",
    ),
    CatalogModel(
        "qwen3-8b",
        "Qwen/Qwen3-8B",
        _qwen("qwen3", 36, 4096, 12288, 32, 8, 151936, head_dim=128),
        _AIC,
    ),
    CatalogModel(
        "qwen3-32b",
        "Qwen/Qwen3-32B",
        _qwen("qwen3", 64, 5120, 25600, 64, 8, 151936, head_dim=128),
        _AIC,
    ),
    CatalogModel(
        "qwen3-30b-a3b",
        "Qwen/Qwen3-30B-A3B",
        _qwen(
            "qwen3_moe",
            48,
            2048,
            6144,
            32,
            4,
            151936,
            head_dim=128,
            num_experts=128,
            num_experts_per_tok=8,
            moe_intermediate_size=768,
            decoder_sparse_step=1,
            mlp_only_layers=[],
        ),
        _AIC,
    ),
    CatalogModel(
        "qwen3-235b-a22b",
        "Qwen/Qwen3-235B-A22B",
        _qwen(
            "qwen3_moe",
            94,
            4096,
            12288,
            64,
            4,
            151936,
            head_dim=128,
            num_experts=128,
            num_experts_per_tok=8,
            moe_intermediate_size=1536,
            decoder_sparse_step=1,
            mlp_only_layers=[],
        ),
        _AIC,
    ),
    CatalogModel(
        "gemma-2-9b",
        "google/gemma-2-9b-it",
        {
            "model_type": "gemma2",
            "hidden_size": 3584,
            "intermediate_size": 14336,
            "num_hidden_layers": 42,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 256,
            "vocab_size": 256000,
            "sliding_window": 4096,
            "query_pre_attn_scalar": 256,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
        },
        "gemma-2-9b-it config.json quoted in a vLLM usage issue (research §4)",
    ),
    CatalogModel(
        "gemma-3-27b",
        "google/gemma-3-27b-it",
        {
            "architectures": ["Gemma3ForConditionalGeneration"],
            "model_type": "gemma3",
            "text_config": {
                "model_type": "gemma3_text",
                "hidden_size": 5376,
                "intermediate_size": 21504,
                "num_hidden_layers": 62,
                "num_attention_heads": 32,
                "num_key_value_heads": 16,
                "head_dim": 128,
                "sliding_window": 1024,
                "query_pre_attn_scalar": 168,
                "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            },
        },
        _HF.format("google/gemma-3-27b-it") + " (vocab 262208 and 5:1 local:global pattern are "
        "Gemma3TextConfig defaults); language model only, vision tower excluded",
    ),
    CatalogModel(
        "phi-3-mini",
        "microsoft/Phi-3-mini-4k-instruct",
        {
            "model_type": "phi3",
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "vocab_size": 32064,
            "sliding_window": 2047,
            "tie_word_embeddings": False,
        },
        "vendored Phi-3-mini-4k-instruct config (research §4)",
        aliases=("phi-3-mini-4k",),
    ),
    CatalogModel(
        "deepseek-v3",
        "deepseek-ai/DeepSeek-V3",
        {
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "hidden_size": 7168,
            "intermediate_size": 18432,
            "moe_intermediate_size": 2048,
            "num_hidden_layers": 61,
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "n_shared_experts": 1,
            "n_routed_experts": 256,
            "num_experts_per_tok": 8,
            "first_k_dense_replace": 3,
            "moe_layer_freq": 1,
            "kv_lora_rank": 512,
            "q_lora_rank": 1536,
            "qk_nope_head_dim": 128,
            "qk_rope_head_dim": 64,
            "v_head_dim": 128,
            "vocab_size": 129280,
            "num_nextn_predict_layers": 1,
            "topk_method": "noaux_tc",
            "tie_word_embeddings": False,
            "quantization_config": {
                "activation_scheme": "dynamic",
                "fmt": "e4m3",
                "quant_method": "fp8",
                "weight_block_size": [128, 128],
            },
        },
        _AIC,
        aliases=("deepseek-v3-base", "deepseek-r1", "deepseek-v3.1"),
    ),
    CatalogModel("gpt-oss-20b", "openai/gpt-oss-20b", _gpt_oss(24, 32), _AIC),
    CatalogModel("gpt-oss-120b", "openai/gpt-oss-120b", _gpt_oss(36, 128), _AIC),
)

MODEL_CATALOG: Mapping[str, CatalogModel] = {entry.id: entry for entry in _ENTRIES}

# Checkpoint-name suffixes that do not change the architecture (stripped repeatedly).
_SUFFIX = re.compile(
    r"(-(instruct|it|chat|base|hf|thinking|fp8|fp8-dynamic|fp4|awq|gptq|int4|int8|w8a8|w4a16"
    r"|nvfp4|mxfp4|bnb-4bit|gguf|\d{4}))$"
)


def _normalise(key: str) -> str:
    name = key.strip().lower().rstrip("/")
    return name.rsplit("/", 1)[-1]


def _strip_suffixes(name: str) -> str:
    while True:
        stripped = _SUFFIX.sub("", name)
        if stripped == name:
            return name
        name = stripped


def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for entry in _ENTRIES:
        org_free = entry.hf_id.lower().rsplit("/", 1)[-1]
        names = {entry.id, org_free, _strip_suffixes(org_free), *entry.aliases}
        if org_free.startswith("meta-llama-"):
            names.add(org_free.removeprefix("meta-"))
        elif entry.id.startswith("llama-"):
            names.add("meta-" + entry.id)
        for name in names:
            index.setdefault(name, entry.id)
    return index


_INDEX = _index()


def resolve_model_id(key: str) -> str:
    """The catalog id for ``key`` (short id, HF id, engine-reported name or local path)."""
    name = _normalise(key)
    for candidate in (name, _strip_suffixes(name)):
        if candidate in _INDEX:
            return _INDEX[candidate]
    closest = difflib.get_close_matches(_strip_suffixes(name), list(_INDEX), n=3, cutoff=0.5)
    ids = tuple(dict.fromkeys(_INDEX[c] for c in closest))
    raise UnknownModelError(key, ids)


@cache
def _parse(model_id: str) -> ModelArchitecture:
    entry = MODEL_CATALOG[model_id]
    return architecture_from_hf_config(entry.config, entry.id, source=entry.source)


def lookup_model(key: str) -> ModelArchitecture:
    """The built-in architecture for ``key``; raises :class:`UnknownModelError` with the
    closest ids when none matches."""
    return _parse(resolve_model_id(key))


def catalog_models() -> tuple[CatalogModel, ...]:
    """Every built-in entry, in catalog order."""
    return _ENTRIES
