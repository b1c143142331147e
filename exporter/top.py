"""What ``rooftop top`` shows, read from a rooftop exporter's ``/metrics`` text. Pure: no I/O.

One row per target (a GPU with the engine on it, a GPU with no engine, or an engine whose GPUs
cannot be seen), joined from the per-target, per-engine and per-GPU series of the exposition.
A GPU that is down and has no target series still gets a row, so a lost GPU is never hidden.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from rooftop.exporter.sources.exposition import ExpositionError, parse_exposition

TargetKey = tuple[str, str, str, str]
"""``(gpu, uuid, engine, model)``: the labels of a roofline target."""


class NotRooftopError(ValueError):
    """The text is not a rooftop exporter's exposition; the message says what it looks like."""


@dataclass(frozen=True)
class TopRow:
    """One target. ``None``: the exporter did not say (unknown, never zero)."""

    gpu: str
    uuid: str
    engine: str
    model: str
    gpu_up: bool | None
    state: str | None
    """``unknown``, ``idle``, ``memory``, ``compute``, ``latency``; ``None`` with no verdict."""
    evidence: str | None
    reason: str | None
    prefill_tokens_per_second: float | None
    decode_tokens_per_second: float | None
    batch: float | None
    decode_speed_of_light_ratio: float | None
    decode_arithmetic_intensity: float | None
    """FLOP/byte of a decode step from the model (``basis="model"``)."""
    ridge_point_flops_per_byte: float | None


@dataclass(frozen=True)
class TopView:
    version: str
    demo: bool
    rows: tuple[TopRow, ...]
    sources_down: tuple[str, ...]
    snapshot_age_seconds: float | None


def _samples(families: dict[str, Metric], name: str) -> list[tuple[dict[str, str], float]]:
    family = families.get(name)
    if family is None:
        return []
    return [
        (dict(sample.labels), float(sample.value))
        for sample in family.samples
        if sample.name == name and math.isfinite(sample.value)
    ]


def _target_key(labels: dict[str, str]) -> TargetKey:
    return (
        labels.get("gpu", ""),
        labels.get("uuid", ""),
        labels.get("engine", ""),
        labels.get("model", ""),
    )


def _by_target(families: dict[str, Metric], name: str, **where: str) -> dict[TargetKey, float]:
    return {
        _target_key(labels): value
        for labels, value in _samples(families, name)
        if all(labels.get(k) == v for k, v in where.items())
    }


def _by_engine(families: dict[str, Metric], name: str) -> dict[tuple[str, str], float]:
    return {
        (labels.get("engine", ""), labels.get("model", "")): value
        for labels, value in _samples(families, name)
    }


def _by_gpu(families: dict[str, Metric], name: str) -> dict[tuple[str, str], float]:
    return {
        (labels.get("gpu", ""), labels.get("uuid", "")): value
        for labels, value in _samples(families, name)
    }


def _gpu_order(gpu: str) -> tuple[int, str]:
    return (int(gpu), "") if gpu.isdigit() else (1 << 30, gpu)


