"""``rooftop probe URL|FILE``: read one engine exposition and say what rooftop makes of it.

Prints which engine and version line it recognised and why, what it extracted, and what it could
not find with how to enable it. ``--watch S`` reads twice, S seconds apart, and prints rates
(a counter that went down was reset: its increase is its new value, never negative).
``--json`` prints one JSON object instead (keys listed in :data:`JSON_KEYS`, then extras).

Exit codes: 0 read and recognised; 1 the URL could not be read; 2 bad input (no such file,
not an exposition, no engine recognised: the metric-name prefixes seen are listed).

``--replay RECORDING`` runs the pipeline on a ``rooftop record`` file instead (see
:mod:`rooftop.exporter.commands.replay_report`): 0 the verdicts match the recording, 1 some
cycle differs, 2 not a recording this rooftop can replay.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from rooftop.exporter.rates import counter_increase
from rooftop.exporter.sources.engine import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT_SECONDS,
    EngineFetchError,
    EngineSource,
    EngineSourceError,
    EngineUnrecognisedError,
)
from rooftop.exporter.sources.engines import detect_engine
from rooftop.exporter.sources.engines.base import (
    EngineReading,
    UnrecognisedExpositionError,
    missing_names,
)
from rooftop.exporter.sources.exposition import ExpositionError, parse_exposition

JSON_KEYS: Final[tuple[str, ...]] = (
    "engine",
    "model",
    "prompt_tokens_total",
    "generation_tokens_total",
    "requests_running",
    "requests_waiting",
    "kv_usage_ratio",
    "kv_capacity_tokens",
    "missing",
)
"""The fixed leading keys of ``--json`` output (null where unknown)."""

COUNTERS: Final[tuple[str, ...]] = (
    "prompt_tokens_total",
    "prefill_computed_tokens_total",
    "generation_tokens_total",
    "estimated_flops_total",
    "estimated_read_bytes_total",
    "estimated_write_bytes_total",
    "preemptions_total",
    "prefix_cache_queries_total",
    "prefix_cache_hits_total",
)
COUNTER_UNITS: Final[dict[str, tuple[str, str]]] = {
    "prompt_tokens_total": ("prompt tokens", "tokens/s"),
    "prefill_computed_tokens_total": ("prefill computed", "tokens/s"),
    "generation_tokens_total": ("generated tokens", "tokens/s"),
    "estimated_flops_total": ("engine FLOPs", "FLOP/s"),
    "estimated_read_bytes_total": ("engine bytes read", "B/s"),
    "estimated_write_bytes_total": ("engine bytes written", "B/s"),
    "preemptions_total": ("preemptions", "requests/s"),
    "prefix_cache_queries_total": ("prefix-cache lookups", "tokens/s"),
    "prefix_cache_hits_total": ("prefix-cache hits", "tokens/s"),
}
"""Each counter's row label and the unit of its rate in ``--watch``."""
HISTOGRAM_UNITS: Final[dict[str, tuple[str, str, float]]] = {
    "inter_token_latency_sum_count": ("inter-token latency", "ms", 1e3),
    "time_to_first_token_sum_count": ("time to first token", "ms", 1e3),
    "iteration_tokens_sum_count": ("tokens per step", "tokens", 1.0),
}
"""Each histogram's row label, the unit of its window mean, and the scale from base units."""
HISTOGRAMS: Final[tuple[str, ...]] = (
    "inter_token_latency_sum_count",
    "time_to_first_token_sum_count",
    "iteration_tokens_sum_count",
)


class ProbeInputError(Exception):
    """The argument names no readable file or URL."""


@dataclass(frozen=True)
class WindowRates:
    """Rates over one ``--watch`` window."""

    seconds: float
    per_second: dict[str, float | None]
    """``<counter>`` -> increase per second (``None`` where either read lacked it)."""
    window_means: dict[str, float | None]
    """``<histogram>`` -> Δsum/Δcount over the window (``None`` with no new observations)."""
    resets: tuple[str, ...]
    """Counters that went down between the reads."""


def window_rates(before: EngineReading, after: EngineReading, seconds: float) -> WindowRates:
    """Reset-aware rates between two readings ``seconds`` apart."""
    if not seconds > 0:
        raise ValueError(f"window must be > 0 s, got {seconds}")
    per_second: dict[str, float | None] = {}
    resets: list[str] = []
    for name in COUNTERS:
        old, new = getattr(before, name), getattr(after, name)
        if old is None or new is None:
            per_second[name] = None
            continue
        if new < old:
            resets.append(name)
        per_second[name] = counter_increase(old, new) / seconds
    means: dict[str, float | None] = {}
    for name in HISTOGRAMS:
        old_pair, new_pair = getattr(before, name), getattr(after, name)
        if old_pair is None or new_pair is None:
            means[name] = None
            continue
        if new_pair[1] < old_pair[1] or new_pair[0] < old_pair[0]:
            resets.append(name)
        d_sum = counter_increase(old_pair[0], new_pair[0])
        d_count = counter_increase(old_pair[1], new_pair[1])
        means[name] = d_sum / d_count if d_count > 0 else None
    return WindowRates(seconds, per_second, means, tuple(resets))


