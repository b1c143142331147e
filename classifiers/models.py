"""Decoder-only model architectures and their per-step byte and FLOP accounting.

Everything here is arithmetic on HF ``config.json`` values: no I/O (the caller reads the JSON).
Units: parameters are counts, bytes are bytes, FLOPs are floating-point operations (one
multiply-add = 2 FLOPs), contexts are tokens. Notation (research/roofline-anchors.md §3):
L layers, d hidden size, n_q query heads, n_kv KV heads, h head_dim, I intermediate size,
V vocabulary, E routed experts, k experts per token.

Conventions, decided once:

- ``parameter_count`` counts every stored tensor of the language model: both embedding matrices
  (once when tied), norms, biases, routers, every expert. It excludes what decode never runs:
  DeepSeek's multi-token-prediction layer (``num_nextn_predict_layers``) and the vision tower of
  multimodal checkpoints (Gemma-3).
- ``active_parameter_count`` is the same with only ``k`` routed experts per MoE layer, input
  embedding included (this is how Mixtral's 12.9 B and DeepSeek-V3's 37.6 B are quoted; OpenAI's
  gpt-oss "active" figures leave the input embedding out).
- Bytes read per step count the input embedding as a gather of one row per token, and the LM head
  (tied or not) as a full read (gpt-fast and research §2.1 (a)).
- Tensor parallelism (TP) splits column- and row-parallel weights, their FLOPs and the KV heads
  by ``tp``, and keeps what engines replicate whole on every GPU (vLLM ``ReplicatedLinear``):
  MLA's ``q_a``/``kv_a`` down-projections, the MoE router, every norm, and the K/V heads when
  ``n_kv < tp`` (each GPU holds ``ceil(n_kv / tp)`` whole heads, vLLM
  ``max(1, n_kv // tp)``, so the K/V projection columns and the KV cache are replicated). The
  MLA latent has no head axis and is replicated on every TP rank. Replicated matmuls run whole
  on every GPU, so they count whole in per-GPU FLOPs too. Expert parallelism is not modelled:
  TP splits each expert.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

WeightFormat = Literal["bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "mxfp4", "nvfp4"]
KvDtype = Literal["bf16", "fp16", "fp8"]
WEIGHT_FORMATS: tuple[WeightFormat, ...] = get_args(WeightFormat)
KV_DTYPES: tuple[KvDtype, ...] = get_args(KvDtype)

ACTIVATION_BYTES = 2
"""Activations are BF16/FP16 in every format handled here (W4A16, W8A8 and FP4 kernels read
and write 16-bit activations between kernels)."""

UNQUANTIZED_BYTES = 2
"""Embeddings, LM head, norms, biases and routers stay BF16 in quantized checkpoints
(research §3.5: ``modules_to_not_convert`` / ``ignore`` lists)."""


class ModelConfigError(ValueError):
    """A model config cannot be understood; the message names the key or value to fix."""


@dataclass(frozen=True)
class MoeSpec:
    """Mixture-of-experts feed-forward layers.

    ``dense_layers`` are indices of layers that keep a dense MLP of ``intermediate_size``
    (DeepSeek ``first_k_dense_replace``, Qwen ``mlp_only_layers``).
    """

    num_experts: int
    experts_per_token: int
    moe_intermediate_size: int
    shared_experts: int = 0
    shared_intermediate_size: int = 0
    """Width of each shared expert's MLP."""
    dense_layers: tuple[int, ...] = ()
    router_bias: bool = False
    expert_bias: bool = False
    """Biases on the expert projections (gpt-oss)."""

    def __post_init__(self) -> None:
        _require_positive("num_experts", self.num_experts)
        _require_positive("experts_per_token", self.experts_per_token)
        _require_positive("moe_intermediate_size", self.moe_intermediate_size)
        if self.experts_per_token > self.num_experts:
            raise ModelConfigError(
                f"experts_per_token ({self.experts_per_token}) exceeds num_experts "
                f"({self.num_experts})"
            )
        if self.shared_experts < 0 or self.shared_intermediate_size < 0:
            raise ModelConfigError("shared experts and their width must not be negative")


@dataclass(frozen=True)
class MlaSpec:
    """Multi-head latent attention (DeepSeek-V2/V3): one compressed KV latent per token."""

    kv_lora_rank: int
    q_lora_rank: int | None
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    def __post_init__(self) -> None:
        for key in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            _require_positive(key, getattr(self, key))
        if self.q_lora_rank is not None:
            _require_positive("q_lora_rank", self.q_lora_rank)


@dataclass(frozen=True)
class QuantizationSpec:
    """What the checkpoint's ``quantization_config`` declares."""

    method: str
    """``quant_method`` as written, e.g. ``fp8``, ``mxfp4``, ``awq``."""
    weight_format: WeightFormat | None
    """The matching format here, ``None`` when the method is not one of ``WEIGHT_FORMATS``."""
    weight_block_size: tuple[int, int] | None = None
    """FP8 block scaling (DeepSeek ``[128, 128]``): one fp32 scale per block."""
    attention_quantized: bool = True
    """False when ``modules_to_not_convert`` keeps attention in BF16 (gpt-oss)."""


