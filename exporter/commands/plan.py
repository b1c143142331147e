"""``rooftop plan``: the roofline speed of light of a model on a GPU, before serving it.

Joins the GPU catalog (:mod:`rooftop.classifiers.hardware`) with the model maths
(:mod:`rooftop.classifiers.models`, :mod:`rooftop.classifiers.roofline`). The peak FLOP/s
follows the weight
format (``classifiers.roofline.COMPUTE_DTYPE``): BF16/FP16 weights use the BF16/FP16 peak, FP8 and
INT8 (W8A8) the 8-bit peak, weight-only INT4 and MXFP4 the BF16 peak, NVFP4 the FP4 peak. Where
the GPU has no peak for that dtype (FP8 on an A100, FP4 on a Hopper), the weights are
dequantized to BF16 by the kernel (W8A16 / W4A16), so the BF16 peak is used and a note says so.

``--json`` prints one object, a stable contract::

    {"gpu": {"name", "peak_flops", "peak_bandwidth_bytes_per_second",
             "ridge_point_flops_per_byte"},
     "model": {"name", "parameters", "active_parameters", "weight_bytes",
               "kv_bytes_per_token"},
     "points": [{"batch", "context_tokens", "bytes_per_step", "flops_per_step",
                 "arithmetic_intensity_flops_per_byte", "step_seconds",
                 "speed_of_light_tokens_per_second", "bound"}],
     "crossover_batch"}

Fields added since, never removed (consumers may ignore them):

- ``gpu``: ``attention_peak_flops`` (attention runs BF16 beside FP8/INT8 GEMMs),
  ``memory_bytes`` (null when the catalog has none), ``interconnect`` (``{"kind",
  "bandwidth_bytes_per_second", "hop_latency_seconds"}`` or null).
- ``model``: ``replicated_weight_bytes`` (what TP replication adds on each GPU).
- each point: ``compute_seconds``, ``memory_seconds``, ``communication_seconds`` (TP
  all-reduces, inside ``step_seconds``), ``draft_seconds``, ``tokens_per_step_per_sequence``,
  ``verified_tokens``, ``needed_bytes`` (weights + KV of the batch), ``fits`` (null when the GPU
  memory is unknown).
- ``capacity``: ``{"memory_bytes", "usable_bytes", "memory_utilization", "weight_bytes",
  "kv_bytes_per_sequence", "max_batch"}`` or null; ``max_batch`` is null when no KV is
  modelled (``--params``).
- ``speculation``: ``{"method", "num_speculative_tokens", "acceptance_rate"}`` or null.

All byte and FLOP figures are per GPU (``--tp`` splits them, replicated parts stay whole).
``weight_bytes`` is every stored weight in the chosen format; ``kv_bytes_per_token`` is null
with ``--params`` (no KV modelled); ``crossover_batch`` is null when decode stays memory-bound up
to ``classifiers.roofline.CROSSOVER_SEARCH_LIMIT`` sequences. ``step_seconds`` is
``max(compute, memory) + draft + communication``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rooftop.classifiers.capacity import (
    DEFAULT_MEMORY_UTILIZATION,
    Capacity,
    CapacityInputError,
    capacity,
)
from rooftop.classifiers.hardware import (
    Interconnect,
    MissingPeakError,
    UnknownGpuError,
    lookup_gpu,
    peak_flops,
)
from rooftop.classifiers.model_catalog import UnknownModelError, lookup_model
from rooftop.classifiers.models import (
    KV_DTYPES,
    WEIGHT_FORMATS,
    KvDtype,
    ModelArchitecture,
    ModelConfigError,
    WeightFormat,
    active_parameter_count,
    architecture_from_hf_config,
    kv_bytes_per_token,
    parameter_count,
    replicated_weight_bytes,
    stored_weight_bytes,
)
from rooftop.classifiers.roofline import (
    COMPUTE_DTYPE,
    CROSSOVER_SEARCH_LIMIT,
    DenseModel,
    Model,
    Roof,
    RooflineInputError,
    StepCost,
    crossover_batch,
    decode_step,
    dense_model,
)
from rooftop.classifiers.speculative import (
    SPECULATIVE_METHODS,
    Speculation,
    SpeculationError,
)

DEFAULT_BATCHES = "1,8,32,64,128,256"
DEFAULT_CONTEXT = 4096


class PlanInputError(ValueError):
    """Bad command-line input; the message names what to fix."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="speed-of-light decode for a model on a GPU (roofline, no GPU needed)",
        description=(
            "Roofline speed of light of LLM decode: bytes and FLOPs per step, arithmetic "
            "intensity, step time, tokens/s and the bound for each batch size, plus the ridge "
            "point and the batch at which decode turns compute-bound. Per GPU."
        ),
    )
    parser.add_argument("--gpu", help="GPU id or NVML name (see `rooftop gpus`)")
    parser.add_argument(
        "--model", help="model id or HF name (see `rooftop models`), or a config.json path"
    )
    parser.add_argument(
        "--params",
        help="stand-in for --model: a dense parameter count (8e9 or 8B); no KV cache modelled",
    )
    parser.add_argument(
        "--batch",
        default=DEFAULT_BATCHES,
        help=f"comma-separated decode batch sizes (default {DEFAULT_BATCHES})",
    )
    parser.add_argument(
        "--context",
        default=str(DEFAULT_CONTEXT),
        help=f"tokens of context each sequence attends to (default {DEFAULT_CONTEXT})",
    )
    parser.add_argument(
        "--weights",
        help=f"weight format: {', '.join(WEIGHT_FORMATS)} (default: the format the model's "
        "config declares, else bf16)",
    )
    parser.add_argument(
        "--kv-dtype", default="bf16", help=f"KV-cache dtype: {', '.join(KV_DTYPES)}"
    )
    parser.add_argument("--tp", default="1", help="tensor-parallel GPUs (default 1)")
    parser.add_argument(
        "--peak-flops", help="dense peak FLOP/s (stands in for, or overrides, --gpu's peak)"
    )
    parser.add_argument(
        "--peak-bandwidth", help="peak memory bytes/s (stands in for, or overrides, --gpu's)"
    )
    parser.add_argument(
        "--memory-utilization",
        default=str(DEFAULT_MEMORY_UTILIZATION),
        help="share of GPU memory the engine may use for weights + KV (vLLM "
        f"--gpu-memory-utilization; default {DEFAULT_MEMORY_UTILIZATION})",
    )
    parser.add_argument(
        "--speculative-tokens",
        help="speculative decoding: draft tokens k per sequence per step (off by default)",
    )
    parser.add_argument(
        "--acceptance",
        default="0.7",
        help="speculative decoding: share of draft tokens accepted, 0-1 (default 0.7)",
    )
    parser.add_argument(
        "--spec-method",
        default="eagle",
        help=f"speculative decoding method: {', '.join(SPECULATIVE_METHODS)} (default eagle)",
    )
    parser.add_argument(
        "--draft-model", help="draft model id or config.json (with --spec-method draft_model)"
    )
    parser.add_argument("--json", action="store_true", help="print the stable JSON object")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="also draw the roofline with one point per batch to FILE.svg, or FILE.png with "
        "the plotting extra (pip install 'rooftop[plot]')",
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Plan:
    gpu_name: str
    compute_dtype: str
    roof: Roof
    model: Model
    weights: WeightFormat
    kv_dtype: KvDtype
    tp: int
    context_tokens: int
    points: tuple[StepCost, ...]
    crossover: int | None
    notes: tuple[str, ...]
    capacity: Capacity | None = None
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION
    speculation: Speculation | None = None


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        plan = build_plan(args)
    except (
        PlanInputError,
        ModelConfigError,
        RooflineInputError,
        CapacityInputError,
        SpeculationError,
    ) as exc:
        print(f"rooftop plan: {exc}", file=err)
        return 2
    except (UnknownGpuError, UnknownModelError) as exc:
        print(f"rooftop plan: {exc.args[0] if exc.args else exc}", file=err)
        return 2
    if getattr(args, "plot", None) is not None:
        from rooftop.exporter.commands.plan_plot import PlotError, write_plot

        spec = lookup_gpu(args.gpu) if args.gpu and args.peak_flops is None else None
        try:
            print(f"rooftop plan: wrote {write_plot(plan, args.plot, spec)}", file=err)
        except PlotError as exc:
            print(f"rooftop plan: {exc}", file=err)
            return 2
    if args.json:
        json.dump(plan_json(plan), out, indent=2)
        out.write("\n")
    else:
        out.write(render_plan(plan))
    return 0