def reading_json(reading: EngineReading, rates: WindowRates | None = None) -> dict[str, Any]:
    """The ``--json`` object: :data:`JSON_KEYS` first, then every other field and the rates."""
    out: dict[str, Any] = {
        "engine": reading.family,
        "model": reading.model,
        "prompt_tokens_total": reading.prompt_tokens_total,
        "generation_tokens_total": reading.generation_tokens_total,
        "requests_running": reading.requests_running,
        "requests_waiting": reading.requests_waiting,
        "kv_usage_ratio": reading.kv_usage_ratio,
        "kv_capacity_tokens": reading.kv_capacity_tokens,
        "missing": list(missing_names(reading)),
        "version_family": reading.version_family,
        "recognised_because": reading.recognised_because,
        "prefill_computed_tokens_total": reading.prefill_computed_tokens_total,
        "kv_block_size_tokens": reading.kv_block_size_tokens,
        "kv_cache_dtype": reading.kv_cache_dtype,
        "weights_dtype": reading.weights_dtype,
        "estimated_flops_total": reading.estimated_flops_total,
        "estimated_read_bytes_total": reading.estimated_read_bytes_total,
        "estimated_write_bytes_total": reading.estimated_write_bytes_total,
        "inter_token_latency_sum_count": _pair(reading.inter_token_latency_sum_count),
        "time_to_first_token_sum_count": _pair(reading.time_to_first_token_sum_count),
        "iteration_tokens_sum_count": _pair(reading.iteration_tokens_sum_count),
        "missing_hints": {
            entry.split(":", 1)[0]: entry.split(":", 1)[1].strip()
            for entry in reading.missing
            if ":" in entry
        },
    }
    if rates is not None:
        out["window_seconds"] = rates.seconds
        out["rates_per_second"] = dict(rates.per_second)
        out["window_means"] = dict(rates.window_means)
        out["counter_resets"] = list(rates.resets)
    return out


def _pair(value: tuple[float, float] | None) -> list[float] | None:
    return list(value) if value is not None else None


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e15:
        text = f"{int(value):,}"
    elif abs(value) >= 1e6 or abs(value) < 1e-3:
        text = f"{value:.4g}"
    else:
        text = f"{value:,.3f}"
    return f"{text} {unit}".rstrip()


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _mean(pair: tuple[float, float] | None, scale: float, unit: str) -> str:
    if pair is None:
        return "-"
    total, count = pair
    if count <= 0:
        return f"no observations yet (sum {total:g}, count 0)"
    return f"{total / count * scale:.3f} {unit} mean over {_number(count)}"


