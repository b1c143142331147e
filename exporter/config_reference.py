"""``docs/configuration.md``: every YAML key of ``rooftop serve`` with its default, generated
from the settings model itself (:class:`~rooftop.exporter.settings.Settings` and the models it
nests), so the reference cannot drift from what the loader accepts. A test compares the
committed file with :func:`configuration_markdown`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from rooftop.exporter.settings import EngineConfig, GpuOverride, Settings
from rooftop.exporter.sources.engines.generic import GenericConfig


def _flags() -> dict[str, str]:
    """``rooftop serve``'s flag for each settings field it sets (by argparse ``dest``)."""
    from rooftop.exporter.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve = action.choices["serve"]
            return {
                a.dest: " / ".join(a.option_strings)
                for a in serve._actions
                if a.option_strings and a.dest in Settings.model_fields
            }
    return {}


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _bound(constraint: Any) -> str:
    """``≥ 0.05`` for a ``Ge(0.05)`` metadata item; empty for anything that is not a bound."""
    for attribute, symbol in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        value = getattr(constraint, attribute, None)
        if value is not None and type(constraint).__name__.lower() == attribute:
            return f"{symbol} {value:g}"
    return ""


def _type(field: FieldInfo) -> str:
    text = str(field.annotation).replace("typing.", "").replace("pathlib.", "")
    # Validators wrapped in Annotated print as function reprs (addresses change every run).
    text = re.sub(r"Annotated\[([\w.]+), [^\]]*\]", r"\1", text)
    text = re.sub(r"(?:[a-z_]+\.)+([A-Z]\w*)", r"\1", text)
    for model in (EngineConfig, GpuOverride):
        text = text.replace(f"{model.__module__}.{model.__name__}", model.__name__)
    return text.replace("<class '", "").replace("'>", "").replace("|", "\\|")


def _table(model: type[BaseModel], prefix: str, flags: dict[str, str]) -> list[str]:
    header = "| key | type | default | flag / environment | meaning |"
    lines = [header, "| --- | --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        where = ""
        if model is Settings:
            env = f"`ROOFTOP_{name.upper()}`"
            where = f"`{flags[name]}`, {env}" if name in flags else env
        meaning = " ".join((field.description or "").split()).replace("``", "`")
        constraints = [_bound(m) for m in field.metadata if _bound(m)]
        if constraints:
            meaning = f"{meaning} ({', '.join(constraints)})".strip()
        lines.append(
            f"| `{prefix}{name}` | {_type(field)} | {_default(field)} | {where or '—'} | "
            f"{meaning.replace('|', '/')} |"
        )
    return lines


GENERIC_MEANINGS: dict[str, str] = {
    "generation_tokens": "Counter of generated tokens (required).",
    "prompt_tokens": "Counter of prompt tokens.",
    "requests_running": "Gauge of requests in the running batch.",
    "requests_waiting": "Gauge of queued requests.",
    "kv_usage_ratio": "Gauge of the KV cache's used share, 0-1.",
    "kv_capacity_tokens": "Gauge of the KV cache's capacity in tokens.",
    "model": "The model's name when the exposition has no label for it.",
    "model_label": "The label that carries the model's name.",
    "label_filters": "`{label: value}`: only series carrying these label values are summed.",
}
"""Meanings of the generic adapter's keys (a dataclass: its attribute docs are not introspected;
a test checks every field is here)."""


def _generic_table() -> list[str]:
    lines = [
        "| key | type | default | flag / environment | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in dataclasses.fields(GenericConfig):
        if f.default is not dataclasses.MISSING:
            default = "unset" if f.default is None else f"`{json.dumps(f.default)}`"
        else:
            default = "required"
        kind = str(f.type).replace("|", "\\|")
        lines.append(
            f"| `engines[].generic.{f.name}` | {kind} | {default} | — | "
            f"{GENERIC_MEANINGS.get(f.name, '')} |"
        )
    return lines


def configuration_markdown() -> str:
    """The whole reference page."""
    flags = _flags()
    lines = [
        "# Configuration reference",
        "",
        "Generated from the settings model in `exporter/settings.py` "
        "(`python scripts/regenerate_reference.py`); a test fails when it drifts.",
        "",
        "`rooftop serve --config FILE` reads a YAML mapping of these keys (dashes or "
        "underscores). Precedence, highest first: flags, `ROOFTOP_*` environment variables, "
        "the file, the defaults. Every key and value is checked at start: an unknown key, a "
        "typo'd GPU id or dtype, or a bad value exits with status 2, naming the field and the "
        "closest valid spelling.",
        "",
        "```yaml",
        "interval_seconds: 1",
        "engines:",
        "  - url: http://127.0.0.1:8000/metrics",
        "    name: llama-8b",
        "    gpus: [0, 1]",
        "gpu_overrides:",
        "  h100-sxm:",
        "    memory_bandwidth_bytes_per_second: 3.0e12",
        "    note: measured with a STREAM copy",
        "```",
        "",
        "## Top-level keys",
        "",
        *_table(Settings, "", flags),
        "",
        "## `engines[]`: one engine endpoint",
        "",
        "`ROOFTOP_ENGINES` and `--engine` also take bare URLs (comma-separated, or JSON).",
        "",
        *_table(EngineConfig, "engines[].", flags),
        "",
        "## `engines[].generic`: an in-house server's metric names",
        "",
        *_generic_table(),
        "",
        "## `gpu_overrides.<id>`: replace catalog peaks",
        "",
        "The key is a catalog id (`rooftop gpus` lists them; an NVML name is taken as its id) "
        "or a GPU UUID (`GPU-...`, `MIG-...`).",
        "",
        *_table(GpuOverride, "gpu_overrides.<id>.", flags),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(configuration_markdown())