def build_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments and compute every point. Raises on bad input."""
    batches = parse_batches(args.batch)
    context = _parse_count("--context", args.context, minimum=0)
    tp = _parse_count("--tp", args.tp, minimum=1)
    kv_dtype = _choice("--kv-dtype", args.kv_dtype, KV_DTYPES)
    weights_arg = (
        None if args.weights is None else _choice("--weights", args.weights, WEIGHT_FORMATS)
    )

    model = _model(args, weights_arg)
    if isinstance(model, DenseModel):
        weights: WeightFormat = model.weights
    else:
        weights = weights_arg or model.default_weight_format
    gpu_name, compute_dtype, roof, notes, memory = _roof(args, weights)
    utilization = _parse_share("--memory-utilization", args.memory_utilization)
    speculation = _speculation(args)
    draft = None if args.draft_model is None else load_model(args.draft_model)
    if speculation is not None and speculation.method == "draft_model" and draft is None:
        raise PlanInputError("--spec-method draft_model needs --draft-model ID|config.json")

    points = tuple(
        decode_step(
            model,
            roof,
            b,
            context,
            weights,
            kv_dtype,
            tp,
            speculation=speculation,
            draft_model=draft,
        )
        for b in batches
    )
    crossover = crossover_batch(model, roof, context, weights, kv_dtype, tp)
    fit = None
    if memory is not None:
        fit = capacity(model, memory, context, weights, kv_dtype, tp, utilization)
    extra: list[str] = []
    if tp > 1 and roof.interconnect is None:
        extra.append("no interconnect figure for this GPU: TP communication is not modelled")
    return Plan(
        gpu_name,
        compute_dtype,
        roof,
        model,
        weights,
        kv_dtype,
        tp,
        context,
        points,
        crossover,
        (*notes, *extra),
        fit,
        utilization,
        speculation,
    )


def _speculation(args: argparse.Namespace) -> Speculation | None:
    if getattr(args, "speculative_tokens", None) is None:
        return None
    k = _parse_count("--speculative-tokens", args.speculative_tokens, minimum=1)
    acceptance = _parse_share("--acceptance", args.acceptance, allow_zero=True)
    method = _choice("--spec-method", args.spec_method, SPECULATIVE_METHODS)
    return Speculation(method, k, acceptance)


def _parse_share(flag: str, text: str, *, allow_zero: bool = False) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise PlanInputError(f"{flag} must be a number in 0-1, got {text!r}") from None
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= 1):
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise PlanInputError(f"{flag} must be in {bound}, got {text!r}")
    return value


def _model(args: argparse.Namespace, weights: WeightFormat | None) -> Model:
    if args.params is not None and args.model is not None:
        raise PlanInputError("give --model or --params, not both")
    if args.params is not None:
        return dense_model(parse_quantity("--params", args.params), weights or "bf16")
    if args.model is None:
        raise PlanInputError(
            "give --model ID|config.json (see `rooftop models`) or --params P (e.g. 8e9)"
        )
    return load_model(args.model)


def load_model(key: str) -> ModelArchitecture:
    """A catalog model, or the HF ``config.json`` at ``key`` (a file, or a folder holding one)."""
    path = Path(key)
    if path.is_dir() and (path / "config.json").is_file():
        path = path / "config.json"
    if path.is_file():
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanInputError(f"cannot read {path} as JSON: {exc}") from None
        if not isinstance(config, dict):
            raise PlanInputError(f"{path}: expected a JSON object (an HF config.json)")
        name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
        return architecture_from_hf_config(config, name, source=str(path))
    if key.lower().endswith(".json"):
        raise PlanInputError(f"config file {key!r} does not exist")
    return lookup_model(key)


def _roof(
    args: argparse.Namespace, weights: WeightFormat
) -> tuple[str, str, Roof, tuple[str, ...], float | None]:
    """GPU name, compute dtype, roof, notes and memory bytes, from --gpu and/or the peak flags.

    Attention runs at the BF16 peak when the GEMM dtype is narrower (FP8/INT8/FP4 GEMMs beside
    BF16 FlashAttention/FlashMLA); the roof carries the GPU's interconnect for TP."""
    wanted = COMPUTE_DTYPE[weights]
    flops_arg = None if args.peak_flops is None else parse_quantity("--peak-flops", args.peak_flops)
    bw_arg = (
        None
        if args.peak_bandwidth is None
        else parse_quantity("--peak-bandwidth", args.peak_bandwidth)
    )
    notes: list[str] = []
    if args.gpu is None:
        if flops_arg is None or bw_arg is None:
            raise PlanInputError(
                "give --gpu ID (see `rooftop gpus`), or both --peak-flops F and --peak-bandwidth B"
            )
        return "custom (--peak-flops, --peak-bandwidth)", wanted, Roof(flops_arg, bw_arg), (), None
    spec = lookup_gpu(args.gpu)
    dtype = wanted
    if flops_arg is not None:
        flops = flops_arg
        notes.append(f"peak FLOP/s {flops:.4g} from --peak-flops")
    else:
        try:
            flops = peak_flops(spec, wanted)
        except MissingPeakError:
            dtype = "bf16"
            try:
                flops = peak_flops(spec, dtype)
            except MissingPeakError as exc:
                raise PlanInputError(f"{exc}") from None
            notes.append(
                f"{spec.id} has no {wanted} peak: {weights} weights run dequantized to bf16 "
                "there, so the bf16 peak is used"
            )
    bandwidth = spec.memory_bandwidth_bytes_per_second if bw_arg is None else bw_arg
    if bw_arg is not None:
        notes.append(f"bandwidth {bandwidth:.4g} B/s from --peak-bandwidth")
    attention: float | None = None
    if dtype not in ("bf16", "fp16", "fp32") and "bf16" in spec.peak_flops_per_second:
        attention = peak_flops(spec, "bf16")
        notes.append(
            f"attention runs in bf16 ({attention / 1e12:.4g} TFLOP/s) beside {dtype} GEMMs"
        )
    roof = Roof(flops, bandwidth, attention, spec.interconnect)
    return spec.name, dtype, roof, tuple(notes), spec.memory_bytes