@dataclass(frozen=True)
class ModelArchitecture:
    """The shape of a decoder-only transformer, as far as bytes and FLOPs care."""

    name: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    layer_windows: tuple[int | None, ...]
    """Per layer: the sliding-window length in tokens, ``None`` for full attention."""
    moe: MoeSpec | None = None
    mla: MlaSpec | None = None
    quantization: QuantizationSpec | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    """Per-head RMSNorm on q and k (Qwen3, Gemma-3)."""
    norms_per_layer: int = 2
    attention_sinks: bool = False
    source: str = ""
    """Where the config values come from."""

    def __post_init__(self) -> None:
        for key in (
            "hidden_size",
            "num_layers",
            "num_attention_heads",
            "num_kv_heads",
            "head_dim",
            "vocab_size",
        ):
            _require_positive(key, getattr(self, key))
        if self.intermediate_size < 0:
            raise ModelConfigError("intermediate_size must not be negative")
        if len(self.layer_windows) != self.num_layers:
            raise ModelConfigError(
                f"layer_windows has {len(self.layer_windows)} entries, expected num_layers "
                f"= {self.num_layers}"
            )
        if any(w is not None and w <= 0 for w in self.layer_windows):
            raise ModelConfigError("sliding windows must be positive token counts")
        if self.moe is not None and any(
            not 0 <= i < self.num_layers for i in self.moe.dense_layers
        ):
            raise ModelConfigError("MoE dense layer index outside 0..num_layers-1")

    @property
    def num_moe_layers(self) -> int:
        if self.moe is None:
            return 0
        return self.num_layers - len(set(self.moe.dense_layers))

    @property
    def declared_weight_format(self) -> WeightFormat | None:
        """The format the checkpoint is stored in, when its config declares a known one."""
        return None if self.quantization is None else self.quantization.weight_format

    @property
    def default_weight_format(self) -> WeightFormat:
        """Declared format, else BF16."""
        return self.declared_weight_format or "bf16"


# --- weight matrices -----------------------------------------------------------------------

Role = Literal["attention", "dense_mlp", "expert", "shared_expert", "router", "lm_head"]
Split = Literal["column", "row", "replicated"]


@dataclass(frozen=True)
class _Matrix:
    """``count`` copies of an ``in_features x out_features`` weight, per layer set."""

    role: Role
    in_features: int
    out_features: int
    count: int
    split: Split
    kv_out_features: int = 0
    """Of ``out_features``, the columns that belong to K/V heads (GQA's fused qkv): split by
    head, replicated once there are fewer KV heads than GPUs."""

    @property
    def parameters(self) -> int:
        return self.in_features * self.out_features * self.count

    def gpu_share(self, arch: ModelArchitecture, tp: int) -> float:
        """The fraction of this matrix one of ``tp`` GPUs stores and multiplies.

        Row- and column-parallel: ``1 / tp``; replicated: 1; the K/V columns of a fused qkv:
        ``ceil(n_kv / tp) / n_kv`` (one whole head per GPU at least).
        """
        if self.split == "replicated" or tp == 1:
            return 1.0
        if self.kv_out_features == 0:
            return 1.0 / tp
        kv_share = kv_heads_per_gpu(arch, tp) / arch.num_kv_heads
        q_out = self.out_features - self.kv_out_features
        return (q_out / tp + self.kv_out_features * kv_share) / self.out_features


def _attention_matrices(arch: ModelArchitecture, layers: int) -> list[_Matrix]:
    """Attention projections as engines fuse them (one input read per fused group):
    GQA ``qkv: d -> (n_q + 2 n_kv) h`` and ``o``; MLA ``q_a + kv_a`` fused, ``q_b``, ``kv_b``,
    ``o``."""
    d, n_q, n_kv, h = arch.hidden_size, arch.num_attention_heads, arch.num_kv_heads, arch.head_dim
    mla = arch.mla
    if mla is None:
        return [
            _Matrix("attention", d, (n_q + 2 * n_kv) * h, layers, "column", 2 * n_kv * h),
            _Matrix("attention", n_q * h, d, layers, "row"),
        ]
    qk_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    kv_a = mla.kv_lora_rank + mla.qk_rope_head_dim
    out: list[_Matrix] = []
    if mla.q_lora_rank is None:
        out += [
            _Matrix("attention", d, n_q * qk_dim, layers, "column"),
            _Matrix("attention", d, kv_a, layers, "replicated"),
        ]
    else:
        out += [
            _Matrix("attention", d, mla.q_lora_rank + kv_a, layers, "replicated"),
            _Matrix("attention", mla.q_lora_rank, n_q * qk_dim, layers, "column"),
        ]
    out += [
        _Matrix(
            "attention",
            mla.kv_lora_rank,
            n_q * (mla.qk_nope_head_dim + mla.v_head_dim),
            layers,
            "column",
        ),
        _Matrix("attention", n_q * mla.v_head_dim, d, layers, "row"),
    ]
    return out


def _mlp(role: Role, d: int, width: int, copies: int) -> list[_Matrix]:
    """Gated MLP: fused gate+up ``d -> 2 width``, down ``width -> d``."""
    return [_Matrix(role, d, 2 * width, copies, "column"), _Matrix(role, width, d, copies, "row")]