def render_text(reading: EngineReading, rates: WindowRates | None = None) -> str:
    """The human-readable report."""
    rows: list[tuple[str, str]] = [
        ("engine", f"{reading.family} ({reading.version_family})"),
        ("recognised", reading.recognised_because),
        ("model", reading.model or "-"),
        ("prompt tokens", _number(reading.prompt_tokens_total, "tokens")),
        ("prefill computed", _number(reading.prefill_computed_tokens_total, "tokens")),
        ("generated tokens", _number(reading.generation_tokens_total, "tokens")),
        ("running requests", _number(reading.requests_running, "requests")),
        ("waiting requests", _number(reading.requests_waiting, "requests")),
        ("KV use", _ratio(reading.kv_usage_ratio)),
        ("KV capacity", _number(reading.kv_capacity_tokens, "tokens")),
        ("KV block size", _number(_as_float(reading.kv_block_size_tokens), "tokens")),
        ("KV cache dtype", reading.kv_cache_dtype or "-"),
        ("weights dtype", reading.weights_dtype or "-"),
        ("engine FLOPs", _number(reading.estimated_flops_total, "FLOP")),
        ("engine bytes read", _number(reading.estimated_read_bytes_total, "B")),
        ("engine bytes written", _number(reading.estimated_write_bytes_total, "B")),
        ("preemptions", _number(reading.preemptions_total, "requests")),
        ("prefix-cache lookups", _number(reading.prefix_cache_queries_total, "tokens")),
        ("prefix-cache hits", _number(reading.prefix_cache_hits_total, "tokens")),
        ("prefix-cache hit rate", _ratio(reading.prefix_cache_hit_ratio)),
        ("inter-token latency", _mean(reading.inter_token_latency_sum_count, 1e3, "ms")),
        ("time to first token", _mean(reading.time_to_first_token_sum_count, 1e3, "ms")),
        ("tokens per step", _mean(reading.iteration_tokens_sum_count, 1.0, "tokens")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    if rates is not None:
        lines.append("")
        lines.extend(watch_table(rates))
        if rates.resets:
            lines.append("  counter reset seen (engine restarted?): " + ", ".join(rates.resets))
    if reading.missing:
        lines.append("")
        lines.append("not found:")
        lines.extend(f"  {entry}" for entry in reading.missing)
    return "\n".join(lines) + "\n"


def watch_table(rates: WindowRates) -> list[str]:
    """``--watch`` figures as aligned columns: quantity, value (right-aligned), unit."""
    rows: list[tuple[str, str, str]] = []
    for name, rate in rates.per_second.items():
        label, unit = COUNTER_UNITS[name]
        rows.append((label, _figure(rate), unit))
    for name, mean in rates.window_means.items():
        label, unit, scale = HISTOGRAM_UNITS[name]
        rows.append((f"{label} (mean)", _figure(None if mean is None else mean * scale), unit))
    label_width = max(len(row[0]) for row in rows)
    value_width = max(len(row[1]) for row in rows)
    header = f"  {'over ' + format(rates.seconds, 'g') + ' s':<{label_width}}  "
    header += f"{'value':>{value_width}}  unit"
    return [header] + [
        f"  {label:<{label_width}}  {value:>{value_width}}  {unit if value != '-' else ''}".rstrip()
        for label, value, unit in rows
    ]


def _figure(value: float | None) -> str:
    """A number for a column: thousands separated, three significant decimals below 1000."""
    if value is None:
        return "-"
    if abs(value) >= 1e15 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:,.3f}"


def _as_float(value: int | None) -> float | None:
    return None if value is None else float(value)


def _is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def reader_for(target: str, timeout_seconds: float) -> Callable[[], EngineReading]:
    """A function reading ``target`` (URL or file) once into an :class:`EngineReading`."""
    if _is_url(target):
        # Raw counters: probe shows what the engine exposes and detects resets itself.
        source = EngineSource(
            "probe", target, timeout_seconds=timeout_seconds, correct_resets=False
        )
        return source.poll
    path = Path(target)

    def read_file() -> EngineReading:
        try:
            with path.open("rb") as handle:
                body = handle.read(DEFAULT_MAX_BODY_BYTES + 1)
        except OSError as err:
            raise ProbeInputError(
                f"cannot read {target}: {err.strerror or err} "
                "(give an http:// URL or an exposition file)"
            ) from None
        if len(body) > DEFAULT_MAX_BODY_BYTES:
            raise ExpositionError(f"{target} is over {DEFAULT_MAX_BODY_BYTES} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ExpositionError(f"{target} is not UTF-8 text (binary data?)") from None
        families = parse_exposition(text)
        adapter, _reason = detect_engine(families)
        return adapter.extract(families)

    return read_file


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else sys.stderr
    if getattr(args, "replay", None) is not None:
        from rooftop.exporter.commands.replay_report import run_replay

        return run_replay(
            args.replay, stdout, stderr, json_output=args.json, exposition=args.exposition
        )
    if args.target is None:
        stderr.write("rooftop probe: give an engine URL or exposition file, or --replay FILE\n")
        return 2
    watch: float | None = args.watch
    if watch is not None and not (math.isfinite(watch) and watch > 0):
        stderr.write(f"rooftop probe: --watch must be a number of seconds > 0, got {watch}\n")
        return 2
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        stderr.write(f"rooftop probe: --timeout must be seconds > 0, got {args.timeout}\n")
        return 2
    read = reader_for(args.target, args.timeout)
    try:
        reading = read()
        rates = None
        if watch is not None:
            started = time.monotonic()
            time.sleep(watch)
            second = read()
            rates = window_rates(reading, second, time.monotonic() - started)
            reading = second
    except (ProbeInputError, ExpositionError, UnrecognisedExpositionError) as error:
        stderr.write(f"rooftop probe: {error}\n")
        return 2
    except EngineUnrecognisedError as error:
        stderr.write(f"rooftop probe: {error}\n")
        return 2
    except EngineFetchError as error:
        stderr.write(f"rooftop probe: {error}\n")
        return 1
    except EngineSourceError as error:  # parse errors of a fetched body: bad input
        stderr.write(f"rooftop probe: {error}\n")
        return 2
    if args.json:
        stdout.write(json.dumps(reading_json(reading, rates), indent=2) + "\n")
    else:
        stdout.write(render_text(reading, rates))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="read one engine /metrics (URL or file) and show what rooftop extracts",
        description=(
            "Fetch one inference engine's Prometheus exposition (or read it from a file), "
            "say which engine it is, what rooftop extracts, and what is missing and how to "
            "enable it."
        ),
    )
    parser.add_argument(
        "target", metavar="URL|FILE", nargs="?", help="e.g. http://127.0.0.1:8000/metrics"
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="RECORDING",
        help="replay a `rooftop record` file as fast as possible: what was recorded, the "
        "verdicts per target, and whether they match what the recording rooftop published",
    )
    parser.add_argument(
        "--exposition",
        action="store_true",
        help="with --replay: print the exposition of the last replayed cycle",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        default=None,
        help="read twice SECONDS apart and print rates",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"HTTP timeout per read (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.set_defaults(func=run)
