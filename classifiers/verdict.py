"""Per-GPU bound verdict (unknown / idle / memory / compute / latency) and its hysteresis. Pure.

The verdict uses the best evidence present, in this order:

1. ``gpm`` / ``dcgm``: hardware pipe counters. DRAM activity (GPM ``DRAM_BW_UTIL``/100 = DCGM
   ``DRAM_ACTIVE``, a share of peak DRAM bandwidth) is the memory signal, tensor-pipe activity
   (GPM ``ANY_TENSOR_UTIL``/100 = DCGM ``PIPE_TENSOR_ACTIVE``) the compute signal.
2. ``nvml``: only the kernel duty cycle (``utilization.gpu``) is hardware; memory and compute come
   from the model (MBU, MFU, arithmetic intensity vs ridge).
3. ``model``: no GPU counters; engine token rates plus the model's MBU/MFU and roofline.
4. ``engine-only``: token rates and batch size only. With the model known, the model's own step
   intensity (weights + KV, dtype aware) is compared with the ridge; only for an unknown model
   is it estimated as tokens per step (≈ FLOP/byte for 16-bit weights: 2 FLOP and 2 bytes per
   weight per token; ``x 2 / bytes per weight`` for narrower ones). The reason says which, and
   every such reason says ``engine-only evidence``.

Rules, first match wins:

- **unknown**: nothing to judge on: no engine token counts and no GPU activity reading.
- **idle**: no tokens flow and the GPU is not busy (every activity ratio below ``idle_busy_ratio``).
- **compute**: the compute signal reaches its threshold (tensor or MFU), or, with no compute
  signal, the step's arithmetic intensity is at or above the ridge point.
- **memory**: the memory signal (DRAM or MBU) reaches its threshold. When both signals are high,
  intensity vs ridge decides; without it, the signal further above its threshold wins.
- **latency**: busy (kernels running or tokens flowing) but no roof is reached: launch, host,
  scheduler or communication bound. A saturated engine thread is named in the reason, and so is
  a GPU waiting on tensor-parallel collectives (the model puts ``communication_share_ratio`` of
  the step in all-reduces, or GPM's NVLink rates show the link busy).

Production effects the verdict guards against:

- An **upper bound** never decides ``compute`` alone: when the MFU counts raw prompt tokens
  (prefix-cache hits unknown, ``mfu_upper_bound``), compute needs the tensor counter or the
  decode-only MFU (``decode_mfu_ratio``) to reach its threshold.
- **Speculative decoding** is named in the reason (tokens per step per sequence).
- **Hysteresis with a dead band**: a published memory (compute) state is left only when its
  signal falls below the *leave* threshold, lower than the *enter* one, so a signal hovering at
  the threshold cannot flip the state (:func:`classify` ``held``).
- A **three-way cross-check** (model vs engine estimate vs hardware counters,
  :mod:`~rooftop.classifiers.cross_check`) names the largest disagreement.

Every verdict carries ``codes``: short stable identifiers (:data:`VERDICT_CODES`) for the causes
the reason names, bounded so they can be exported as a label.

A power/thermal clock cap (``throttled``) does not change the state; the reason says so, since
capped clocks lower both roofs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, get_args

from rooftop.classifiers.cross_check import CrossCheck

__all__ = [
    "EVIDENCE_LABELS",
    "STATES",
    "TIERS",
    "VERDICT_CODES",
    "EvidenceLabel",
    "HysteresisState",
    "Tier",
    "Verdict",
    "VerdictCode",
    "VerdictEvidence",
    "VerdictState",
    "VerdictThresholds",
    "advance",
    "classify",
    "classify_held",
    "published",
]

Tier = Literal["gpm", "dcgm", "nvml", "none"]
"""How much a GPU's activity figures can be trusted, best first.