@functools.lru_cache(maxsize=256)
def _matrices(arch: ModelArchitecture) -> tuple[_Matrix, ...]:
    """All linear weights, one routed expert per MoE layer (see ``_experts_multiplier``).
    Made once per architecture: the live path asks for them ~100 times a cycle."""
    d, layers = arch.hidden_size, arch.num_layers
    out = _attention_matrices(arch, layers)
    moe = arch.moe
    if moe is None:
        out += _mlp("dense_mlp", d, arch.intermediate_size, layers)
    else:
        moe_layers = arch.num_moe_layers
        dense = layers - moe_layers
        if dense:
            out += _mlp("dense_mlp", d, arch.intermediate_size, dense)
        out += _mlp("expert", d, moe.moe_intermediate_size, moe_layers)
        if moe.shared_experts:
            out += _mlp(
                "shared_expert", d, moe.shared_intermediate_size, moe_layers * moe.shared_experts
            )
        out.append(_Matrix("router", d, moe.num_experts, moe_layers, "replicated"))
    out.append(_Matrix("lm_head", d, arch.vocab_size, 1, "column"))
    return tuple(out)


def _experts_multiplier(role: Role, arch: ModelArchitecture, experts: float | None) -> float:
    """How many copies of each routed-expert matrix count: all experts (``None``) or ``experts``
    of them (a float: the expected distinct experts of a step)."""
    if role != "expert" or arch.moe is None:
        return 1.0
    return float(arch.moe.num_experts if experts is None else experts)


def _vector_parameters(arch: ModelArchitecture, experts: float | None, tp: int = 1) -> float:
    """Norm weights, biases, sinks: small tensors, always kept in BF16; per GPU at ``tp``.

    Norms, the router bias and the row-parallel ``o`` bias (added after the all-reduce) are
    replicated; qkv biases, sinks and expert biases split with their heads and experts."""
    d, layers = arch.hidden_size, arch.num_layers
    n_q, n_kv, h = arch.num_attention_heads, arch.num_kv_heads, arch.head_dim
    replicated = float(arch.norms_per_layer * d * layers + d)  # + final norm
    split = 0.0
    if arch.qk_norm:
        replicated += 2 * h * layers
    if arch.mla is not None:
        replicated += arch.mla.kv_lora_rank * layers
        if arch.mla.q_lora_rank is not None:
            replicated += arch.mla.q_lora_rank * layers
    if arch.qkv_bias:
        split += n_q * h * layers
        replicated_kv = 2 * n_kv * h * layers
        split += replicated_kv * (kv_heads_per_gpu(arch, tp) * tp / n_kv)
    if arch.o_bias:
        replicated += d * layers
    if arch.attention_sinks:
        split += n_q * layers
    moe = arch.moe
    if moe is not None:
        moe_layers = arch.num_moe_layers
        if moe.router_bias:
            replicated += moe.num_experts * moe_layers
        if moe.expert_bias:
            n = moe.num_experts if experts is None else experts
            split += n * (2 * moe.moe_intermediate_size + d) * moe_layers
    return replicated + split / tp


def _embedding_parameters(arch: ModelArchitecture) -> int:
    return arch.vocab_size * arch.hidden_size


def _linear_parameters(arch: ModelArchitecture, experts: float | None, tp: int = 1) -> float:
    """Linear-layer parameters one GPU of ``tp`` holds (replicated parts whole)."""
    return sum(
        m.parameters * _experts_multiplier(m.role, arch, experts) * m.gpu_share(arch, tp)
        for m in _matrices(arch)
    )


def _count(arch: ModelArchitecture, experts: float | None) -> float:
    # Tied: the input embedding is the LM head matrix (already a linear), stored once.
    embedding = 0 if arch.tie_word_embeddings else _embedding_parameters(arch)
    return _linear_parameters(arch, experts) + embedding + _vector_parameters(arch, experts)


def parameter_count(arch: ModelArchitecture) -> int:
    """Stored parameters of the language model (see module docstring for what is included)."""
    return round(_count(arch, None))


def active_parameter_count(arch: ModelArchitecture) -> int:
    """Parameters one token runs through: ``k`` routed experts per MoE layer, input embedding
    included. Equal to ``parameter_count`` for dense models."""
    if arch.moe is None:
        return parameter_count(arch)
    return round(_count(arch, arch.moe.experts_per_token))


def linear_parameters_per_token(arch: ModelArchitecture) -> int:
    """Matmul weights one token multiplies through: every linear layer with ``k`` routed experts,
    plus the LM head; no input embedding (a gather), no norms or biases."""
    experts = None if arch.moe is None else arch.moe.experts_per_token
    return round(_linear_parameters(arch, experts))


def linear_parameters_per_token_per_gpu(arch: ModelArchitecture, tp: int = 1) -> float:
    """:func:`linear_parameters_per_token` as one GPU of ``tp`` multiplies them: split layers
    ``/ tp``, replicated ones (MLA ``q_a``/``kv_a``, router, K/V heads when ``n_kv < tp``) whole.
    """
    _require_tp(tp)
    experts = None if arch.moe is None else arch.moe.experts_per_token
    return _linear_parameters(arch, experts, tp)