def parse_top(text: str) -> TopView:
    """The table rows of an exposition. Raises :class:`NotRooftopError` naming what was found
    when ``text`` is not a rooftop exposition."""
    try:
        families = parse_exposition(text)
    except ExpositionError as error:
        raise NotRooftopError(f"not a rooftop exporter: {error}") from None
    build = _samples(families, "rooftop_build_info")
    if not build:
        prefixes = sorted({re.split(r"[_:]", name, maxsplit=1)[0] for name in families})
        seen = ", ".join(prefixes[:8]) or "no metrics at all"
        raise NotRooftopError(
            f"no rooftop_build_info, so not a rooftop exporter (metric prefixes seen: {seen}); "
            "point --url at `rooftop serve`'s /metrics"
        )
    build_labels = build[0][0]

    verdicts: dict[TargetKey, tuple[str, str, str]] = {}
    for labels, _ in _samples(families, "rooftop_gpu_bound_info"):
        verdicts[_target_key(labels)] = (
            labels.get("state", ""),
            labels.get("evidence", ""),
            labels.get("reason", ""),
        )
    sol = _by_target(families, "rooftop_decode_speed_of_light_ratio")
    intensity = _by_target(
        families, "rooftop_arithmetic_intensity_flops_per_byte", phase="decode", basis="model"
    )
    per_token = _by_target(families, "rooftop_decode_bytes_per_token")
    keys = set(verdicts) | set(sol) | set(intensity) | set(per_token)

    gpu_up = {key: value == 1.0 for key, value in _by_gpu(families, "rooftop_gpu_up").items()}
    covered = {(gpu, uuid) for gpu, uuid, _, _ in keys}
    keys |= {(gpu, uuid, "", "") for gpu, uuid in gpu_up if (gpu, uuid) not in covered}

    ridge = _by_gpu(families, "rooftop_gpu_ridge_point_flops_per_byte")
    prefill = _by_engine(families, "rooftop_engine_prefill_tokens_per_second")
    decode = _by_engine(families, "rooftop_engine_decode_tokens_per_second")
    running = _by_engine(families, "rooftop_engine_requests_running")

    rows = []
    for key in sorted(keys, key=lambda k: (_gpu_order(k[0]), k[2], k[3], k[1])):
        gpu, uuid, engine, model = key
        state, evidence, reason = verdicts.get(key, (None, None, None))
        rows.append(
            TopRow(
                gpu=gpu,
                uuid=uuid,
                engine=engine,
                model=model,
                gpu_up=gpu_up.get((gpu, uuid)),
                state=state,
                evidence=evidence,
                reason=reason,
                prefill_tokens_per_second=prefill.get((engine, model)),
                decode_tokens_per_second=decode.get((engine, model)),
                batch=running.get((engine, model)),
                decode_speed_of_light_ratio=sol.get(key),
                decode_arithmetic_intensity=intensity.get(key),
                ridge_point_flops_per_byte=ridge.get((gpu, uuid)),
            )
        )
    down = tuple(
        sorted(
            labels.get("source", "")
            for labels, value in _samples(families, "rooftop_source_up")
            if value == 0.0
        )
    )
    ages = _samples(families, "rooftop_snapshot_age_seconds")
    return TopView(
        version=build_labels.get("version", ""),
        demo=build_labels.get("demo") == "true",
        rows=tuple(rows),
        sources_down=down,
        snapshot_age_seconds=ages[0][1] if ages else None,
    )


# --- cell text -------------------------------------------------------------------------------

MISSING = "–"


def format_rate(value: float | None) -> str:
    """Tokens/s for a narrow column: ``0``, ``42.5``, ``950``, ``12.3k``, ``1.2M``."""
    if value is None:
        return MISSING
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.1f}k"
    if value >= 100 or value == 0:
        return f"{value:.0f}"
    return f"{value:.1f}"


def format_ratio(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0%}"


def format_batch(value: float | None) -> str:
    return MISSING if value is None else f"{value:g}"


def format_intensity(row: TopRow) -> str:
    """``AI 1.0 < 295``: the decode step's intensity against this GPU's ridge point."""
    ai, ridge = row.decode_arithmetic_intensity, row.ridge_point_flops_per_byte
    if ai is None and ridge is None:
        return MISSING

    def number(value: float | None) -> str:
        if value is None:
            return "?"
        return f"{value:.0f}" if value >= 100 else f"{value:.1f}"

    relation = "≥" if ai is not None and ridge is not None and ai >= ridge else "<"
    if ai is None or ridge is None:
        relation = "vs"
    return f"{number(ai)} {relation} {number(ridge)}"


def verdict_text(row: TopRow) -> str:
    if row.state:
        return row.state
    if row.gpu_up is False:
        return "GPU down"
    return MISSING