``gpm``: NVML GPU Performance Monitoring counters (Hopper and later).
``dcgm``: DCGM profiling fields read from a dcgm-exporter.
``nvml``: classic ``nvmlDeviceGetUtilizationRates`` only (kernel-busy time, a weak signal).
``none``: no activity figures at all (engine-only evidence).
"""
VerdictState = Literal["unknown", "idle", "memory", "compute", "latency"]
EvidenceLabel = Literal["gpm", "dcgm", "nvml", "model", "engine-only"]
VerdictCode = Literal[
    "no_evidence",
    "host_bound",
    "communication",
    "speculation",
    "prefix_upper_bound",
    "model_intensity",
    "token_proxy",
    "cross_check",
    "throttled",
]
"""Short stable identifiers of the causes a reason names (a bounded set, safe as a label):

- ``no_evidence``: the ``unknown`` state, nothing to judge on.
- ``host_bound``: the engine's busiest thread is saturated.
- ``communication``: the GPU waits on tensor-parallel collectives.
- ``speculation``: speculative decoding is on (tokens per step per sequence > 1).
- ``prefix_upper_bound``: prefill FLOPs are an upper bound and were not let decide compute.
- ``model_intensity`` / ``token_proxy``: an engine-only estimate from the model's step
  intensity, or from the tokens-per-step proxy (model unknown).