def replicated_weight_bytes(arch: ModelArchitecture, weights: WeightFormat, tp: int) -> float:
    """Bytes every GPU stores beyond an even ``1 / tp`` split of all weights: what the
    replicated parts add (0 at ``tp`` 1)."""
    return stored_weight_bytes(arch, weights, tp) - stored_weight_bytes(arch, weights, 1) / tp


# --- weight formats ------------------------------------------------------------------------

_GROUP = 128
"""Group size of AWQ/GPTQ INT4 checkpoints (``q_group_size``/``group_size`` 128 is standard)."""


def matrix_bytes(
    in_features: int,
    out_features: int,
    fmt: WeightFormat,
    *,
    block_size: tuple[int, int] | None = None,
) -> float:
    """Stored bytes of one ``in x out`` weight in ``fmt``, scales and zero points included.

    - bf16/fp16: 2 bytes per weight.
    - fp8: 1 byte per weight plus fp32 scales: one per ``block_size`` block when given
      (DeepSeek 128x128: 8 + 32/16384 bits per weight), else one per output channel.
    - int8 (W8A8): 1 byte per weight plus one fp32 scale per output channel.
    - int4-awq (AutoAWQ ``WQLinear_GEMM``, g=128): 4-bit weights, fp16 scale and packed 4-bit zero
      per group of 128 inputs per output: 4 + 16/128 + 4/128 = 4.156 bits per weight.
    - int4-gptq (g=128): as AWQ (zeros are stored even when symmetric) plus an int32 ``g_idx``
      per input row.
    - mxfp4 (OCP MX): 4-bit E2M1 values, one E8M0 byte per 32 inputs: 4.25 bits per weight.
    - nvfp4: 4-bit E2M1 values, one E4M3 byte per 16 inputs (4.5 bits per weight), plus two fp32
      per-tensor global scales.
    """
    n = in_features * out_features
    groups = math.ceil(in_features / _GROUP) * out_features
    if fmt in ("bf16", "fp16"):
        return 2.0 * n
    if fmt == "fp8":
        if block_size is not None:
            blocks = math.ceil(out_features / block_size[0]) * math.ceil(
                in_features / block_size[1]
            )
            return n + 4.0 * blocks
        return n + 4.0 * out_features
    if fmt == "int8":
        return n + 4.0 * out_features
    if fmt == "int4-awq":
        return n / 2 + 2.0 * groups + groups / 2
    if fmt == "int4-gptq":
        return n / 2 + 2.0 * groups + groups / 2 + 4.0 * in_features
    if fmt == "mxfp4":
        return n / 2 + math.ceil(in_features / 32) * out_features
    if fmt == "nvfp4":
        return n / 2 + math.ceil(in_features / 16) * out_features + 8.0
    raise ModelConfigError(f"unknown weight format {fmt!r}; use one of {', '.join(WEIGHT_FORMATS)}")


def effective_bits_per_weight(fmt: WeightFormat) -> float:
    """Bits per weight of a large (4096 x 4096) matrix in ``fmt``, scales included; used for
    napkin maths when only a parameter count is known."""
    side = 4096
    return matrix_bytes(side, side, fmt) * 8 / (side * side)


def _quantized(role: Role, arch: ModelArchitecture, fmt: WeightFormat) -> bool:
    """Whether a matrix of ``role`` is stored in ``fmt`` (else BF16).

    LM head and router stay BF16 in quantized checkpoints. When ``fmt`` is the format the
    config declares, its ``modules_to_not_convert`` decide attention (gpt-oss MXFP4: experts
    only); otherwise every other linear layer is in ``fmt``.
    """
    if fmt in ("bf16", "fp16"):
        return True
    if role in ("lm_head", "router"):
        return False
    if role == "attention":
        q = arch.quantization
        if q is not None and q.weight_format == fmt:
            return q.attention_quantized
    return True


def _block_size(arch: ModelArchitecture, fmt: WeightFormat) -> tuple[int, int] | None:
    q = arch.quantization
    if q is not None and q.weight_format == fmt:
        return q.weight_block_size
    return None


def _weight_bytes(
    arch: ModelArchitecture,
    fmt: WeightFormat,
    experts: float | None,
    gathered_rows: float,
    tp: int = 1,
) -> float:
    """Per-GPU bytes: each matrix's stored bytes times its :meth:`_Matrix.gpu_share`, vectors
    per :func:`_vector_parameters`, and the vocab-parallel embedding rows ``/ tp``."""
    block = _block_size(arch, fmt)
    total = 0.0
    for m in _matrices(arch):
        mult = _experts_multiplier(m.role, arch, experts)
        if _quantized(m.role, arch, fmt):
            per = matrix_bytes(m.in_features, m.out_features, fmt, block_size=block)
        else:
            per = float(UNQUANTIZED_BYTES * m.in_features * m.out_features)
        total += per * m.count * mult * m.gpu_share(arch, tp)
    total += UNQUANTIZED_BYTES * _vector_parameters(arch, experts, tp)
    total += UNQUANTIZED_BYTES * gathered_rows * arch.hidden_size / tp
    return total


def stored_weight_bytes(arch: ModelArchitecture, weights: WeightFormat, tp: int = 1) -> float:
    """Bytes of all stored weights in ``weights`` format, per GPU: split parts ``/ tp``,
    replicated parts whole (module docstring)."""
    _require_tp(tp)
    rows = 0 if arch.tie_word_embeddings else arch.vocab_size
    return _weight_bytes(arch, weights, None, rows, tp)