# --- parsing ---------------------------------------------------------------------------------

_SUFFIXES = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12, "p": 1e15}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgbtp]?)\s*$", re.IGNORECASE)


def parse_quantity(flag: str, text: str) -> float:
    """A positive number such as ``8e9``, ``989.4e12``, ``8B`` or ``3.35T``."""
    match = _QUANTITY.match(text)
    if match is None:
        raise PlanInputError(f"{flag} must be a positive number such as 8e9 or 8B, got {text!r}")
    value = float(match.group(1)) * _SUFFIXES.get(match.group(2).lower(), 1.0)
    if not math.isfinite(value) or value <= 0:
        raise PlanInputError(f"{flag} must be positive, got {text!r}")
    return value


def parse_batches(text: str) -> tuple[int, ...]:
    """``"1,8,64"`` -> ``(1, 8, 64)``; every batch a whole number >= 1."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise PlanInputError("--batch needs at least one batch size, e.g. --batch 1,8,64")
    return tuple(_parse_count("--batch", item, minimum=1) for item in items)


def _parse_count(flag: str, text: str, *, minimum: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise PlanInputError(f"{flag} must be a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise PlanInputError(f"{flag} must be a whole number >= {minimum}, got {value}")
    return value


def _choice(flag: str, text: str, choices: tuple[Any, ...]) -> Any:
    key = text.strip().lower()
    if key not in choices:
        raise PlanInputError(f"{flag} must be one of {', '.join(choices)}, got {text!r}")
    return key


# --- output ----------------------------------------------------------------------------------


def _model_facts(plan: Plan) -> dict[str, Any]:
    model = plan.model
    if isinstance(model, DenseModel):
        return {
            "name": model.name,
            "parameters": model.parameters,
            "active_parameters": model.parameters,
            "weight_bytes": model.weight_bytes / plan.tp,
            "kv_bytes_per_token": None,
            "replicated_weight_bytes": 0.0,
        }
    return {
        "name": model.name,
        "parameters": parameter_count(model),
        "active_parameters": active_parameter_count(model),
        "weight_bytes": stored_weight_bytes(model, plan.weights, plan.tp),
        "kv_bytes_per_token": kv_bytes_per_token(model, plan.kv_dtype, plan.tp),
        "replicated_weight_bytes": replicated_weight_bytes(model, plan.weights, plan.tp),
    }


def _interconnect_json(link: Interconnect | None) -> dict[str, Any] | None:
    if link is None:
        return None
    return {
        "kind": link.kind,
        "bandwidth_bytes_per_second": link.bandwidth_bytes_per_second,
        "hop_latency_seconds": link.hop_latency_seconds,
    }


def _capacity_json(plan: Plan) -> dict[str, Any] | None:
    fit = plan.capacity
    if fit is None:
        return None
    return {
        "memory_bytes": fit.memory_bytes,
        "usable_bytes": fit.usable_bytes,
        "memory_utilization": plan.memory_utilization,
        "weight_bytes": fit.weight_bytes,
        "kv_bytes_per_sequence": fit.kv_bytes_per_sequence,
        "max_batch": fit.max_batch,
    }


def _fits(plan: Plan, point: StepCost) -> bool | None:
    return None if plan.capacity is None else plan.capacity.fits(point.batch)


def plan_json(plan: Plan) -> dict[str, Any]:
    """The ``--json`` contract (see module docstring)."""
    return {
        "gpu": {
            "name": plan.gpu_name,
            "peak_flops": plan.roof.peak_flops_per_second,
            "peak_bandwidth_bytes_per_second": plan.roof.peak_bandwidth_bytes_per_second,
            "ridge_point_flops_per_byte": plan.roof.ridge_point_flops_per_byte,
            "attention_peak_flops": plan.roof.attention_peak_flops_per_second,
            "memory_bytes": None if plan.capacity is None else plan.capacity.memory_bytes,
            "interconnect": _interconnect_json(plan.roof.interconnect),
        },
        "model": _model_facts(plan),
        "points": [
            {
                "batch": p.batch,
                "context_tokens": p.context_tokens,
                "bytes_per_step": p.bytes,
                "flops_per_step": p.total_flops,
                "arithmetic_intensity_flops_per_byte": p.arithmetic_intensity_flops_per_byte,
                "step_seconds": p.step_seconds,
                "speed_of_light_tokens_per_second": p.speed_of_light_tokens_per_second,
                "bound": p.bound,
                "compute_seconds": p.compute_seconds,
                "memory_seconds": p.memory_seconds,
                "communication_seconds": p.communication_seconds,
                "draft_seconds": p.draft_seconds,
                "tokens_per_step_per_sequence": p.tokens_per_step_per_sequence,
                "verified_tokens": p.verified_tokens,
                "needed_bytes": None
                if plan.capacity is None
                else plan.capacity.needed_bytes(p.batch),
                "fits": _fits(plan, p),
            }
            for p in plan.points
        ],
        "crossover_batch": plan.crossover,
        "capacity": _capacity_json(plan),
        "speculation": None
        if plan.speculation is None
        else {
            "method": plan.speculation.method,
            "num_speculative_tokens": plan.speculation.num_speculative_tokens,
            "acceptance_rate": plan.speculation.acceptance_rate,
        },
    }


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def render_plan(plan: Plan) -> str:
    """The human-readable table."""
    facts = _model_facts(plan)
    roof = plan.roof
    kv = facts["kv_bytes_per_token"]
    kv_text = "no KV cache modelled" if kv is None else f"KV {plan.kv_dtype} {kv:,.0f} B/token"
    tp_text = f", per GPU at TP {plan.tp}" if plan.tp > 1 else ""
    if plan.tp > 1 and facts["replicated_weight_bytes"] > 0:
        tp_text += f" ({_si(facts['replicated_weight_bytes'], 'B')} replicated on every GPU)"
    lines = [
        f"GPU    {plan.gpu_name}: {_si(roof.peak_flops_per_second, 'FLOP/s')} {plan.compute_dtype}"
        f" dense, {_si(roof.peak_bandwidth_bytes_per_second, 'B/s')}, ridge point "
        f"{roof.ridge_point_flops_per_byte:.0f} FLOP/byte",
        f"Model  {facts['name']}: {facts['parameters'] / 1e9:.2f} B parameters "
        f"({facts['active_parameters'] / 1e9:.2f} B active), {plan.weights} weights "
        f"{_si(facts['weight_bytes'], 'B')}, {kv_text}{tp_text}",
        *(f"Note   {note}" for note in plan.notes),
        *_link_lines(plan),
        *_speculation_lines(plan),
        f"Decode, {plan.context_tokens:,} tokens of context per sequence:",
        "",
    ]
    header = (
        "batch",
        "bytes/step",
        "FLOPs/step",
        "FLOP/byte",
        "comm ms",
        "step ms",
        "SOL tok/s",
        "bound",
        "fits",
    )
    rows = [
        (
            f"{p.batch:,}",
            _si(p.bytes, "B"),
            _si(p.total_flops, "FLOP"),
            f"{p.arithmetic_intensity_flops_per_byte:,.1f}",
            f"{p.communication_seconds * 1e3:,.3f}",
            f"{p.step_seconds * 1e3:,.3f}",
            f"{p.speed_of_light_tokens_per_second:,.1f}",
            p.bound,
            _fits_text(plan, p),
        )
        for p in plan.points
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    lines.append("")
    lines += _capacity_lines(plan)
    if plan.crossover is None:
        lines.append(
            f"Crossover: none; decode stays memory-bound up to batch {CROSSOVER_SEARCH_LIMIT:,} "
            "at this context (per-sequence KV reads keep intensity below the ridge)."
        )
    else:
        lines.append(
            f"Crossover: decode turns compute-bound at batch {plan.crossover:,} "
            f"(ridge point {roof.ridge_point_flops_per_byte:.0f} FLOP/byte)."
        )
    return "\n".join(lines) + "\n"


def _fits_text(plan: Plan, point: StepCost) -> str:
    fits = _fits(plan, point)
    if fits is None:
        return "?"
    return "yes" if fits else "NO"


def _link_lines(plan: Plan) -> list[str]:
    link = plan.roof.interconnect
    if plan.tp == 1 or link is None:
        return []
    return [
        f"Link   {link.kind}: {_si(link.bandwidth_bytes_per_second, 'B/s')} per direction, "
        f"{link.hop_latency_seconds * 1e6:.2g} us per hop; 2 all-reduces per layer at TP "
        f"{plan.tp} (comm ms, inside step ms)"
    ]


def _speculation_lines(plan: Plan) -> list[str]:
    spec = plan.speculation
    if spec is None:
        return []
    return [
        f"Spec   {spec.method}, k={spec.num_speculative_tokens}, acceptance "
        f"{spec.acceptance_rate:.0%}: {spec.verified_tokens_per_sequence} tokens verified, "
        f"{spec.tokens_per_step_per_sequence:.2f} emitted per sequence per step"
    ]


def _capacity_lines(plan: Plan) -> list[str]:
    fit = plan.capacity
    if fit is None:
        return ["Capacity: unknown (no GPU memory size; give --gpu)."]
    usable = (
        f"{_si(fit.usable_bytes, 'B')} usable ({plan.memory_utilization:.0%} of "
        f"{_si(fit.memory_bytes, 'B')})"
    )
    if not fit.weights_fit:
        return [
            f"Capacity: weights alone ({_si(fit.weight_bytes, 'B')} per GPU) exceed {usable}; "
            "raise --tp or pick a smaller weight format."
        ]
    if fit.max_batch is None:
        return [f"Capacity: weights {_si(fit.weight_bytes, 'B')} fit in {usable}; KV not modelled."]
    return [
        f"Capacity: weights {_si(fit.weight_bytes, 'B')} + KV {_si(fit.kv_bytes_per_sequence, 'B')}"
        f" per sequence at {plan.context_tokens:,} tokens in {usable}: largest batch that fits "
        f"{fit.max_batch:,}."
    ]
