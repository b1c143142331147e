"""Which model an engine serves, in which weight and KV formats, for the roofline.

Order of evidence: the engine's config entry (model id or a local ``config.json`` path, weight
and KV formats), then what the engine's exposition says (model name, KV cache dtype), then the
checkpoint's declared quantization, then hints in the model name (``-FP8``, ``-AWQ``), then BF16.
No network download, ever: an unknown model leaves the roofline empty and says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rooftop.classifiers.model_catalog import UnknownModelError, lookup_model, resolve_model_id
from rooftop.classifiers.models import (
    KV_DTYPES,
    WEIGHT_FORMATS,
    KvDtype,
    ModelArchitecture,
    ModelConfigError,
    WeightFormat,
    architecture_from_hf_config,
)
from rooftop.exporter.settings import EngineConfig
from rooftop.exporter.sources.engines.base import EngineReading

_NAME_HINTS: tuple[tuple[str, WeightFormat], ...] = (
    (r"nvfp4", "nvfp4"),
    (r"mxfp4", "mxfp4"),
    (r"(^|[-_/.])awq($|[-_/.])", "int4-awq"),
    (r"gptq.*int8|int8.*gptq|w8a16", "int8"),
    (r"(^|[-_/.])gptq|int4", "int4-gptq"),
    (r"(^|[-_/.])fp8($|[-_/.])|w8a8", "fp8"),
    (r"(^|[-_/.])int8($|[-_/.])", "int8"),
)
_KV_ALIASES: dict[str, KvDtype] = {
    "bfloat16": "bf16",
    "bf16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "fp16": "fp16",
    "fp8": "fp8",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
    "fp8_inc": "fp8",
}


@dataclass(frozen=True)
class ResolvedModel:
    key: str
    """What the engine or config called the model."""
    resolved_id: str | None
    """Catalog id or config.json path used; None when unresolved."""
    arch: ModelArchitecture | None
    weights: WeightFormat | None
    kv_dtype: KvDtype
    weights_from: str
    error: str | None = None


def load_config_json(path: str) -> ModelArchitecture:
    """A model from a local HF ``config.json``."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ModelConfigError(f"{path}: not valid JSON ({exc})") from None
    name = file.parent.name if file.name == "config.json" else file.stem
    return architecture_from_hf_config(data, name, source=path)


def kv_dtype_from_engine(cache_dtype: str | None) -> KvDtype | None:
    """vLLM/SGLang ``cache_dtype``; ``auto`` means the model dtype (None: decide elsewhere)."""
    if not cache_dtype:
        return None
    return _KV_ALIASES.get(cache_dtype.strip().lower())


def weights_from_name(name: str) -> WeightFormat | None:
    lowered = name.lower()
    for pattern, fmt in _NAME_HINTS:
        if re.search(pattern, lowered):
            return fmt
    return None


def resolve_model(
    key: str,
    config: EngineConfig,
    reading: EngineReading | None,
    cached: ResolvedModel | None = None,
) -> ResolvedModel:
    """Resolve ``key``; with ``cached`` only the formats are re-read (the engine may say its
    KV dtype only after start-up), the architecture is reused."""
    arch: ModelArchitecture | None
    resolved_id: str | None
    error = None
    if cached is not None and cached.arch is not None:
        arch, resolved_id = cached.arch, cached.resolved_id
    else:
        arch = None
        resolved_id = None
        try:
            # Only the operator's own config may name a file; a model name the engine reports
            # is never read from disk.
            if key == config.model and key.endswith(".json") and Path(key).is_file():
                arch = load_config_json(key)
                resolved_id = key
            else:
                resolved_id = resolve_model_id(key)
                arch = lookup_model(resolved_id)
        except UnknownModelError as exc:
            error = f"{exc}; set the engine's `model` to a catalog id or a config.json path"
            resolved_id = None
        except ModelConfigError as exc:
            error = str(exc)
            resolved_id = None
    weights: WeightFormat | None
    if config.weights is not None:
        weights, weights_from = config.weights, "config"
    elif reading is not None and reading.weights_dtype in WEIGHT_FORMATS:
        weights, weights_from = reading.weights_dtype, "engine"
    elif arch is not None and arch.declared_weight_format is not None:
        weights, weights_from = arch.declared_weight_format, "checkpoint"
    elif (hint := weights_from_name(key)) is not None:
        weights, weights_from = hint, "model name"
    else:
        weights, weights_from = "bf16", "default"
    kv: KvDtype = "bf16"
    if config.kv_dtype is not None:
        kv = config.kv_dtype
    elif reading is not None and (engine_kv := kv_dtype_from_engine(reading.kv_cache_dtype)):
        kv = engine_kv
    assert kv in KV_DTYPES
    return ResolvedModel(
        key=key,
        resolved_id=resolved_id,
        arch=arch,
        weights=weights,
        kv_dtype=kv,
        weights_from=weights_from,
        error=error,
    )