def lm_head_bytes_per_gpu(arch: ModelArchitecture, tp: int = 1) -> float:
    """The LM head's bytes on one GPU: ``vocab x d`` in BF16 (kept unquantized), vocab-split
    ``/ tp``."""
    _require_tp(tp)
    return float(UNQUANTIZED_BYTES * arch.vocab_size * arch.hidden_size) / tp


def expected_distinct_experts(num_experts: int, experts_per_token: int, tokens: int) -> float:
    """Expected distinct experts one MoE layer reads for ``tokens`` tokens routed top-``k``.

    ``E * (1 - (1 - k/E) ** T)`` under independent, uniform routing (research §3.3). Real routers
    are skewed, so the true figure is lower; ``min(T*k, E)`` is the upper bound.
    """
    _require_positive("num_experts", num_experts)
    if not 0 < experts_per_token <= num_experts:
        raise ValueError("experts_per_token must be in 1..num_experts")
    if tokens < 0:
        raise ValueError("tokens must not be negative")
    e, k = float(num_experts), float(experts_per_token)
    return e * (1.0 - (1.0 - k / e) ** tokens)


def weight_bytes_per_step(
    arch: ModelArchitecture, weights: WeightFormat, tokens_in_step: int, tp: int = 1
) -> float:
    """Weight bytes one forward step over ``tokens_in_step`` tokens reads from memory, per GPU.

    ``W = Σ linear weights (MoE: expected distinct experts for T tokens per layer)
         + LM head (full) + T embedding rows + norms/biases``, divided by ``tp``.
    """
    _require_tp(tp)
    if tokens_in_step < 1:
        raise ValueError("tokens_in_step must be at least 1")
    experts = None
    if arch.moe is not None:
        experts = expected_distinct_experts(
            arch.moe.num_experts, arch.moe.experts_per_token, tokens_in_step
        )
    return _weight_bytes(arch, weights, experts, tokens_in_step, tp)


# --- KV cache ------------------------------------------------------------------------------


def kv_heads_per_gpu(arch: ModelArchitecture, tp: int = 1) -> int:
    """``ceil(n_kv / tp)``: KV heads are replicated, never split, when ``n_kv < tp``."""
    _require_tp(tp)
    return math.ceil(arch.num_kv_heads / tp)


def kv_bytes_per_token_per_layer(arch: ModelArchitecture, kv_dtype: KvDtype, tp: int = 1) -> float:
    """KV bytes one token adds to one layer, per GPU.

    GQA/MHA: ``2 (K and V) * ceil(n_kv / tp) * h * b_kv``. MLA: one latent of
    ``kv_lora_rank + qk_rope_head_dim`` elements (BF16: 2 bytes each); FP8 uses vLLM's packed
    layout ``kv_lora_rank`` e4m3 bytes + one fp32 scale per 128 + rope part in BF16
    (DeepSeek-V3: 512 + 16 + 128 = 656 bytes). The latent is replicated on every TP rank.
    """
    b = _kv_element_bytes(kv_dtype)
    mla = arch.mla
    if mla is not None:
        _require_tp(tp)
        if kv_dtype == "fp8":
            return float(
                mla.kv_lora_rank + 4 * math.ceil(mla.kv_lora_rank / 128) + 2 * mla.qk_rope_head_dim
            )
        return float(b * (mla.kv_lora_rank + mla.qk_rope_head_dim))
    return float(2 * kv_heads_per_gpu(arch, tp) * arch.head_dim * b)


def kv_bytes_per_token(arch: ModelArchitecture, kv_dtype: KvDtype, tp: int = 1) -> float:
    """KV bytes one token adds across all layers, per GPU (sliding layers store it too)."""
    return kv_bytes_per_token_per_layer(arch, kv_dtype, tp) * arch.num_layers


def kv_bytes_read_per_sequence(
    arch: ModelArchitecture, kv_dtype: KvDtype, context_tokens: int, tp: int = 1
) -> float:
    """KV bytes one decoding sequence reads per step, per GPU:
    ``Σ_layers min(ctx, window_layer) * kv_bytes_per_token_per_layer``."""
    return kv_bytes_per_token_per_layer(arch, kv_dtype, tp) * attended_token_layers(
        arch, context_tokens
    )


def attended_token_layers(arch: ModelArchitecture, context_tokens: int) -> int:
    """``Σ_layers min(ctx, window_layer)``: (token, layer) pairs one query attends to."""
    if context_tokens < 0:
        raise ValueError("context_tokens must not be negative")
    return sum(context_tokens if w is None else min(context_tokens, w) for w in arch.layer_windows)


def _kv_element_bytes(kv_dtype: KvDtype) -> int:
    if kv_dtype in ("bf16", "fp16"):
        return 2
    if kv_dtype == "fp8":
        return 1
    raise ModelConfigError(f"unknown KV dtype {kv_dtype!r}; use one of {', '.join(KV_DTYPES)}")


# --- FLOPs and activations -----------------------------------------------------------------