def reason_text(row: TopRow) -> str:
    """The verdict's reason without its leading ``state:`` (the verdict column has it)."""
    if row.reason is None:
        return ""
    prefix = f"{row.state}: "
    return row.reason[len(prefix) :] if row.state and row.reason.startswith(prefix) else row.reason


# --- a top's parts: sparkline, sort, node totals ------------------------------------------------

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
SORT_KEYS = ("gpu", "sol", "decode", "prefill", "batch", "verdict")
"""``gpu``: by GPU index then engine; the others largest first (``verdict``: by state name)."""
STATE_ORDER = ("compute", "memory", "latency", "idle", "unknown")


def sparkline(values: list[float | None], width: int) -> str:
    """The last ``width`` ratios as block characters on a fixed 0-100 % scale (so two GPUs'
    lines compare); a gap (``None``) is a space; left-padded to ``width``."""
    cells = []
    for value in values[-width:] if width > 0 else []:
        if value is None or not math.isfinite(value):
            cells.append(" ")
            continue
        level = min(len(SPARK_BLOCKS) - 1, max(0, int(value * len(SPARK_BLOCKS))))
        cells.append(SPARK_BLOCKS[level])
    return "".join(cells).rjust(width)


def row_key(row: TopRow) -> TargetKey:
    return (row.gpu, row.uuid, row.engine, row.model)


def sort_rows(rows: tuple[TopRow, ...], key: str, reverse: bool = False) -> list[TopRow]:
    """Rows by ``key`` (one of :data:`SORT_KEYS`); unknown values always last."""
    if key not in SORT_KEYS:
        raise ValueError(f"sort key must be one of {', '.join(SORT_KEYS)}, got {key!r}")
    natural = sorted(rows, key=lambda r: (_gpu_order(r.gpu), r.engine, r.model, r.uuid))
    if key == "gpu":
        return natural[::-1] if reverse else natural
    if key == "verdict":

        def rank(row: TopRow) -> float:
            state = row.state or "unknown"
            return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)

        ordered = sorted(natural, key=rank)
        return ordered[::-1] if reverse else ordered
    field = {
        "sol": "decode_speed_of_light_ratio",
        "decode": "decode_tokens_per_second",
        "prefill": "prefill_tokens_per_second",
        "batch": "batch",
    }[key]
    known = [r for r in natural if getattr(r, field) is not None]
    unknown = [r for r in natural if getattr(r, field) is None]
    known.sort(key=lambda r: getattr(r, field), reverse=not reverse)
    return known + unknown


@dataclass(frozen=True)
class NodeTotals:
    gpus: int
    gpus_down: int
    engines: int
    decode_tokens_per_second: float
    prefill_tokens_per_second: float
    states: dict[str, int]


def node_totals(view: TopView) -> NodeTotals:
    """What the header line sums: each GPU and engine once (an engine on two GPUs is one
    engine, its tokens counted once), the verdicts per state."""
    gpus = {(r.gpu, r.uuid): r.gpu_up for r in view.rows if r.uuid}
    engines: dict[tuple[str, str], TopRow] = {}
    for row in view.rows:
        if row.engine:
            engines.setdefault((row.engine, row.model), row)
    states: dict[str, int] = {}
    for row in view.rows:
        if row.engine or row.state:
            state = row.state or "unknown"
            states[state] = states.get(state, 0) + 1
    return NodeTotals(
        gpus=len(gpus),
        gpus_down=sum(1 for up in gpus.values() if up is False),
        engines=len(engines),
        decode_tokens_per_second=sum(r.decode_tokens_per_second or 0.0 for r in engines.values()),
        prefill_tokens_per_second=sum(r.prefill_tokens_per_second or 0.0 for r in engines.values()),
        states=states,
    )


__all__ = [
    "SORT_KEYS",
    "NodeTotals",
    "NotRooftopError",
    "TopRow",
    "TopView",
    "format_batch",
    "format_intensity",
    "format_rate",
    "format_ratio",
    "node_totals",
    "parse_top",
    "reason_text",
    "row_key",
    "sort_rows",
    "sparkline",
    "verdict_text",
]
