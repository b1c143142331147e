"""Join stage: pair GPUs with the engines on them, and for each pair (a *target*) place the
workload on the roofline, classify the bottleneck and hold it through hysteresis.

Targets: one per (GPU, engine on it); an engine up with no visible GPU is a target of its own
(against ``gpu_model``'s roof); a GPU no engine claims is a target with no engine. Verdict
state is kept per ``(GPU uuid, engine)`` so a flicker in one pair never moves another.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rooftop.classifiers.communication import interconnect_active_ratio
from rooftop.classifiers.hardware import Interconnect, UnknownGpuError, lookup_gpu
from rooftop.classifiers.models import ModelConfigError
from rooftop.classifiers.operating_point import LiveWorkload, OperatingPoint, operating_point
from rooftop.classifiers.roofline import Roof
from rooftop.classifiers.verdict import (
    HysteresisState,
    Tier,
    Verdict,
    VerdictEvidence,
    VerdictThresholds,
    advance,
    classify,
    held_verdict,
    published,
)
from rooftop.exporter.pipeline.engines import EngineSample
from rooftop.exporter.pipeline.gpus import GpuSpecs, Peaks
from rooftop.exporter.snapshot import EngineView, GpuView, TargetView
from rooftop.exporter.telemetry import GpuReading
from rooftop.exporter.totals import AmountTotal, StateSeconds

log = logging.getLogger(__name__)

THROTTLE_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "hw_thermal_slowdown",
        "sw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)
"""Clock-event reasons that mean the GPU runs below its clocks (not idle, not app clocks)."""


def _link(gpu: GpuView | None) -> Interconnect | None:
    """The GPU's tensor-parallel link from the catalog (NVLink/PCIe figures with sources)."""
    if gpu is None or gpu.catalog_id is None:
        return None
    try:
        return lookup_gpu(gpu.catalog_id).interconnect
    except UnknownGpuError:
        return None


def _attention_peak(gpu: GpuView | None) -> float | None:
    """Attention kernels (FlashAttention, FlashMLA) run BF16 beside 8- and 4-bit GEMMs."""
    if gpu is None or gpu.compute_dtype in ("bf16", "fp16", "fp32"):
        return None
    return gpu.peak_flops_per_second.get("bf16")


def verdict_thresholds(hold_samples: int, overrides: Mapping[str, Any]) -> VerdictThresholds:
    """The classifier's defaults with the configured overrides."""
    return replace(VerdictThresholds(hold_samples=hold_samples), **dict(overrides))