def attention_flops_per_attended_token(
    arch: ModelArchitecture, tp: int = 1, *, mla_absorbed: bool = True
) -> float:
    """FLOPs (QKᵀ and AV) of one query over one cached token in one layer, per GPU.

    GQA/MHA: ``4 * n_q * h / tp``. MLA absorbed (decode, FlashMLA), ``r = kv_lora_rank``:
    ``(2 * n_q * (r + rope) + 2 * n_q * r) / tp``; non-absorbed (prefill):
    ``(2 * n_q * (nope + rope) + 2 * n_q * v_head_dim) / tp``.
    """
    _require_tp(tp)
    n_q = arch.num_attention_heads
    mla = arch.mla
    if mla is None:
        per = 4.0 * n_q * arch.head_dim
    elif mla_absorbed:
        r = mla.kv_lora_rank
        per = 2.0 * n_q * (r + mla.qk_rope_head_dim) + 2.0 * n_q * r
    else:
        per = 2.0 * n_q * (mla.qk_nope_head_dim + mla.qk_rope_head_dim) + 2.0 * n_q * mla.v_head_dim
    return per / tp


def attention_flops_per_token(
    arch: ModelArchitecture, context_tokens: int, tp: int = 1, *, mla_absorbed: bool = True
) -> float:
    """FLOPs of one query token attending over ``context_tokens``, per GPU:
    ``attention_flops_per_attended_token * Σ_layers min(ctx, window)`` (GQA: ``Σ 4·n_q·h·ctx``).
    """
    per = attention_flops_per_attended_token(arch, tp, mla_absorbed=mla_absorbed)
    return per * attended_token_layers(arch, context_tokens)


def flops_per_token(
    arch: ModelArchitecture, context_tokens: int, tp: int = 1, *, mla_absorbed: bool = True
) -> float:
    """Forward FLOPs for one token at ``context_tokens``, per GPU:
    ``2 * linear_parameters_per_token_per_gpu + attention_flops_per_token`` (attention split by
    query heads, ``/ tp``; replicated matmuls whole)."""
    _require_tp(tp)
    linear = 2.0 * linear_parameters_per_token_per_gpu(arch, tp)
    return linear + attention_flops_per_token(arch, context_tokens, tp, mla_absorbed=mla_absorbed)


def activation_bytes_per_token(arch: ModelArchitecture, tp: int = 1) -> float:
    """Activation bytes one token moves through HBM per forward, per GPU.

    Every linear layer the token runs through reads its input and writes its output in 16-bit:
    column-parallel layers read ``in`` and write ``out / tp``; row-parallel layers read
    ``in / tp`` and write ``out``; plus the embedding row written. O(d) per layer, so small
    beside the weights at small batch (vLLM counts the same terms).
    """
    _require_tp(tp)
    experts = None if arch.moe is None else arch.moe.experts_per_token
    elements = float(arch.hidden_size)
    for m in _matrices(arch):
        mult = _experts_multiplier(m.role, arch, experts)
        share = m.gpu_share(arch, tp)
        if m.split == "column":
            per = m.in_features + m.out_features * share
        elif m.split == "row":
            per = m.in_features * share + m.out_features
        else:
            per = m.in_features + m.out_features
        elements += per * m.count * mult
    return ACTIVATION_BYTES * elements


# --- HF config parsing ---------------------------------------------------------------------

SUPPORTED_MODEL_TYPES: tuple[str, ...] = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "gemma2",
    "gemma3",
    "gemma3_text",
    "deepseek_v2",
    "deepseek_v3",
    "gpt_oss",
    "phi3",
)

# Values HF's config classes default to when config.json leaves the key out.
_TIE_DEFAULT = {"gemma2": True, "gemma3_text": True, "gemma3": True}
_NORMS_PER_LAYER = {"gemma2": 4, "gemma3_text": 4}
_TEXT_DEFAULTS: dict[str, dict[str, Any]] = {
    # transformers Gemma3TextConfig defaults (the 4B/12B/27B configs omit these keys).
    "gemma3_text": {"vocab_size": 262208, "sliding_window_pattern": 6, "sliding_window": 4096},
}