- ``cross_check``: model, engine estimate and hardware counters disagree beyond tolerance.
- ``throttled``: clocks capped by power or temperature."""

TIERS: tuple[Tier, ...] = get_args(Tier)
STATES: tuple[VerdictState, ...] = get_args(VerdictState)
EVIDENCE_LABELS: tuple[EvidenceLabel, ...] = get_args(EvidenceLabel)
VERDICT_CODES: tuple[VerdictCode, ...] = get_args(VerdictCode)

_PIPE_FIELDS = ("dram_active_ratio", "sm_active_ratio", "tensor_active_ratio")
_NON_NUMERIC = ("tier", "throttled", "mfu_upper_bound", "cross_check")


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
        communication_share_ratio: the model's share of the step spent in TP all-reduces.
        interconnect_active_ratio: NVLink (GPM ``NVLINK_TOTAL_RX/TX_PER_SEC``) bytes/s over the
            link's peak both ways, 0-1.
        tokens_per_step_per_sequence: emitted tokens per decode step per sequence (``1 + k
            alpha`` with speculative decoding), when known.
        mfu_upper_bound: the MFU counts raw prompt tokens (prefix-cache hits unknown).
        decode_mfu_ratio: the MFU of the decode tokens alone (its lower bound then).
        weight_bytes_per_parameter: stored bytes per weight, for the tokens-per-step proxy of an
            unknown model (2 for BF16, 1 for FP8, ~0.52 for INT4).
        cross_check: the model / engine-estimate / hardware comparison, when there is one.
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
    communication_share_ratio: float | None = None
    interconnect_active_ratio: float | None = None
    tokens_per_step_per_sequence: float | None = None
    mfu_upper_bound: bool = False
    decode_mfu_ratio: float | None = None
    weight_bytes_per_parameter: float | None = None
    cross_check: CrossCheck | None = None

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {self.tier!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _NON_NUMERIC or value is None:
                continue
            if isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be a finite number ≥ 0 or None, got {value!r}")
        if self.ridge_point_flops_per_byte == 0:
            raise ValueError("ridge_point_flops_per_byte must be > 0 or None")
        if self.weight_bytes_per_parameter == 0:
            raise ValueError("weight_bytes_per_parameter must be > 0 or None")
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
        state: ``unknown``, ``idle``, ``memory``, ``compute`` or ``latency``.
        evidence: what decided it: ``gpm``, ``dcgm``, ``nvml``, ``model`` or ``engine-only``.
        reason: one human line with the numbers behind the state.
        codes: stable identifiers of the causes the reason names (:data:`VERDICT_CODES`).
    """

    state: VerdictState
    evidence: EvidenceLabel
    reason: str
    codes: tuple[VerdictCode, ...] = ()

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, got {self.state!r}")
        unknown = [c for c in self.codes if c not in VERDICT_CODES]
        if unknown:
            raise ValueError(f"unknown verdict codes {unknown}: use {', '.join(VERDICT_CODES)}")
        if self.evidence not in EVIDENCE_LABELS:
            raise ValueError(
                f"evidence must be one of {', '.join(EVIDENCE_LABELS)}, got {self.evidence!r}"
            )


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

    memory_dram_leave_ratio: float = 0.50
    """Dead band: a published ``memory`` state holds while DRAM stays at or above this (entered
    at ``memory_dram_ratio`` 0.60). The TRT-LLM Nsight guide's "< 40 → latency-bound" is the
    far side; 0.50 splits the 0.40–0.60 band so a DRAM ratio hovering at 0.60 (± 0.05 noise)
    cannot flip the state every few samples."""

    compute_tensor_leave_ratio: float = 0.40
    """Dead band for a published ``compute`` state on the tensor pipes (entered at 0.50): the
    TRT-LLM guide's 40 % "low" mark."""

    memory_mbu_leave_ratio: float = 0.40
    """Dead band for ``memory`` on MBU (entered at 0.50): roofline-anchors.md §5, both < 40 %
    is the latency side."""

    compute_mfu_leave_ratio: float = 0.40
    """Dead band for ``compute`` on MFU (entered at 0.50), as for MBU."""

    communication_share_ratio: float = 0.20
    """A busy GPU below both roofs is called communication-bound (latency, code
    ``communication``) when the model puts at least this share of its step in TP all-reduces.
    rooftop's choice: a fifth of the step separates Llama-3.1-70B decode at batch 1 on H100 at
    TP 8 (1.65 of 6.89 ms, 24 %) from TP 2 (3.4 %), where collectives are noise."""

    interconnect_busy_ratio: float = 0.30
    """…or when GPM's NVLink rates reach this share of the link's peak (both directions).
    rooftop's choice: decode all-reduces are latency-bound, so a link this busy is already
    carrying traffic beyond them."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hold_samples":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"hold_samples must be an int ≥ 1, got {value!r}")
            elif isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{f.name} must be a positive finite ratio, got {value!r}")
        for enter, leave in (
            ("memory_dram_ratio", "memory_dram_leave_ratio"),
            ("compute_tensor_ratio", "compute_tensor_leave_ratio"),
            ("memory_mbu_ratio", "memory_mbu_leave_ratio"),
            ("compute_mfu_ratio", "compute_mfu_leave_ratio"),
        ):
            if getattr(self, leave) > getattr(self, enter):
                raise ValueError(
                    f"{leave} ({getattr(self, leave)}) must not exceed {enter} "
                    f"({getattr(self, enter)}): the dead band leaves below where it enters"
                )


@dataclass(frozen=True)
class _Signal:
    name: str  # "DRAM", "MBU", "tensor", "MFU"
    value: float
    threshold: float
    upper_bound: float | None = None
    """Set when ``value`` is only an upper bound: the lower bound that must reach the
    threshold for the signal to count as high."""

    @property
    def high(self) -> bool:
        if self.upper_bound is not None:
            return self.upper_bound >= self.threshold
        return self.value >= self.threshold

    @property
    def bound_only(self) -> bool:
        """The upper bound reaches the threshold but the lower bound does not."""
        return self.upper_bound is not None and self.value >= self.threshold > self.upper_bound

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


def _memory_signal(
    ev: VerdictEvidence, th: VerdictThresholds, held: VerdictState | None = None
) -> _Signal | None:
    keep = held == "memory"
    if ev.dram_active_ratio is not None:
        cut = th.memory_dram_leave_ratio if keep else th.memory_dram_ratio
        return _Signal("DRAM", ev.dram_active_ratio, cut)
    if ev.model_bandwidth_utilization_ratio is not None:
        cut = th.memory_mbu_leave_ratio if keep else th.memory_mbu_ratio
        return _Signal("MBU", ev.model_bandwidth_utilization_ratio, cut)
    return None


def _compute_signal(
    ev: VerdictEvidence, th: VerdictThresholds, held: VerdictState | None = None
) -> _Signal | None:
    keep = held == "compute"
    if ev.tensor_active_ratio is not None:
        cut = th.compute_tensor_leave_ratio if keep else th.compute_tensor_ratio
        return _Signal("tensor", ev.tensor_active_ratio, cut)
    if ev.model_flops_utilization_ratio is not None:
        cut = th.compute_mfu_leave_ratio if keep else th.compute_mfu_ratio
        if ev.mfu_upper_bound:
            lower = ev.decode_mfu_ratio if ev.decode_mfu_ratio is not None else 0.0
            return _Signal("MFU", ev.model_flops_utilization_ratio, cut, upper_bound=lower)
        return _Signal("MFU", ev.model_flops_utilization_ratio, cut)
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


def _notes(ev: VerdictEvidence) -> tuple[str, list[VerdictCode]]:
    """Phrases and codes every verdict carries: speculation, cross-check, throttling."""
    text = ""
    codes: list[VerdictCode] = []
    tps = ev.tokens_per_step_per_sequence
    if tps is not None and tps > 1.0:
        text += f"; speculative decoding, {tps:.2f} tokens per step per sequence"
        codes.append("speculation")
    check = ev.cross_check
    if check is not None and check.largest is not None:
        text += f"; cross-check: {check.largest.phrase}"
        codes.append("cross_check")
    if ev.throttled:
        text += "; clocks throttled (power/thermal cap lowers both roofs)"
        codes.append("throttled")
    return text, codes


def _finish(
    state: VerdictState,
    label: EvidenceLabel,
    body: str,
    ev: VerdictEvidence,
    note: str = "",
    codes: tuple[VerdictCode, ...] = (),
) -> Verdict:
    reason = f"{state}: {body}{note}{_qualifier(label)}"
    if label == "engine-only":
        reason = f"engine-only evidence (no GPU counters, no model): {reason}"
    extra, extra_codes = _notes(ev)
    reason += extra
    return Verdict(state=state, evidence=label, reason=reason, codes=(*codes, *extra_codes))


def _upper_bound_phrase(signal: _Signal | None) -> str | None:
    if signal is None or not signal.bound_only:
        return None
    lower = signal.upper_bound or 0.0
    return (
        f"MFU {_pct(signal.value)} is an upper bound (prompt tokens include prefix-cache hits "
        f"the engine does not report; decode alone {_pct(lower)}), not counted as compute"
    )


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
    # With upper-bound prefill FLOPs the workload intensity counts them too: it may break a
    # tie but never calls compute on its own.
    intensity_decides = not (ev.mfu_upper_bound and ev.tensor_active_ratio is None)
    compute_high = compute.high if compute is not None else bool(above_ridge) and intensity_decides
    memory_high = memory is not None and memory.high
    if not (compute_high or memory_high):
        return None

    if compute_high and memory_high:
        assert memory is not None
        if above_ridge is not None:
            state: VerdictState = "compute" if above_ridge else "memory"
        else:
            margin = compute.margin if compute is not None else 0.0
            state = "compute" if margin >= memory.margin else "memory"
    else:
        state = "compute" if compute_high else "memory"

    parts: list[str] = []
    codes: list[VerdictCode] = []
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
        bound_phrase = _upper_bound_phrase(compute)
        if bound_phrase is not None:
            parts.append(bound_phrase)
            codes.append("prefix_upper_bound")
        elif compute is not None:
            also = " also high" if compute_high else ""
            parts.append(f"{compute.name} {_pct(compute.value)}{also}")
        parts += _context(ev)
    return _finish(state, label, ", ".join(parts), ev, codes=tuple(codes))


def _engine_estimate(ev: VerdictEvidence, label: EvidenceLabel) -> Verdict:
    """memory or compute from token rates and the model's intensity (no roof signal), stated as
    an estimate.

    With the model known, its step intensity (weights + KV, dtype aware) is compared with the
    ridge. Otherwise tokens per step ≈ batch x (decode + prefill) / decode: each running request
    yields one token per decode step, and prefill tokens ride along in the same steps. With
    16-bit weights a step does 2 FLOP and reads 2 bytes per weight per token, so tokens per step
    ≈ FLOP/byte, the quantity the ridge point is compared with (roofline-anchors.md §3.1,
    B_crit); narrower weights scale it by ``2 / bytes per weight`` (FP8 x2, INT4 x~4).
    """
    decode = ev.decode_tokens_per_second or 0.0
    prefill = ev.prefill_tokens_per_second or 0.0
    ridge = ev.ridge_point_flops_per_byte
    missing = "no DRAM/tensor counters or model" if label == "nvml" else ""
    note = f" [{missing}]" if missing else ""
    rates = f"decode {_num(decode)} tok/s"
    if prefill > 0:
        rates += f", prefill {_num(prefill)} tok/s"
    batch = f"batch {ev.batch_size:g}, " if ev.batch_size is not None else ""
    model_ai = ev.arithmetic_intensity_flops_per_byte
    if (decode > 0 or prefill > 0) and model_ai is not None and ridge is not None:
        above = model_ai >= ridge
        if above and ev.mfu_upper_bound:
            body = (
                f"model step intensity {_num(model_ai)} ≥ ridge {_num(ridge)} ({batch}{rates}) "
                "counts prompt tokens that may be prefix-cache hits: an upper bound, "
                "not called compute; presumed memory-bound"
            )
            return _finish(
                "memory", label, body, ev, note, ("model_intensity", "prefix_upper_bound")
            )
        state: VerdictState = "compute" if above else "memory"
        relation = "≥" if above else "<"
        body = (
            f"model step intensity {_num(model_ai)} FLOP/byte {relation} ridge {_num(ridge)} "
            f"({batch}{rates}), presumed {state}-bound"
        )
        return _finish(state, label, body, ev, note, ("model_intensity",))
    if decode > 0 and ev.batch_size is not None and ev.batch_size > 0 and ridge is not None:
        per_step = ev.batch_size * (decode + prefill) / decode
        scale = 1.0
        dtype_note = ""
        if ev.weight_bytes_per_parameter is not None:
            scale = 2.0 / ev.weight_bytes_per_parameter
            dtype_note = f" x {scale:.2g} for {ev.weight_bytes_per_parameter:.2g}-byte weights"
        proxy = per_step * scale
        state = "compute" if proxy >= ridge else "memory"
        relation = "≥" if proxy >= ridge else "<"
        figure = f"≈{_num(per_step)} tokens/step"
        if scale != 1.0:
            figure += f"{dtype_note} = {_num(proxy)} FLOP/byte"
        body = (
            f"{figure} {relation} ridge {_num(ridge)} (tokens-per-step proxy, model unknown; "
            f"{batch}{rates}), presumed {state}-bound"
        )
        return _finish(state, label, body, ev, note, ("token_proxy",))
    if decode > 0:
        at = f" at batch {ev.batch_size:g}" if ev.batch_size is not None else ""
        body = (
            f"decode {_num(decode)} tok/s{at}, no ridge to compare with; "
            "decode presumed memory-bound"
        )
        return _finish("memory", label, body, ev, note)
    body = f"prefill only ({_num(prefill)} tok/s), presumed compute-bound"
    return _finish("compute", label, body, ev, note)


def _communication_phrase(ev: VerdictEvidence, th: VerdictThresholds) -> str | None:
    share, link = ev.communication_share_ratio, ev.interconnect_active_ratio
    parts: list[str] = []
    if share is not None and share >= th.communication_share_ratio:
        parts.append(f"the model puts {_pct(share)} of each step in TP all-reduces")
    if link is not None and link >= th.interconnect_busy_ratio:
        parts.append(f"NVLink {_pct(link)} busy")
    if not parts:
        return None
    return "waiting on tensor-parallel collectives: " + ", ".join(parts)


def classify(
    evidence: VerdictEvidence,
    thresholds: VerdictThresholds | None = None,
    held: VerdictState | None = None,
) -> Verdict:
    """Classify one sample of one GPU. See the module docstring for the rules.

    ``held``: the state published now (hysteresis). A held ``memory`` or ``compute`` state is
    kept until its signal falls below the leave threshold (the dead band).
    """
    th = thresholds if thresholds is not None else VerdictThresholds()
    ev = evidence
    label = _evidence_label(ev)
    busy = _present_max(ev.kernel_busy_ratio, ev.sm_active_ratio)
    activity = _present_max(busy, ev.dram_active_ratio, ev.tensor_active_ratio)
    tokens = _tokens_per_second(ev)
    flowing = tokens is not None and tokens > 0

    if tokens is None and activity is None:
        gpu_part = "the GPU reports no utilization" if ev.tier != "none" else "no GPU counters"
        return _finish(
            "unknown",
            label,
            f"nothing to judge on: no engine token counts and {gpu_part}",
            ev,
            codes=("no_evidence",),
        )

    if not flowing and (activity is None or activity < th.idle_busy_ratio):
        token_part = "no tokens" if tokens is not None else "no engine token counts"
        gpu_part = f"GPU {_pct(activity)} busy" if activity is not None else "no GPU activity seen"
        return _finish("idle", label, f"{token_part} and {gpu_part}", ev)

    memory = _memory_signal(ev, th, held)
    compute = _compute_signal(ev, th, held)
    roof = _roof_verdict(ev, th, label, memory, compute)
    if roof is not None:
        return roof

    host = _host_phrase(ev, th)
    comm = _communication_phrase(ev, th)
    has_roof_signal = memory is not None or compute is not None
    if has_roof_signal or host is not None or comm is not None or not flowing:
        if busy is not None:
            lead = f"GPU busy {_pct(busy)}"
        elif flowing:
            lead = f"{_num(tokens or 0.0)} tok/s flowing"
        else:
            lead = f"GPU {_pct(activity or 0.0)} active"
        lows = [f"{s.name} {_pct(s.value)}" for s in (memory, compute) if s is not None]
        codes: list[VerdictCode] = []
        bound_phrase = _upper_bound_phrase(compute)
        if bound_phrase is not None:
            codes.append("prefix_upper_bound")
        if lows:
            body = f"{lead} but {', '.join(lows)}, no roof reached"
        elif _intensity_phrase(ev) is not None:
            body = f"{lead}, {_intensity_phrase(ev)}, no roof reached"
        elif host is not None:
            body = f"{lead}, host bound"
        elif comm is not None:
            body = f"{lead}, no roof reached"
        else:
            body = f"{lead} with no roof evidence (no DRAM/tensor counters, model or tokens)"
        if bound_phrase is not None:
            body += f" ({bound_phrase})"
        if comm is not None:
            body += f"; {comm}"
            codes.append("communication")
        body += "".join(f", {part}" for part in _context(ev, skip=("intensity",)))
        if host is not None:
            body += f" ({host})"
            codes.append("host_bound")
        return _finish("latency", label, body, ev, codes=tuple(codes))

    return _engine_estimate(ev, label)


def classify_held(
    state: HysteresisState, evidence: VerdictEvidence, thresholds: VerdictThresholds
) -> HysteresisState:
    """Classify with the dead band of the published state, then advance the hysteresis."""
    held = state.current.state if state.current is not None else None
    observed = classify(evidence, thresholds, held)
    return advance(state, observed, thresholds.hold_samples)


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


def published(state: HysteresisState) -> Verdict | None:
    """The verdict to export, or ``None`` before the first observation."""
    return state.current
