"""Write a tiny random-weight llama GGUF that a stock ``llama-server`` loads and serves.

The model is meaningless (its output is noise) but real in every way the server cares about:
a 2-layer llama with grouped-query attention, RMSNorm, SwiGLU and RoPE, and a SentencePiece
(SPM) vocabulary of control tokens, the 256 byte tokens ``<0x00>``..``<0xFF>`` and the printable
ASCII characters as single pieces. A prompt of plain ASCII text therefore tokenises to one
token per character (space included, as ``▁``) plus BOS.

Weights are float32 drawn from a fixed-seed normal distribution (std 0.02), so the file is
the same byte for byte on every run. Default size: about 0.5 MB.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

UNK_ID = 0
BOS_ID = 1
EOS_ID = 2
SPM_SPACE = "\u2581"
"""SentencePiece's word-boundary marker, which stands for a space."""


@dataclass(frozen=True)
class TinyLlamaShape:
    """Hyper-parameters of the tiny model. Counts are plain integers, no units."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx_train: int = 2048
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.n_head % self.n_head_kv != 0:
            raise ValueError(
                f"n_head ({self.n_head}) must be a multiple of n_head_kv ({self.n_head_kv})"
            )
        if (self.n_embd // self.n_head) % 2 != 0:
            raise ValueError("head dimension n_embd / n_head must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def spm_vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Return (pieces, scores, token types) of the tiny SPM vocabulary.

    Ids 0..2 are ``<unk>``, ``<s>``, ``</s>``; ids 3..258 the byte pieces ``<0xNN>`` (the SPM
    fallback for anything not in the vocabulary); then one piece per printable ASCII character,
    the space written as ``▁``.
    """
    pieces = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    scores = [0.0, 0.0, 0.0]
    for byte in range(256):
        pieces.append(f"<0x{byte:02X}>")
        types.append(gguf.TokenType.BYTE)
        scores.append(0.0)
    chars = [SPM_SPACE] + [c for c in string.printable if c.isprintable() and c != " "]
    for rank, char in enumerate(chars):
        pieces.append(char)
        types.append(gguf.TokenType.NORMAL)
        scores.append(-float(rank))
    return pieces, scores, [int(t) for t in types]


def write_tiny_llama(path: Path, shape: TinyLlamaShape | None = None, seed: int = 0) -> Path:
    """Write the tiny model to ``path`` (a ``.gguf`` file) and return ``path``."""
    shape = shape or TinyLlamaShape()
    pieces, scores, types = spm_vocabulary()
    n_vocab = len(pieces)
    rng = np.random.default_rng(seed)

    def weight(*dims: int) -> np.ndarray:
        # numpy order is (rows=out, cols=in); ggml stores it reversed as ne = [in, out].
        return rng.normal(0.0, 0.02, size=dims).astype(np.float32)

    def norm() -> np.ndarray:
        return np.ones(shape.n_embd, dtype=np.float32)

    arch = "llama"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("rooftop-tiny-random-llama")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(UNK_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)

    kv_dim = shape.head_dim * shape.n_head_kv
    writer.add_tensor("token_embd.weight", weight(n_vocab, shape.n_embd))
    for layer in range(shape.n_layer):
        blk = f"blk.{layer}"
        writer.add_tensor(f"{blk}.attn_norm.weight", norm())
        writer.add_tensor(f"{blk}.attn_q.weight", weight(shape.n_embd, shape.n_embd))
        writer.add_tensor(f"{blk}.attn_k.weight", weight(kv_dim, shape.n_embd))
        writer.add_tensor(f"{blk}.attn_v.weight", weight(kv_dim, shape.n_embd))
        writer.add_tensor(f"{blk}.attn_output.weight", weight(shape.n_embd, shape.n_embd))
        writer.add_tensor(f"{blk}.ffn_norm.weight", norm())
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(shape.n_ff, shape.n_embd))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(shape.n_embd, shape.n_ff))
    writer.add_tensor("output_norm.weight", norm())
    writer.add_tensor("output.weight", weight(n_vocab, shape.n_embd))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