def architecture_from_hf_config(
    config: Mapping[str, Any], name: str, *, source: str = ""
) -> ModelArchitecture:
    """Build a :class:`ModelArchitecture` from a parsed HF ``config.json``.

    Multimodal wrappers (Gemma-3 ``text_config``) are unwrapped to the language model. Raises
    :class:`ModelConfigError` naming the missing or bad key.
    """
    if not isinstance(config, Mapping):
        raise ModelConfigError(f"{name}: config must be a JSON object, got {type(config).__name__}")
    cfg: Mapping[str, Any] = config
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str):
        raise ModelConfigError(f"{name}: config has no 'model_type' string")
    if model_type == "gemma3" and not isinstance(cfg.get("text_config"), Mapping):
        raise ModelConfigError(f"{name}: gemma3 config has no 'text_config' object")
    if isinstance(cfg.get("text_config"), Mapping):
        inner = dict(cfg["text_config"])
        inner.setdefault("model_type", f"{model_type}_text")
        if "quantization_config" in cfg and "quantization_config" not in inner:
            inner["quantization_config"] = cfg["quantization_config"]
        cfg, model_type = inner, str(inner["model_type"])
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelConfigError(
            f"{name}: model_type {model_type!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (or pass --params for a dense estimate)"
        )
    reader = _Reader(cfg, name, _TEXT_DEFAULTS.get(model_type, {}))

    d = reader.integer("hidden_size", positive=True)
    layers = reader.integer("num_hidden_layers", positive=True)
    n_q = reader.integer("num_attention_heads", positive=True)
    n_kv = reader.integer("num_key_value_heads", default=n_q, positive=True)
    head_dim = reader.integer("head_dim", default=None, positive=True)
    if head_dim is None:
        if d % n_q:
            raise ModelConfigError(
                f"{name}: 'head_dim' missing and hidden_size {d} is not a multiple of "
                f"num_attention_heads {n_q}; add 'head_dim'"
            )
        head_dim = d // n_q
    if n_q % n_kv:
        raise ModelConfigError(
            f"{name}: num_attention_heads {n_q} is not a multiple of num_key_value_heads {n_kv}"
        )
    vocab = reader.integer("vocab_size", positive=True)
    tie = reader.flag("tie_word_embeddings", _TIE_DEFAULT.get(model_type, False))

    moe = _moe_spec(model_type, reader, layers)
    mla = _mla_spec(model_type, reader)
    needs_dense_mlp = moe is None or bool(moe.dense_layers)
    intermediate = (
        reader.integer("intermediate_size")
        if needs_dense_mlp
        else reader.integer("intermediate_size", default=0)
    )

    return ModelArchitecture(
        name=name,
        model_type=model_type,
        hidden_size=d,
        num_layers=layers,
        num_attention_heads=n_q,
        num_kv_heads=n_q if mla is not None else n_kv,
        head_dim=head_dim if mla is None else mla.qk_nope_head_dim + mla.qk_rope_head_dim,
        intermediate_size=intermediate,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        layer_windows=_layer_windows(model_type, reader, layers),
        moe=moe,
        mla=mla,
        quantization=_quantization_spec(reader),
        qkv_bias=model_type == "qwen2" or reader.flag("attention_bias", model_type == "gpt_oss"),
        o_bias=reader.flag("attention_bias", model_type == "gpt_oss"),
        qk_norm=model_type in ("qwen3", "qwen3_moe", "gemma3_text"),
        norms_per_layer=_NORMS_PER_LAYER.get(model_type, 2),
        attention_sinks=model_type == "gpt_oss",
        source=source,
    )


