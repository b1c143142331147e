"""``rooftop gpus`` and ``rooftop models``: the built-in catalogs, as a table or ``--json``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rooftop.classifiers.hardware import GPU_CATALOG, GpuSpec
from rooftop.classifiers.model_catalog import CatalogModel, catalog_models
from rooftop.classifiers.models import (
    active_parameter_count,
    kv_bytes_per_token,
    parameter_count,
)


def register(subparsers: Any) -> None:
    gpus = subparsers.add_parser(
        "gpus", help="list the GPU catalog (dense peaks, bandwidth, ridge point)"
    )
    gpus.add_argument("--json", action="store_true", help="print a JSON list")
    gpus.set_defaults(func=run_gpus)
    models = subparsers.add_parser(
        "models", help="list the built-in model architectures (parameters, KV bytes per token)"
    )
    models.add_argument("--json", action="store_true", help="print a JSON list")
    models.set_defaults(func=run_models)


def gpu_rows() -> list[dict[str, Any]]:
    """One object per catalog GPU: id, name, dense peaks by dtype (FLOP/s), bandwidth (B/s),
    BF16 ridge point (FLOP/byte, null without a BF16 peak)."""
    return [_gpu_row(spec) for spec in GPU_CATALOG]


def _gpu_row(spec: GpuSpec) -> dict[str, Any]:
    bf16 = spec.peak_flops_per_second.get("bf16")
    bandwidth = spec.memory_bandwidth_bytes_per_second
    return {
        "id": spec.id,
        "name": spec.name,
        "peak_flops_per_second": dict(spec.peak_flops_per_second),
        "memory_bandwidth_bytes_per_second": bandwidth,
        "ridge_point_flops_per_byte": None if bf16 is None else bf16 / bandwidth,
    }


def model_rows() -> list[dict[str, Any]]:
    """One object per built-in model: ids, parameters, active parameters, KV bytes per token
    (BF16, TP 1), default weight format, attention kind, experts and config source."""
    return [_model_row(entry) for entry in catalog_models()]


def _model_row(entry: CatalogModel) -> dict[str, Any]:
    arch = entry.architecture
    windows = sorted({w for w in arch.layer_windows if w is not None})
    attention = (
        "MLA"
        if arch.mla is not None
        else ("MHA" if arch.num_kv_heads == arch.num_attention_heads else "GQA")
    )
    if windows:
        sliding = sum(w is not None for w in arch.layer_windows)
        attention += (
            f", sliding {'/'.join(map(str, windows))} on {sliding}/{arch.num_layers} layers"
        )
    return {
        "id": entry.id,
        "hf_id": entry.hf_id,
        "parameters": parameter_count(arch),
        "active_parameters": active_parameter_count(arch),
        "layers": arch.num_layers,
        "kv_bytes_per_token_bf16": kv_bytes_per_token(arch, "bf16"),
        "default_weights": arch.default_weight_format,
        "attention": attention,
        "experts": None
        if arch.moe is None
        else {"routed": arch.moe.num_experts, "per_token": arch.moe.experts_per_token},
        "source": entry.source,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> str:
    """Fixed-width columns; those in ``right`` (numbers) right-aligned."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines) + "\n"


def _tflops(peaks: dict[str, float], dtype: str) -> str:
    value = peaks.get(dtype)
    return "-" if value is None else f"{value / 1e12:,.0f}"


def run_gpus(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    rows = gpu_rows()
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    header = ("id", "name", "bf16 TF", "fp8 TF", "fp4 TF", "TB/s", "ridge bf16")
    table = [
        (
            r["id"],
            r["name"],
            _tflops(r["peak_flops_per_second"], "bf16"),
            _tflops(r["peak_flops_per_second"], "fp8"),
            _tflops(r["peak_flops_per_second"], "fp4"),
            f"{r['memory_bandwidth_bytes_per_second'] / 1e12:.2f}",
            "-"
            if r["ridge_point_flops_per_byte"] is None
            else f"{r['ridge_point_flops_per_byte']:.0f}",
        )
        for r in rows
    ]
    out.write(_table(header, table, {2, 3, 4, 5, 6}))
    out.write("Dense tensor-core peaks (no 2:4 sparsity), spec memory bandwidth.\n")
    return 0


def run_models(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    rows = model_rows()
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    header = ("id", "hf id", "params B", "active B", "KV B/token", "weights", "attention")
    table = [
        (
            r["id"],
            r["hf_id"],
            f"{r['parameters'] / 1e9:.2f}",
            f"{r['active_parameters'] / 1e9:.2f}",
            f"{r['kv_bytes_per_token_bf16']:,.0f}",
            r["default_weights"],
            r["attention"]
            + (
                ""
                if r["experts"] is None
                else f"; MoE {r['experts']['routed']} experts, top-{r['experts']['per_token']}"
            ),
        )
        for r in rows
    ]
    out.write(_table(header, table, {2, 3, 4}))
    out.write(
        "KV bytes per token at BF16 and TP 1. Any HF name of these (org/name, -Instruct, a "
        "local path) or a config.json path works as --model.\n"
    )
    return 0
