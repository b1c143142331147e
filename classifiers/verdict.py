"""Per-GPU bound verdict (idle / memory / compute / latency) and its hysteresis. Pure.

The verdict uses the best evidence present, in this order:

1. ``gpm`` / ``dcgm``: hardware pipe counters. DRAM activity (GPM ``DRAM_BW_UTIL``/100 = DCGM
   ``DRAM_ACTIVE``, a share of peak DRAM bandwidth) is the memory signal, tensor-pipe activity
   (GPM ``ANY_TENSOR_UTIL``/100 = DCGM ``PIPE_TENSOR_ACTIVE``) the compute signal.
2. ``nvml``: only the kernel duty cycle (``utilization.gpu``) is hardware; memory and compute come
   from the model (MBU, MFU, arithmetic intensity vs ridge).
3. ``model``: no GPU counters; engine token rates plus the model's MBU/MFU and roofline.
4. ``engine-only``: token rates and batch size only. The decode step's arithmetic intensity is
   estimated as tokens per step (≈ FLOP/byte for 16-bit weights: 2 FLOP and 2 bytes per weight
   per token), compared with the ridge; every such reason says ``engine-only evidence``.

Rules, first match wins:

- **idle**: no tokens flow and the GPU is not busy (every activity ratio below ``idle_busy_ratio``).
- **compute**: the compute signal reaches its threshold (tensor or MFU), or, with no compute
  signal, the step's arithmetic intensity is at or above the ridge point.
- **memory**: the memory signal (DRAM or MBU) reaches its threshold. When both signals are high,
  intensity vs ridge decides; without it, the signal further above its threshold wins.
- **latency**: busy (kernels running or tokens flowing) but no roof is reached: launch, host,
  scheduler or communication bound. A saturated engine thread is named in the reason.

A power/thermal clock cap (``throttled``) does not change the state; the reason says so, since
capped clocks lower both roofs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, get_args

__all__ = [
    "CAUSES",
    "CAUSE_DESCRIPTIONS",
    "EVIDENCE_LABELS",
    "STATES",
    "TIERS",
    "Cause",
    "EvidenceLabel",
    "HysteresisState",
    "Tier",
    "Verdict",
    "VerdictEvidence",
    "VerdictState",
    "VerdictThresholds",
    "advance",
    "classify",
    "held_verdict",
    "published",
]

Tier = Literal["gpm", "dcgm", "nvml", "none"]
VerdictState = Literal["idle", "memory", "compute", "latency"]
EvidenceLabel = Literal["gpm", "dcgm", "nvml", "model", "engine-only"]

Cause = Literal[
    "no_work",
    "tensor_pipes",
    "model_flops",
    "intensity_above_ridge",
    "dram_bandwidth",
    "model_bandwidth",
    "intensity_below_ridge",
    "below_roofs",
    "host_thread_saturated",
    "no_roof_evidence",
    "batch_above_ridge",
    "batch_below_ridge",
    "decode_presumed_memory",
    "prefill_presumed_compute",
    "held",
    "unattributed",
]
"""Why the verdict is what it is, as a code from a fixed set: a bounded Prometheus label (the
human ``reason`` sentence, with its numbers, is not a label: every new number would be a new
series)."""

CAUSE_DESCRIPTIONS: dict[Cause, str] = {
    "no_work": "no tokens flow and the GPU is not busy",
    "tensor_pipes": "tensor pipes at their compute threshold (hardware counters)",
    "model_flops": "model FLOP/s near the compute roof (MFU)",
    "intensity_above_ridge": "arithmetic intensity at or above the ridge point",
    "dram_bandwidth": "DRAM bandwidth at its memory threshold (hardware counters)",
    "model_bandwidth": "model bytes/s near the bandwidth roof (MBU)",
    "intensity_below_ridge": "both roofs high; arithmetic intensity below the ridge point",
    "below_roofs": "busy, but neither roof reached: launch, scheduler or communication bound",
    "host_thread_saturated": "the engine's busiest thread saturates a CPU core: host bound",
    "no_roof_evidence": "busy, with no counters, model or tokens to place it on the roofline",
    "batch_above_ridge": "tokens per step at or above the ridge (engine-only estimate)",
    "batch_below_ridge": "tokens per step below the ridge (engine-only estimate)",
    "decode_presumed_memory": "decode with no ridge to compare with: presumed memory-bound",
    "prefill_presumed_compute": "prefill only: presumed compute-bound",
    "held": "the previous state is held until the new one lasts the hold samples (hysteresis)",
    "unattributed": "no finer cause than the state",
}
"""One fixed phrase per cause, for views that read the cause label (``rooftop top``)."""

TIERS: tuple[Tier, ...] = get_args(Tier)
STATES: tuple[VerdictState, ...] = get_args(VerdictState)
EVIDENCE_LABELS: tuple[EvidenceLabel, ...] = get_args(EvidenceLabel)
CAUSES: tuple[Cause, ...] = get_args(Cause)

_PIPE_FIELDS = ("dram_active_ratio", "sm_active_ratio", "tensor_active_ratio")


@dataclass(frozen=True)
class VerdictEvidence:
    """What one sample knows about one GPU. ``None`` means unavailable, never zero.

    Ratios are 0–1 (values slightly above 1 are accepted: DCGM reports SM_ACTIVE 1.29 on MIG,
    NVIDIA/DCGM#152). Rates are per second.

    Attributes:
        tier: telemetry tier of the GPU counters: ``gpm``, ``dcgm``, ``nvml`` or ``none``.
        dram_active_ratio: share of peak DRAM bandwidth in use (GPM DRAM_BW_UTIL / DCGM
            DRAM_ACTIVE). Never NVML ``utilization.memory``, which is a duty cycle.
        sm_active_ratio: share of cycles an SM had a warp (GPM SM_UTIL / DCGM SM_ACTIVE).
        tensor_active_ratio: share of cycles any tensor pipe was active.
        kernel_busy_ratio: NVML ``utilization.gpu``: share of time any kernel ran.
        decode_tokens_per_second: generated tokens/s from the engine's counters.
        prefill_tokens_per_second: prompt tokens/s from the engine's counters.
        batch_size: running requests (mean over the window).
        model_bandwidth_utilization_ratio: MBU, model bytes/s moved ÷ peak bandwidth.
        model_flops_utilization_ratio: MFU, model FLOP/s ÷ dense peak FLOP/s.
        arithmetic_intensity_flops_per_byte: the model's decode-step FLOP/byte.
        ridge_point_flops_per_byte: the GPU's peak FLOP/s ÷ peak bytes/s.
        host_busiest_thread_ratio: the engine process's busiest thread, share of one core.
        throttled: clock-event reasons say power or thermal capping.
    """

    tier: Tier = "none"
    dram_active_ratio: float | None = None
    sm_active_ratio: float | None = None
    tensor_active_ratio: float | None = None
    kernel_busy_ratio: float | None = None
    decode_tokens_per_second: float | None = None
    prefill_tokens_per_second: float | None = None
    batch_size: float | None = None
    model_bandwidth_utilization_ratio: float | None = None
    model_flops_utilization_ratio: float | None = None
    arithmetic_intensity_flops_per_byte: float | None = None
    ridge_point_flops_per_byte: float | None = None
    host_busiest_thread_ratio: float | None = None
    throttled: bool = False

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {self.tier!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("tier", "throttled") or value is None:
                continue
            if isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number ≥ 0 or None, got {value!r}")
        if self.ridge_point_flops_per_byte == 0:
            raise ValueError("ridge_point_flops_per_byte must be > 0 or None")
        counters = [
            name for name in (*_PIPE_FIELDS, "kernel_busy_ratio") if getattr(self, name) is not None
        ]
        present_pipes = [name for name in counters if name in _PIPE_FIELDS]
        if self.tier == "none" and counters:
            raise ValueError(
                f"tier 'none' cannot carry GPU counters ({', '.join(counters)}): "
                "set tier to the source that measured them"
            )
        if self.tier == "nvml" and present_pipes:
            raise ValueError(
                f"tier 'nvml' has no pipe counters, but {', '.join(present_pipes)} given: "
                "set tier to 'gpm' or 'dcgm'"
            )


@dataclass(frozen=True)
class Verdict:
    """The classification of one sample.

    Attributes:
        state: ``idle``, ``memory``, ``compute`` or ``latency``.
        evidence: what decided it: ``gpm``, ``dcgm``, ``nvml``, ``model`` or ``engine-only``.
        reason: one human line with the numbers behind the state (pages, ``probe``, logs;
            never a label).
        cause: what decided the state, a code from :data:`CAUSES` (a bounded label).
    """

    state: VerdictState
    evidence: EvidenceLabel
    reason: str
    cause: Cause = "unattributed"

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, got {self.state!r}")
        if self.evidence not in EVIDENCE_LABELS:
            raise ValueError(
                f"evidence must be one of {', '.join(EVIDENCE_LABELS)}, got {self.evidence!r}"
            )
        if self.cause not in CAUSES:
            raise ValueError(f"cause must be one of {', '.join(CAUSES)}, got {self.cause!r}")


@dataclass(frozen=True)
class VerdictThresholds:
    """Cut-offs for :func:`classify`; each default names its origin."""

    idle_busy_ratio: float = 0.05
    """Below this every GPU activity ratio counts as not busy. rooftop's choice: NVML's
    ``utilization.gpu`` reads 100 % for one tiny kernel per period (gpu-telemetry.md §3), so a
    serving GPU is near 0 only when truly idle; 5 % absorbs stray housekeeping kernels."""

    memory_dram_ratio: float = 0.60
    """DRAM activity at or above this is memory-bound: gpmtop ``DRAM_HIGH=60`` and the TRT-LLM
    Nsight guide's "mem > 60 → memory-bound" (NVIDIA/TensorRT-LLM@697a5bc8
    .claude/skills/perf-nsight-compute-analysis/SKILL.md; roofline-anchors.md §2). DCGM puts the
    practical DRAM maximum near 0.8 (gpu-telemetry.md §1.2), so 0.6 is well into the roof."""

    compute_tensor_ratio: float = 0.50
    """Tensor-pipe activity at or above this is compute-bound: gpmtop ``MMA_HIGH=50``
    (gpu-telemetry.md §4). DCGM: 100 % tensor activity is one tensor instruction every other
    cycle, so 50 % is already heavy."""

    memory_mbu_ratio: float = 0.50
    """MBU at or above this is memory-bound: roofline-anchors.md §5 bands ("0.5 ≤ MBU_spec < 0.75
    while intensity < ridge: memory-bound with headroom"; Databricks 60 %, gpt-fast 69 %). Below
    it, with MFU also low, the TRT-LLM "both < 40 → latency-bound" side applies."""

    compute_mfu_ratio: float = 0.50
    """MFU at or above this is compute-bound: roofline-anchors.md §5 ("MFU ≥ ~0.5 of dense spec:
    compute-bound"; matmul MAMF reaches 0.7–0.85 of spec, §1.3)."""

    host_saturated_ratio: float = 0.90
    """The engine's busiest thread at or above this share of one core is saturated: the GPU waits
    on the host (a Python scheduler loop is single-threaded). rooftop's choice; HTA's "waiting for
    the host" idle is the trace-based equivalent (roofline-anchors.md §2)."""

    hold_samples: int = 3
    """Hysteresis: a new state is published after this many consecutive samples. rooftop's
    choice: gpmtop judges over 5 s of 1 s samples; 3 samples absorbs one- and two-sample blips."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hold_samples":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"hold_samples must be an int ≥ 1, got {value!r}")
            elif isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{f.name} must be a positive finite ratio, got {value!r}")


@dataclass(frozen=True)
class _Signal:
    name: str  # "DRAM", "MBU", "tensor", "MFU"
    value: float
    threshold: float

    @property
    def high(self) -> bool:
        return self.value >= self.threshold

    @property
    def margin(self) -> float:
        return self.value / self.threshold


def _pct(ratio: float) -> str:
    return f"{ratio:.0%}"


def _num(value: float) -> str:
    """100 and above as integers, smaller numbers with one decimal: 295, 42.5, 3.1."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _evidence_label(ev: VerdictEvidence) -> EvidenceLabel:
    hardware = any(getattr(ev, name) is not None for name in (*_PIPE_FIELDS, "kernel_busy_ratio"))
    if hardware and ev.tier != "none":
        return ev.tier
    model = (
        ev.model_bandwidth_utilization_ratio,
        ev.model_flops_utilization_ratio,
        ev.arithmetic_intensity_flops_per_byte,
    )
    if any(value is not None for value in model):
        return "model"
    return "engine-only"


def _present_max(*values: float | None) -> float | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _tokens_per_second(ev: VerdictEvidence) -> float | None:
    if ev.decode_tokens_per_second is None and ev.prefill_tokens_per_second is None:
        return None
    return (ev.decode_tokens_per_second or 0.0) + (ev.prefill_tokens_per_second or 0.0)


def _memory_signal(ev: VerdictEvidence, th: VerdictThresholds) -> _Signal | None:
    if ev.dram_active_ratio is not None:
        return _Signal("DRAM", ev.dram_active_ratio, th.memory_dram_ratio)
    if ev.model_bandwidth_utilization_ratio is not None:
        return _Signal("MBU", ev.model_bandwidth_utilization_ratio, th.memory_mbu_ratio)
    return None


def _compute_signal(ev: VerdictEvidence, th: VerdictThresholds) -> _Signal | None:
    if ev.tensor_active_ratio is not None:
        return _Signal("tensor", ev.tensor_active_ratio, th.compute_tensor_ratio)
    if ev.model_flops_utilization_ratio is not None:
        return _Signal("MFU", ev.model_flops_utilization_ratio, th.compute_mfu_ratio)
    return None


def _intensity_phrase(ev: VerdictEvidence) -> str | None:
    ai, ridge = ev.arithmetic_intensity_flops_per_byte, ev.ridge_point_flops_per_byte
    if ai is None or ridge is None:
        return None
    relation = "≥" if ai >= ridge else "<"
    return f"AI {_num(ai)} {relation} ridge {_num(ridge)}"


def _describe(signal: _Signal) -> str:
    roof = "bandwidth" if signal.name in ("DRAM", "MBU") else "FLOP/s"
    if signal.name == "tensor":
        return f"tensor pipes {_pct(signal.value)} active (≥ {_pct(signal.threshold)})"
    return f"{signal.name} {_pct(signal.value)} of peak {roof} (≥ {_pct(signal.threshold)})"


def _context(ev: VerdictEvidence, *, skip: tuple[str, ...] = ()) -> list[str]:
    parts: list[str] = []
    if ev.batch_size is not None and "batch" not in skip:
        parts.append(f"batch {ev.batch_size:g}")
    intensity = _intensity_phrase(ev)
    if intensity is not None and "intensity" not in skip:
        parts.append(intensity)
    return parts


def _host_phrase(ev: VerdictEvidence, th: VerdictThresholds) -> str | None:
    host = ev.host_busiest_thread_ratio
    if host is None or host < th.host_saturated_ratio:
        return None
    return f"engine busiest thread {_pct(host)} of a core"


def _qualifier(label: EvidenceLabel) -> str:
    if label == "model":
        return " [model estimate; no GPU counters]"
    return ""


def _finish(
    state: VerdictState,
    label: EvidenceLabel,
    body: str,
    ev: VerdictEvidence,
    cause: Cause,
    note: str = "",
) -> Verdict:
    reason = f"{state}: {body}{note}{_qualifier(label)}"
    if label == "engine-only":
        reason = f"engine-only evidence (no GPU counters, no model): {reason}"
    if ev.throttled:
        reason += "; clocks throttled (power/thermal cap lowers both roofs)"
    return Verdict(state=state, evidence=label, reason=reason, cause=cause)


def _roof_verdict(
    ev: VerdictEvidence,
    th: VerdictThresholds,
    label: EvidenceLabel,
    memory: _Signal | None,
    compute: _Signal | None,
) -> Verdict | None:
    """memory/compute from the roof signals, or ``None`` when neither roof is reached."""
    ai, ridge = ev.arithmetic_intensity_flops_per_byte, ev.ridge_point_flops_per_byte
    above_ridge = None if ai is None or ridge is None else ai >= ridge
    compute_high = compute.high if compute is not None else bool(above_ridge)
    memory_high = memory is not None and memory.high
    if not (compute_high or memory_high):
        return None

    ridge_decided = False
    if compute_high and memory_high:
        assert memory is not None
        if above_ridge is not None:
            state: VerdictState = "compute" if above_ridge else "memory"
            ridge_decided = True
        else:
            margin = compute.margin if compute is not None else 0.0
            state = "compute" if margin >= memory.margin else "memory"
    else:
        state = "compute" if compute_high else "memory"
    cause: Cause
    if state == "compute":
        cause = _SIGNAL_CAUSES[compute.name] if compute is not None else "intensity_above_ridge"
        if ridge_decided:
            cause = "intensity_above_ridge"
    else:
        assert memory is not None
        cause = "intensity_below_ridge" if ridge_decided else _SIGNAL_CAUSES[memory.name]

    parts: list[str] = []
    if state == "compute":
        if compute is not None:
            parts.append(_describe(compute))
        else:
            parts.append(f"{_intensity_phrase(ev)} (no tensor or MFU figure)")
        if memory is not None:
            also = " also high" if memory_high else ""
            parts.append(f"{memory.name} {_pct(memory.value)}{also}")
        parts += _context(ev, skip=("intensity",) if compute is None else ())
    else:
        assert memory is not None
        parts.append(_describe(memory))
        if compute is not None:
            also = " also high" if compute_high else ""
            parts.append(f"{compute.name} {_pct(compute.value)}{also}")
        parts += _context(ev)
    return _finish(state, label, ", ".join(parts), ev, cause)


_SIGNAL_CAUSES: dict[str, Cause] = {
    "DRAM": "dram_bandwidth",
    "MBU": "model_bandwidth",
    "tensor": "tensor_pipes",
    "MFU": "model_flops",
}


def _engine_estimate(ev: VerdictEvidence, label: EvidenceLabel) -> Verdict:
    """memory or compute from token rates alone (no roof signal), stated as an estimate.

    Tokens per step ≈ batch x (decode + prefill) / decode: each running request yields one token
    per decode step, and prefill tokens ride along in the same steps. With 16-bit weights a step
    does 2 FLOP and reads 2 bytes per weight per token, so tokens per step ≈ FLOP/byte, the
    quantity the ridge point is compared with (roofline-anchors.md §3.1, B_crit).
    """
    decode = ev.decode_tokens_per_second or 0.0
    prefill = ev.prefill_tokens_per_second or 0.0
    ridge = ev.ridge_point_flops_per_byte
    missing = "no DRAM/tensor counters or model" if label == "nvml" else ""
    note = f" [{missing}]" if missing else ""
    if decode > 0 and ev.batch_size is not None and ev.batch_size > 0 and ridge is not None:
        per_step = ev.batch_size * (decode + prefill) / decode
        state: VerdictState = "compute" if per_step >= ridge else "memory"
        relation = "≥" if per_step >= ridge else "<"
        rates = f"decode {_num(decode)} tok/s"
        if prefill > 0:
            rates += f", prefill {_num(prefill)} tok/s"
        body = (
            f"≈{_num(per_step)} tokens/step {relation} ridge {_num(ridge)} "
            f"(batch {ev.batch_size:g}, {rates}), presumed {state}-bound"
        )
        cause: Cause = "batch_above_ridge" if state == "compute" else "batch_below_ridge"
        return _finish(state, label, body, ev, cause, note)
    if decode > 0:
        batch = f" at batch {ev.batch_size:g}" if ev.batch_size is not None else ""
        body = (
            f"decode {_num(decode)} tok/s{batch}, no ridge to compare with; "
            "decode presumed memory-bound"
        )
        return _finish("memory", label, body, ev, "decode_presumed_memory", note)
    body = f"prefill only ({_num(prefill)} tok/s), presumed compute-bound"
    return _finish("compute", label, body, ev, "prefill_presumed_compute", note)


def classify(evidence: VerdictEvidence, thresholds: VerdictThresholds | None = None) -> Verdict:
    """Classify one sample of one GPU. See the module docstring for the rules."""
    th = thresholds if thresholds is not None else VerdictThresholds()
    ev = evidence
    label = _evidence_label(ev)
    busy = _present_max(ev.kernel_busy_ratio, ev.sm_active_ratio)
    activity = _present_max(busy, ev.dram_active_ratio, ev.tensor_active_ratio)
    tokens = _tokens_per_second(ev)
    flowing = tokens is not None and tokens > 0

    if not flowing and (activity is None or activity < th.idle_busy_ratio):
        token_part = "no tokens" if tokens is not None else "no engine token counts"
        gpu_part = f"GPU {_pct(activity)} busy" if activity is not None else "no GPU activity seen"
        return _finish("idle", label, f"{token_part} and {gpu_part}", ev, "no_work")

    memory = _memory_signal(ev, th)
    compute = _compute_signal(ev, th)
    roof = _roof_verdict(ev, th, label, memory, compute)
    if roof is not None:
        return roof

    host = _host_phrase(ev, th)
    has_roof_signal = memory is not None or compute is not None or _intensity_phrase(ev) is not None
    if has_roof_signal or host is not None or not flowing:
        if busy is not None:
            lead = f"GPU busy {_pct(busy)}"
        elif flowing:
            lead = f"{_num(tokens or 0.0)} tok/s flowing"
        else:
            lead = f"GPU {_pct(activity or 0.0)} active"
        lows = [f"{s.name} {_pct(s.value)}" for s in (memory, compute) if s is not None]
        latency_cause: Cause = "below_roofs"
        if host is not None:
            latency_cause = "host_thread_saturated"
        elif not has_roof_signal:
            latency_cause = "no_roof_evidence"
        if lows:
            body = f"{lead} but {', '.join(lows)}, no roof reached"
        elif has_roof_signal:
            body = f"{lead}, {_intensity_phrase(ev)}, no roof reached"
        elif host is not None:
            body = f"{lead}, host bound"
        else:
            body = f"{lead} with no roof evidence (no DRAM/tensor counters, model or tokens)"
        body += "".join(f", {part}" for part in _context(ev, skip=("intensity",)))
        if host is not None:
            body += f" ({host})"
        return _finish("latency", label, body, ev, latency_cause)

    return _engine_estimate(ev, label)


# --- hysteresis -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HysteresisState:
    """Published verdict plus a challenger that has held ``candidate_count`` consecutive samples."""

    current: Verdict | None = None
    candidate_state: VerdictState | None = None
    candidate_count: int = 0


def advance(state: HysteresisState, observed: Verdict, hold_samples: int) -> HysteresisState:
    """The next hysteresis state after one observed verdict.

    The first observation is published at once. An observation in the published state refreshes
    the published verdict (its reason and evidence) and clears any challenger. A different state
    becomes the challenger, or extends it if it is the same state; once it has held
    ``hold_samples`` consecutive samples it is published. So with ``hold_samples=3`` blips of one
    or two samples never reach the output.
    """
    if isinstance(hold_samples, bool) or hold_samples < 1:
        raise ValueError(f"hold_samples must be an int ≥ 1, got {hold_samples!r}")
    if state.current is None or observed.state == state.current.state:
        return HysteresisState(current=observed)
    count = state.candidate_count + 1 if state.candidate_state == observed.state else 1
    if count >= hold_samples:
        return HysteresisState(current=observed)
    return HysteresisState(
        current=state.current, candidate_state=observed.state, candidate_count=count
    )


def held_verdict(current: Verdict, observed: Verdict) -> Verdict:
    """What to show for one cycle: the published state, told with this cycle's numbers.

    While hysteresis holds ``current`` against a different ``observed`` state, ``current``'s
    reason describes an older cycle: beside this cycle's token rates and SOL it would contradict
    them (``idle`` next to 24 % of decode speed of light). The held verdict keeps the published
    state, takes cause ``held`` and this cycle's evidence, and its reason says what this cycle
    looks like. When the states agree, ``observed`` is returned as it is.
    """
    if observed.state == current.state:
        return observed
    return Verdict(
        state=current.state,
        evidence=observed.evidence,
        reason=f"{current.state} (held by hysteresis; this cycle looks {observed.reason})",
        cause="held",
    )


def published(state: HysteresisState) -> Verdict | None:
    """The verdict to export, or ``None`` before the first observation."""
    return state.current