class _Reader:
    """Typed access to config keys with errors that name the key."""

    def __init__(self, cfg: Mapping[str, Any], name: str, defaults: Mapping[str, Any]) -> None:
        self.cfg, self.name, self.defaults = cfg, name, defaults

    def get(self, key: str) -> Any:
        return self.cfg.get(key, self.defaults.get(key))

    _MISSING: Any = object()

    def integer(self, key: str, default: Any = _MISSING, *, positive: bool = False) -> Any:
        value = self.get(key)
        if value is None:
            if default is not _Reader._MISSING:
                return default
            raise ModelConfigError(f"{self.name}: config.json is missing {key!r} (an integer)")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelConfigError(f"{self.name}: {key!r} must be an integer, got {value!r}")
        if value < 0 or (positive and value == 0):
            kind = "positive" if positive else "non-negative"
            raise ModelConfigError(f"{self.name}: {key!r} must be {kind}, got {value}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ModelConfigError(f"{self.name}: {key!r} must be true or false, got {value!r}")
        return value

    def int_list(self, key: str) -> list[int]:
        value = self.get(key) or []
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ModelConfigError(f"{self.name}: {key!r} must be a list of integers")
        return list(value)


def _moe_spec(model_type: str, r: _Reader, layers: int) -> MoeSpec | None:
    if model_type == "mixtral":
        return MoeSpec(
            num_experts=r.integer("num_local_experts"),
            experts_per_token=r.integer("num_experts_per_tok"),
            moe_intermediate_size=r.integer("intermediate_size"),
        )
    if model_type == "gpt_oss":
        return MoeSpec(
            num_experts=r.integer("num_local_experts"),
            experts_per_token=r.integer(
                "num_experts_per_tok", default=r.integer("experts_per_token", 4)
            ),
            moe_intermediate_size=r.integer("intermediate_size"),
            router_bias=True,
            expert_bias=True,
        )
    if model_type == "qwen3_moe":
        step = r.integer("decoder_sparse_step", default=1) or 1
        only_mlp = set(r.int_list("mlp_only_layers"))
        dense = tuple(i for i in range(layers) if i in only_mlp or (i + 1) % step != 0)
        return MoeSpec(
            num_experts=r.integer("num_experts"),
            experts_per_token=r.integer("num_experts_per_tok"),
            moe_intermediate_size=r.integer("moe_intermediate_size"),
            dense_layers=dense,
        )
    if model_type in ("deepseek_v2", "deepseek_v3"):
        if r.get("n_routed_experts") is None:
            return None
        first_dense = r.integer("first_k_dense_replace", default=0)
        freq = r.integer("moe_layer_freq", default=1) or 1
        dense = tuple(i for i in range(layers) if i < first_dense or i % freq != 0)
        shared = r.integer("n_shared_experts", default=0)
        moe_width = r.integer("moe_intermediate_size")
        return MoeSpec(
            num_experts=r.integer("n_routed_experts"),
            experts_per_token=r.integer("num_experts_per_tok"),
            moe_intermediate_size=moe_width,
            shared_experts=shared,
            shared_intermediate_size=moe_width if shared else 0,
            dense_layers=dense,
            router_bias=r.get("topk_method") == "noaux_tc",
        )
    return None


def _mla_spec(model_type: str, r: _Reader) -> MlaSpec | None:
    if model_type not in ("deepseek_v2", "deepseek_v3"):
        return None
    return MlaSpec(
        kv_lora_rank=r.integer("kv_lora_rank"),
        q_lora_rank=r.integer("q_lora_rank", default=None),
        qk_nope_head_dim=r.integer("qk_nope_head_dim"),
        qk_rope_head_dim=r.integer("qk_rope_head_dim"),
        v_head_dim=r.integer("v_head_dim"),
    )


def _layer_windows(model_type: str, r: _Reader, layers: int) -> tuple[int | None, ...]:
    """Per-layer sliding window from ``layer_types`` when present, else each family's rule."""
    window = r.get("sliding_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
        raise ModelConfigError(f"{r.name}: 'sliding_window' must be an integer or null")
    types = r.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers:
            raise ModelConfigError(
                f"{r.name}: 'layer_types' must list one entry per layer ({layers})"
            )
        if window is None and "sliding_attention" in types:
            raise ModelConfigError(
                f"{r.name}: 'layer_types' has sliding layers but no 'sliding_window'"
            )
        return tuple(window if t == "sliding_attention" else None for t in types)
    if window is None:
        return (None,) * layers
    if model_type in ("mistral", "mixtral", "phi3"):
        return (window,) * layers
    if model_type in ("qwen2", "qwen3", "qwen3_moe"):
        if not r.flag("use_sliding_window", False):
            return (None,) * layers
        first = r.integer("max_window_layers", default=layers)
        return tuple(window if i >= first else None for i in range(layers))
    if model_type in ("gemma2", "gpt_oss"):
        return tuple(window if i % 2 == 0 else None for i in range(layers))
    if model_type == "gemma3_text":
        pattern = r.integer("sliding_window_pattern")
        return tuple(window if (i + 1) % pattern else None for i in range(layers))
    return (None,) * layers


_QUANT_FORMATS: dict[str, WeightFormat] = {
    "fp8": "fp8",
    "fbgemm_fp8": "fp8",
    "mxfp4": "mxfp4",
    "awq": "int4-awq",
    "gptq": "int4-gptq",
}

_MODELOPT_FORMATS: dict[str, WeightFormat] = {"FP8": "fp8", "NVFP4": "nvfp4"}


def _quantization_spec(r: _Reader) -> QuantizationSpec | None:
    q = r.get("quantization_config")
    if q is None:
        return None
    if not isinstance(q, Mapping):
        raise ModelConfigError(f"{r.name}: 'quantization_config' must be an object")
    method = str(q.get("quant_method", "unknown"))
    fmt = _QUANT_FORMATS.get(method)
    if method in ("awq", "gptq") and q.get("bits", 4) != 4:
        fmt = None  # 8-bit/3-bit GPTQ: no matching format here; pass --weights
    elif method == "compressed-tensors":
        fmt = _compressed_tensors_format(q)
    elif method == "modelopt":
        fmt = _MODELOPT_FORMATS.get(str(q.get("quant_algo", "")).upper())
    block = q.get("weight_block_size")
    block_size: tuple[int, int] | None = None
    if block is not None:
        if not (
            isinstance(block, Sequence)
            and len(block) == 2
            and all(isinstance(b, int) and b > 0 for b in block)
        ):
            raise ModelConfigError(f"{r.name}: 'weight_block_size' must be two positive integers")
        block_size = (int(block[0]), int(block[1]))
    skipped = q.get("modules_to_not_convert") or q.get("ignore") or []
    attention_kept = _names_attention(skipped if isinstance(skipped, Iterable) else [])
    return QuantizationSpec(
        method=method,
        weight_format=fmt,
        weight_block_size=block_size,
        attention_quantized=not attention_kept,
    )


def _compressed_tensors_format(q: Mapping[str, Any]) -> WeightFormat | None:
    """llm-compressor checkpoints: the weight scheme of the first config group."""
    groups = q.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        return None
    first = next(iter(groups.values()))
    weights = first.get("weights") if isinstance(first, Mapping) else None
    if not isinstance(weights, Mapping):
        return None
    bits, kind = weights.get("num_bits"), weights.get("type")
    if bits == 8:
        return "fp8" if kind == "float" else "int8"
    if bits == 4 and kind == "float" and weights.get("group_size") == 16:
        return "nvfp4"
    if bits == 4 and kind == "int":
        return "int4-gptq"  # pack-quantized W4A16, group scales (+ zeros when asymmetric)
    return None


def _names_attention(modules: Iterable[Any]) -> bool:
    return any(isinstance(m, str) and ("self_attn" in m or ".attn" in m) for m in modules)


def _require_positive(key: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelConfigError(f"{key} must be a positive integer, got {value!r}")


def _require_tp(tp: int) -> None:
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise ValueError(f"tp must be a positive integer, got {tp!r}")