class JoinStage:
    """GPU × engine targets, their operating points and their held verdicts."""

    def __init__(
        self,
        thresholds: VerdictThresholds,
        specs: GpuSpecs,
        default_context_tokens: int,
    ) -> None:
        self._thresholds = thresholds
        self._specs = specs
        self._default_context = default_context_tokens
        self._hysteresis: dict[tuple[str, str], HysteresisState] = {}
        self._totals: dict[tuple[str, str], _TargetTotals] = {}
        self._now: float | None = None
        self._elapsed = 0.0
        self._failed: dict[str, str] = {}

    def forget_engine(self, engine: str) -> None:
        """The engine is gone: drop its verdict history on every GPU."""
        for key in [key for key in self._hysteresis if key[1] == engine]:
            del self._hysteresis[key]
        for key in [key for key in self._totals if key[1] == engine]:
            del self._totals[key]

    def targets(
        self, gpus: list[GpuView], engines: list[EngineSample], now: float | None = None
    ) -> list[TargetView]:
        """This cycle's targets; ``now`` (monotonic seconds) advances the time-in-state
        counters by the time since the previous cycle."""
        self._elapsed = now - self._now if now is not None and self._now is not None else 0.0
        self._now = now
        by_uuid = {view.identity.uuid: view for view in gpus}
        claimed: set[str] = set()
        targets: list[TargetView] = []
        for engine in engines:
            engine_gpus = [by_uuid[uuid] for uuid in engine.view.gpus if uuid in by_uuid]
            if engine_gpus:
                for gpu in engine_gpus:
                    claimed.add(gpu.identity.uuid)
                    targets.append(self._target(gpu, engine))
            elif engine.view.up:
                targets.append(self._target(None, engine))
        for gpu in gpus:
            if gpu.identity.uuid not in claimed:
                targets.append(self._target(gpu, None))
        return targets

    def _target(self, gpu: GpuView | None, engine: EngineSample | None) -> TargetView:
        """One target; a failure in one target (a bug, an unforeseen value) costs that
        target's roofline and verdict this cycle, never the snapshot."""
        try:
            return self._joined(gpu, engine)
        except Exception as exc:
            view = engine.view if engine is not None else None
            key = f"{gpu.identity.uuid if gpu else ''}/{view.name if view else ''}"
            if self._failed.get(key) != str(exc):
                log.exception("target %s: roofline and verdict skipped this cycle", key)
            self._failed[key] = str(exc)
            self._hysteresis.pop(
                (gpu.identity.uuid if gpu else "", view.name if view else ""), None
            )
            peaks = Peaks.of_gpu(gpu) if gpu is not None else self._specs.engine_only_peaks()
            return TargetView(
                gpu=str(gpu.identity.index) if gpu is not None else "",
                uuid=gpu.identity.uuid if gpu is not None else "",
                engine=view.name if view is not None else "",
                model=(view.model or "") if view is not None else "",
                peak_flops_per_second=peaks.flops_per_second,
                peak_bandwidth_bytes_per_second=peaks.bandwidth_bytes_per_second,
                point=None,
                verdict=None,
            )

    def _joined(self, gpu: GpuView | None, engine: EngineSample | None) -> TargetView:
        view = engine.view if engine is not None else None
        uuid = gpu.identity.uuid if gpu is not None else ""
        engine_label = view.name if view is not None else ""
        peaks = Peaks.of_gpu(gpu) if gpu is not None else self._specs.engine_only_peaks()
        point = self._operating_point(gpu, engine, peaks)
        reading = gpu.reading if gpu is not None and gpu.up else None
        key = (uuid, engine_label)
        verdict = self._verdict(key, gpu, reading, view, point, peaks)
        totals = self._totals.setdefault(key, _TargetTotals())
        totals.advance(verdict, self._elapsed, view, point)
        return TargetView(
            gpu=str(gpu.identity.index) if gpu is not None else "",
            uuid=uuid,
            engine=engine_label,
            model=(view.model or "") if view is not None else "",
            peak_flops_per_second=peaks.flops_per_second,
            peak_bandwidth_bytes_per_second=peaks.bandwidth_bytes_per_second,
            point=point,
            verdict=verdict,
            bound_seconds_total=dict(totals.states.seconds),
            model_bytes_total={phase: t.total for phase, t in totals.bytes.items()},
            model_flops_total={phase: t.total for phase, t in totals.flops.items()},
        )

    def _operating_point(
        self, gpu: GpuView | None, engine: EngineSample | None, peaks: Peaks
    ) -> OperatingPoint | None:
        flops, bandwidth = peaks.flops_per_second, peaks.bandwidth_bytes_per_second
        if engine is None or not engine.view.up or not flops or not bandwidth:
            return None
        model, view = engine.model, engine.view
        if model is None or model.arch is None:
            return None
        context = view.mean_context_tokens
        try:
            return operating_point(
                LiveWorkload(
                    model=model.arch,
                    roof=Roof(flops, bandwidth, _attention_peak(gpu), _link(gpu)),
                    weights=model.weights,
                    kv_dtype=model.kv_dtype,
                    tensor_parallel=view.tensor_parallel,
                    batch=view.requests_running_mean,
                    context_tokens=round(context) if context is not None else self._default_context,
                    decode_tokens_per_second=view.decode_tokens_per_second,
                    prefill_tokens_per_second=view.prefill_tokens_per_second,
                    dram_bytes_per_second=gpu.dram_bandwidth_bytes_per_second if gpu else None,
                    speculation=view.speculation,
                    draft_model=engine.draft_model,
                    prefill_includes_cached=view.prefill_includes_cached,
                    prefix_cache_hit_ratio=view.prefix_cache_hit_ratio,
                    kv_capacity_tokens=view.kv_capacity_tokens,
                    engine_flops_per_second=view.engine_flops_per_second,
                    engine_bytes_per_second=view.engine_bytes_per_second,
                )
            )
        except (ValueError, ModelConfigError) as exc:
            log.warning("roofline for %s failed: %s", view.name, exc)
            return None

    def _verdict(
        self,
        key: tuple[str, str],
        gpu: GpuView | None,
        reading: GpuReading | None,
        engine: EngineView | None,
        point: OperatingPoint | None,
        peaks: Peaks,
    ) -> Verdict | None:
        if gpu is not None and not gpu.up and (engine is None or not engine.up):
            self._hysteresis.pop(key, None)
            return None  # nothing is known about this GPU this cycle
        tier: Tier = reading.tier if reading is not None else "none"
        hardware = reading is not None and tier in ("gpm", "dcgm")
        evidence = VerdictEvidence(
            tier=tier,
            dram_active_ratio=reading.dram_active_ratio if hardware and reading else None,
            sm_active_ratio=reading.sm_active_ratio if hardware and reading else None,
            tensor_active_ratio=reading.tensor_active_ratio if hardware and reading else None,
            kernel_busy_ratio=reading.kernel_busy_ratio if reading is not None else None,
            decode_tokens_per_second=engine.decode_tokens_per_second if engine else None,
            prefill_tokens_per_second=engine.prefill_tokens_per_second if engine else None,
            batch_size=engine.requests_running_mean if engine else None,
            model_bandwidth_utilization_ratio=(
                point.model_bandwidth_utilization_ratio if point else None
            ),
            model_flops_utilization_ratio=point.model_flops_utilization_ratio if point else None,
            arithmetic_intensity_flops_per_byte=(
                point.workload_arithmetic_intensity if point else None
            ),
            ridge_point_flops_per_byte=peaks.ridge_point_flops_per_byte,
            host_busiest_thread_ratio=engine.process_busiest_thread_ratio if engine else None,
            throttled=bool(
                reading is not None and THROTTLE_REASONS & set(reading.clock_event_reasons)
            ),
            communication_share_ratio=point.communication_share if point else None,
            interconnect_active_ratio=_link_share(gpu, reading),
            tokens_per_step_per_sequence=_tokens_per_step(engine, point),
            mfu_upper_bound=bool(point and point.prefill_flops_upper_bound),
            decode_mfu_ratio=point.decode_model_flops_utilization_ratio if point else None,
            cross_check=point.cross_check if point else None,
        )
        before = self._hysteresis.get(key, HysteresisState())
        previous = published(before)
        # As classify_held: classify with the published state's dead band, then advance; the
        # observation is kept to show a held state with this cycle's numbers.
        observed = classify(
            evidence, self._thresholds, previous.state if previous is not None else None
        )
        state = advance(before, observed, self._thresholds.hold_samples)
        self._hysteresis[key] = state
        current = published(state)
        if current is not None and (previous is None or previous.state != current.state):
            where = f"GPU {gpu.identity.index}" if gpu is not None else "engine-only"
            log.info("%s %s: %s", where, key[1] or "(no engine)", current.reason)
        # A held state is shown with this cycle's numbers, never an older cycle's reason.
        return held_verdict(current, observed) if current is not None else None


class _TargetTotals:
    """One target's counters: seconds per published state, model bytes and FLOPs by phase.

    Bytes and FLOPs are the engine's token increases since the previous cycle (from rooftop's
    reset-aware token totals) times this cycle's per-token cost on this GPU: decode from the
    operating point; prefill per token from its achieved FLOP/s over its token rate, and its
    bytes from that over the prefill intensity.
    """

    def __init__(self) -> None:
        self.states = StateSeconds()
        self.bytes: dict[str, AmountTotal] = {}
        self.flops: dict[str, AmountTotal] = {}
        self._last_tokens: dict[str, float] = {}

    def advance(
        self,
        verdict: Verdict | None,
        elapsed: float,
        engine: EngineView | None,
        point: OperatingPoint | None,
    ) -> None:
        self.states.add(verdict.state if verdict is not None else None, elapsed)
        if engine is None or not engine.up:
            self._last_tokens.clear()  # never count across an outage
            return
        for phase, total in (
            ("decode", engine.decode_tokens_total),
            ("prefill", engine.prefill_tokens_total),
        ):
            if total is None:
                self._last_tokens.pop(phase, None)
                continue
            last = self._last_tokens.get(phase)
            self._last_tokens[phase] = total
            if last is None or point is None:
                continue
            tokens = max(0.0, total - last)
            per_token = _per_token_cost(phase, point, engine)
            if per_token is None:
                continue
            flops, moved = per_token
            self.flops.setdefault(phase, AmountTotal()).add(tokens * flops)
            self.bytes.setdefault(phase, AmountTotal()).add(tokens * moved)


def _per_token_cost(
    phase: str, point: OperatingPoint, engine: EngineView
) -> tuple[float, float] | None:
    """(FLOPs, bytes) one token of ``phase`` costs on this GPU, or ``None`` when unknown."""
    if phase == "decode":
        return point.decode_flops_per_token, point.decode_bytes_per_token
    rate = engine.prefill_tokens_per_second
    achieved = point.prefill_achieved_flops_per_second
    if not rate or achieved is None or point.prefill_arithmetic_intensity <= 0:
        return None
    flops = achieved / rate
    return flops, flops / point.prefill_arithmetic_intensity


def _link_share(gpu: GpuView | None, reading: GpuReading | None) -> float | None:
    """GPM/DCGM NVLink bytes/s over the link's peak both ways (``None`` without both)."""
    if reading is None:
        return None
    try:
        return interconnect_active_ratio(
            reading.nvlink_tx_bytes_per_second, reading.nvlink_rx_bytes_per_second, _link(gpu)
        )
    except ValueError:
        return None


def _tokens_per_step(engine: EngineView | None, point: OperatingPoint | None) -> float | None:
    if point is not None:
        return point.tokens_per_step_per_sequence
    if engine is not None and engine.speculation is not None:
        return engine.speculation.tokens_per_step_per_sequence
    return None
