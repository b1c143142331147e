"""Every metric rooftop exports, as one declarative table.

The collector renders these rows from the latest :class:`~rooftop.exporter.snapshot.Snapshot`; the
README's metric reference is generated from the same rows (``python -m rooftop.exporter.metrics``).
A row's ``samples`` reads the snapshot and yields ``(label values, value)``; a ``None`` value
is skipped, so what is unknown is absent rather than zero.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from rooftop.classifiers.hardware import DTYPES
from rooftop.classifiers.verdict import (
    CAUSE_DESCRIPTIONS,
    CAUSES,
    EVIDENCE_LABELS,
    STATES,
    TIERS,
    VERDICT_CODES,
)
from rooftop.exporter.histograms import QUANTILES
from rooftop.exporter.snapshot import EngineView, GpuView, Snapshot

MetricType = Literal["gauge", "counter", "info"]
Sample = tuple[tuple[str, ...], float | None]

GPU_LABELS = ("gpu", "uuid")
ENGINE_LABELS = ("engine", "model")
TARGET_LABELS = ("gpu", "uuid", "engine", "model")
VERDICT_STATES: tuple[str, ...] = STATES
ARITHMETIC_INTENSITY_PHASES = ("decode", "prefill", "mix")
GPU_MAPPING_LABELS = ("config", "discovered", "none")


@dataclass(frozen=True)
class LabelDef:
    """What a label means and which values it can take: ``values`` when the set is fixed,
    else ``one_per`` names the thing that bounds it (one value per GPU, per engine, ...).
    No label carries a number or free text, so the series count stays bounded."""

    meaning: str
    values: tuple[str, ...] = ()
    one_per: str = ""


LABELS: dict[str, LabelDef] = {
    "gpu": LabelDef(
        "NVML index of the GPU; empty for an engine whose GPUs cannot be seen", (), "GPU"
    ),
    "uuid": LabelDef(
        "NVML UUID of the GPU; empty for an engine whose GPUs cannot be seen", (), "GPU"
    ),
    "engine": LabelDef(
        "the engine: its configured name, else the host:port of its metrics URL", (), "engine"
    ),
    "model": LabelDef("the model the engine reports serving (or the configured one)", (), "engine"),
    "state": LabelDef("the bottleneck verdict", VERDICT_STATES),
    "evidence": LabelDef("the evidence tier the verdict rests on", EVIDENCE_LABELS),
    "decided_by": LabelDef("what decided the verdict (see the table below)", CAUSES),
    "cause": LabelDef(
        "a cause the verdict's reason names (rooftop_gpu_bound_cause)", VERDICT_CODES
    ),
    "tier": LabelDef("the GPU telemetry tier the activity figures come from", TIERS),
    "phase": LabelDef(
        "decode, prefill, or the live mix of both weighted by their token rates (the "
        "intensity the verdict compares with the ridge point)",
        ARITHMETIC_INTENSITY_PHASES,
    ),
    "basis": LabelDef(
        "intensity: model (from the architecture) or observed (model FLOPs over the DRAM bytes "
        "counted); prefill FLOPs: computed (cache hits removed) or upper_bound",
        ("model", "observed", "computed", "upper_bound"),
    ),
    "dtype": LabelDef("the data type of a peak FLOP/s figure", DTYPES),
    "compute_dtype": LabelDef("the dtype whose peak is this GPU's compute roof", DTYPES),
    "reason": LabelDef(
        "an NVML clock-event reason (gpu_idle, applications_clocks_setting, sw_power_cap, "
        "hw_slowdown, sync_boost, sw_thermal_slowdown, hw_thermal_slowdown, "
        "hw_power_brake_slowdown, display_clock_setting; bit_N for a bit NVML adds later)",
        (),
        "clock-event bit (at most 64)",
    ),
    "source": LabelDef(
        "a source: nvml, dcgm, a discovery mechanism, or an engine by its engine label; on "
        "the cross-check rates, which figure (model, engine, hardware)",
        (),
        "configured or discovered source",
    ),
    "kind": LabelDef("what the source is", ("gpu", "engine", "host", "discovery")),
    "version": LabelDef("rooftop's version", (), "rooftop process"),
    "demo": LabelDef("whether every series is simulated", ("true", "false")),
    "name": LabelDef("the GPU's NVML product name", (), "GPU"),
    "catalog_id": LabelDef("rooftop's catalog id for the GPU, or unknown", (), "GPU"),
    "pci_device_id": LabelDef("the GPU's PCI device id (0x2330)", (), "GPU"),
    "family": LabelDef("the engine adapter that recognised the exposition", (), "engine"),
    "version_family": LabelDef("the engine release family the adapter recognised", (), "engine"),
    "model_resolved": LabelDef("the catalog or config model the roofline uses", (), "engine"),
    "weights": LabelDef("the weight format the roofline assumes", (), "engine"),
    "kv_dtype": LabelDef("the KV-cache dtype the roofline assumes", (), "engine"),
    "tensor_parallel": LabelDef("GPUs the engine shards the model over", (), "engine"),
    "quantile": LabelDef(
        "the quantile, over rooftop's rate window, from the engine's histogram buckets",
        tuple(f"{q:g}" for q in QUANTILES),
    ),
    "method": LabelDef("the speculative drafting method the engine runs", (), "engine"),
    "quantity": LabelDef("what a cross-check compares", ("flops", "bytes")),
    "pair": LabelDef(
        "which two figures a cross-check sets against each other",
        ("engine_over_model", "hardware_over_model"),
    ),
    "type": LabelDef(
        "ECC error type: corrected (single-bit) or uncorrected (double-bit)",
        ("corrected", "uncorrected"),
    ),
    "gpu_mapping": LabelDef(
        "how the engine's GPUs were found (the reason, when none were, is on the landing page "
        "and in the log)",
        GPU_MAPPING_LABELS,
    ),
}
"""Every label any metric carries. ``docs/metrics.md`` is generated from this and
:data:`METRICS`; a test checks every exported value against it."""


def mapping_label(mapping: str) -> str:
    """The bounded ``gpu_mapping`` label for an engine's mapping sentence."""
    return mapping if mapping in ("config", "discovered") else "none"


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: MetricType
    help: str
    unit: str
    labels: tuple[str, ...]
    samples: Callable[[Snapshot], Iterable[Sample]]


def _gpu_key(view: GpuView) -> tuple[str, str]:
    return (str(view.identity.index), view.identity.uuid)


def _per_gpu(value: Callable[[GpuView], float | None]) -> Callable[[Snapshot], Iterator[Sample]]:
    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for view in snapshot.gpus:
            yield _gpu_key(view), value(view)

    return samples


def _per_gpu_reading(field_name: str) -> Callable[[Snapshot], Iterator[Sample]]:
    """A GPU reading field, labelled with the telemetry tier it came from."""

    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for view in snapshot.gpus:
            if view.reading is None or not view.up:
                continue
            value = getattr(view.reading, field_name)
            yield (*_gpu_key(view), view.reading.tier), value

    return samples


def _per_engine(
    value: Callable[[EngineView], float | None],
) -> Callable[[Snapshot], Iterator[Sample]]:
    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for engine in snapshot.engines:
            if not engine.up:
                continue
            yield (engine.name, engine.model or ""), value(engine)

    return samples


def _per_point(field_name: str) -> Callable[[Snapshot], Iterator[Sample]]:
    """A field of each target's operating point (absent where there is no point)."""

    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for target in snapshot.targets:
            if target.point is not None:
                value = getattr(target.point, field_name)
                yield (
                    (target.gpu, target.uuid, target.engine, target.model),
                    None if value is None else float(value),
                )

    return samples


def _gpu_info(snapshot: Snapshot) -> Iterator[Sample]:
    for view in snapshot.gpus:
        identity = view.identity
        pci = f"0x{identity.pci_device_id:04x}" if identity.pci_device_id is not None else ""
        yield (
            (
                *_gpu_key(view),
                identity.name,
                view.catalog_id or "unknown",
                pci,
                view.tier,
                view.compute_dtype,
            ),
            1.0,
        )


def _gpu_peak_flops(snapshot: Snapshot) -> Iterator[Sample]:
    for view in snapshot.gpus:
        for dtype, peak in sorted(view.peak_flops_per_second.items()):
            yield (*_gpu_key(view), dtype), peak


def _gpu_clock_events(snapshot: Snapshot) -> Iterator[Sample]:
    for view in snapshot.gpus:
        if view.reading is None or not view.up:
            continue
        for reason in view.reading.clock_event_reasons:
            yield (*_gpu_key(view), reason), 1.0


def _gpu_ecc_errors(snapshot: Snapshot) -> Iterator[Sample]:
    for view in snapshot.gpus:
        if view.reading is None or not view.up:
            continue
        for kind, count in (
            ("corrected", view.reading.ecc_corrected_errors_total),
            ("uncorrected", view.reading.ecc_uncorrected_errors_total),
        ):
            if count is not None:
                yield (*_gpu_key(view), kind), float(count)


def _reading(field_name: str) -> Callable[[GpuView], float | None]:
    """A reading field of an up GPU as a float (absent when down or unread)."""

    def value(view: GpuView) -> float | None:
        if view.reading is None or not view.up:
            return None
        raw = getattr(view.reading, field_name)
        return None if raw is None else float(raw)

    return value


def _engine_quantiles(field_name: str) -> Callable[[Snapshot], Iterator[Sample]]:
    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for engine in snapshot.engines:
            if not engine.up:
                continue
            for quantile, seconds in sorted(getattr(engine, field_name).items()):
                yield (engine.name, engine.model or "", f"{quantile:g}"), seconds

    return samples


def _per_target_by(field_name: str) -> Callable[[Snapshot], Iterator[Sample]]:
    """A per-target dict field (state or phase -> total) as one sample per key."""

    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for target in snapshot.targets:
            key = (target.gpu, target.uuid, target.engine, target.model)
            for name, value in sorted(getattr(target, field_name).items()):
                yield (*key, name), value

    return samples


def _engine_info(snapshot: Snapshot) -> Iterator[Sample]:
    for engine in snapshot.engines:
        yield (
            (
                engine.name,
                engine.model or "",
                engine.family or "unknown",
                engine.version_family or "",
                engine.model_resolved or "",
                engine.weights or "",
                engine.kv_dtype or "",
                str(engine.tensor_parallel),
                mapping_label(engine.mapping),
            ),
            1.0,
        )


def _bound_states(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        if target.verdict is None:
            continue
        for state in STATES:
            value = 1.0 if target.verdict.state == state else 0.0
            yield (target.gpu, target.uuid, target.engine, target.model, state), value


def _bound_info(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        if target.verdict is None:
            continue
        verdict = target.verdict
        yield (
            (
                target.gpu,
                target.uuid,
                target.engine,
                target.model,
                verdict.state,
                verdict.evidence,
                verdict.cause,
            ),
            1.0,
        )


def _arithmetic_intensity(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        point = target.point
        if point is None:
            continue
        key = (target.gpu, target.uuid, target.engine, target.model)
        yield (*key, "decode", "model"), point.decode_arithmetic_intensity
        yield (*key, "decode", "observed"), point.decode_observed_arithmetic_intensity
        yield (*key, "prefill", "model"), point.prefill_arithmetic_intensity
        yield (*key, "mix", "model"), point.workload_arithmetic_intensity


def _achieved_flops(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        point = target.point
        if point is None:
            continue
        key = (target.gpu, target.uuid, target.engine, target.model)
        yield (*key, "decode"), point.decode_achieved_flops_per_second
        yield (*key, "prefill"), point.prefill_achieved_flops_per_second


def _speculative_acceptance(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        point = target.point
        if point is None or point.speculative_acceptance_ratio is None:
            continue
        key = (target.gpu, target.uuid, target.engine, target.model)
        yield (*key, point.speculative_method or "unknown"), point.speculative_acceptance_ratio


def _prefill_flops_basis(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        point = target.point
        if point is None or point.prefill_computed_tokens_per_second is None:
            continue
        key = (target.gpu, target.uuid, target.engine, target.model)
        basis = "upper_bound" if point.prefill_flops_upper_bound else "computed"
        yield (*key, basis), 1.0


def _cross_check_rates(quantity: str) -> Callable[[Snapshot], Iterator[Sample]]:
    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for target in snapshot.targets:
            point = target.point
            if point is None:
                continue
            key = (target.gpu, target.uuid, target.engine, target.model)
            if quantity == "flops":
                figures = {
                    "model": point.model_flops_per_second,
                    "engine": point.engine_flops_per_second,
                }
            else:
                figures = {
                    "model": point.model_bytes_per_second,
                    "engine": point.engine_bytes_per_second,
                    "hardware": point.hardware_bytes_per_second,
                }
            for source, value in figures.items():
                if value is not None:
                    yield (*key, source), value

    return samples


def _cross_check_ratios(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        point = target.point
        if point is None or point.cross_check is None:
            continue
        key = (target.gpu, target.uuid, target.engine, target.model)
        for quantity in ("flops", "bytes"):
            for pair in ("engine/model", "hardware/model"):
                ratio = point.cross_check.ratio(quantity, pair)
                if ratio is not None:
                    yield (*key, quantity, pair.replace("/", "_over_")), ratio


def _bound_causes(snapshot: Snapshot) -> Iterator[Sample]:
    for target in snapshot.targets:
        if target.verdict is None:
            continue
        key = (target.gpu, target.uuid, target.engine, target.model)
        for code in VERDICT_CODES:
            yield (*key, code), 1.0 if code in target.verdict.codes else 0.0


def _source_field(
    value: Callable[[Snapshot, int], float | None],
) -> Callable[[Snapshot], Iterator[Sample]]:
    def samples(snapshot: Snapshot) -> Iterator[Sample]:
        for position, status in enumerate(snapshot.sources):
            yield (status.source, status.kind), value(snapshot, position)

    return samples


def _build_info(snapshot: Snapshot) -> Iterator[Sample]:
    yield (snapshot.version, "true" if snapshot.demo else "false"), 1.0


def _bool(value: bool | None) -> float | None:
    return None if value is None else float(value)


METRICS: tuple[MetricDef, ...] = (
    # --- rooftop itself ---------------------------------------------------------------
    MetricDef(
        "rooftop_build_info",
        "info",
        'rooftop version; demo="true" when every series comes from the simulated demo node.',
        "",
        ("version", "demo"),
        _build_info,
    ),
    MetricDef(
        "rooftop_snapshot_timestamp_seconds",
        "gauge",
        "Unix time at which the sampler published the snapshot being served.",
        "seconds",
        (),
        lambda s: [((), s.unix_seconds)],
    ),
    MetricDef(
        "rooftop_snapshot_age_seconds",
        "gauge",
        "Seconds since the snapshot being served was published (grows when the sampler stalls).",
        "seconds",
        (),
        lambda s: [],  # filled in by the collector at scrape time, from its own clock
    ),
    MetricDef(
        "rooftop_sampler_cycle_seconds",
        "gauge",
        "Wall time the last sampler cycle took, all sources included.",
        "seconds",
        (),
        lambda s: [((), s.cycle_seconds)],
    ),
    MetricDef(
        "rooftop_source_up",
        "gauge",
        "1 when the source's last poll succeeded; 0 with the reason on the landing page and in "
        "the log. An engine source is named by its engine label.",
        "",
        ("source", "kind"),
        _source_field(lambda s, i: _bool(s.sources[i].up)),
    ),
    MetricDef(
        "rooftop_source_duration_seconds",
        "gauge",
        "How long the source's last poll took.",
        "seconds",
        ("source", "kind"),
        _source_field(lambda s, i: s.sources[i].duration_seconds),
    ),
    MetricDef(
        "rooftop_source_rejected_values",
        "gauge",
        "Values the source's last poll exported but that were impossible (negative, NaN, "
        "+-Inf, absurd) and were dropped; the rest of the source is kept. The log names them.",
        "",
        ("source", "kind"),
        _source_field(lambda s, i: float(len(s.sources[i].rejected))),
    ),
    MetricDef(
        "rooftop_source_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the source's last successful poll.",
        "seconds",
        ("source", "kind"),
        _source_field(lambda s, i: s.sources[i].last_success_unix_seconds),
    ),
    # --- GPU identity and roof --------------------------------------------------------
    MetricDef(
        "rooftop_gpu_info",
        "info",
        "GPU identity, its catalog match and the telemetry tier its activity figures come from.",
        "",
        (*GPU_LABELS, "name", "catalog_id", "pci_device_id", "tier", "compute_dtype"),
        _gpu_info,
    ),
    MetricDef(
        "rooftop_gpu_up",
        "gauge",
        "1 when the GPU answered this cycle; 0 when it is lost, hung or unreadable.",
        "",
        GPU_LABELS,
        _per_gpu(lambda v: float(v.up)),
    ),
    MetricDef(
        "rooftop_gpu_peak_flops_per_second",
        "gauge",
        "Dense peak FLOP/s for each dtype (catalog or override; sparse figures never used).",
        "flops_per_second",
        (*GPU_LABELS, "dtype"),
        _gpu_peak_flops,
    ),
    MetricDef(
        "rooftop_gpu_peak_memory_bandwidth_bytes_per_second",
        "gauge",
        "Peak DRAM bandwidth (catalog or override).",
        "bytes_per_second",
        GPU_LABELS,
        _per_gpu(lambda v: v.peak_bandwidth_bytes_per_second),
    ),
    MetricDef(
        "rooftop_gpu_nvml_memory_bandwidth_bytes_per_second",
        "gauge",
        "Theoretical bandwidth from NVML's max memory clock and bus width (cross-check).",
        "bytes_per_second",
        GPU_LABELS,
        _per_gpu(lambda v: v.nvml_bandwidth_bytes_per_second),
    ),
    MetricDef(
        "rooftop_gpu_ridge_point_flops_per_byte",
        "gauge",
        "Ridge point: peak FLOP/s of the compute dtype over peak bandwidth.",
        "flops_per_byte",
        GPU_LABELS,
        _per_gpu(lambda v: v.ridge_point_flops_per_byte),
    ),
    MetricDef(
        "rooftop_gpu_memory_total_bytes",
        "gauge",
        "Device memory size.",
        "bytes",
        GPU_LABELS,
        _per_gpu(
            lambda v: (
                None
                if v.identity.memory_total_bytes is None
                else float(v.identity.memory_total_bytes)
            )
        ),
    ),
    # --- GPU activity, by tier --------------------------------------------------------
    MetricDef(
        "rooftop_gpu_sm_active_ratio",
        "gauge",
        "Share of SMs busy over the window (GPM SM_UTIL or DCGM SM_ACTIVE).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("sm_active_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_sm_occupancy_ratio",
        "gauge",
        "Resident warps over the maximum (GPM SM_OCCUPANCY or DCGM SM_OCCUPANCY).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("sm_occupancy_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_tensor_active_ratio",
        "gauge",
        "Tensor pipes busy, any precision (GPM ANY_TENSOR_UTIL or DCGM PIPE_TENSOR_ACTIVE).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("tensor_active_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_tensor_hmma_active_ratio",
        "gauge",
        "Half-precision tensor (HMMA) pipes busy (GPM HMMA_TENSOR_UTIL).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("tensor_hmma_active_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_dram_active_ratio",
        "gauge",
        "Share of peak DRAM bandwidth in use (GPM DRAM_BW_UTIL or DCGM DRAM_ACTIVE).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("dram_active_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_fp16_active_ratio",
        "gauge",
        "FP16 pipe utilization (GPM FP16_UTIL or DCGM PIPE_FP16_ACTIVE).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("fp16_active_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_fp32_active_ratio",
        "gauge",
        "FP32 pipe utilization (GPM FP32_UTIL or DCGM PIPE_FP32_ACTIVE).",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("fp32_active_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_kernel_busy_ratio",
        "gauge",
        "Classic NVML utilization.gpu: share of time any kernel ran. Not SM utilization.",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("kernel_busy_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_memory_controller_busy_ratio",
        "gauge",
        "Classic NVML utilization.memory: share of time memory was read or written. "
        "Not bandwidth utilization.",
        "ratio",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("memory_controller_busy_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_dram_bandwidth_bytes_per_second",
        "gauge",
        "Observed DRAM bandwidth: DRAM activity ratio times peak bandwidth.",
        "bytes_per_second",
        GPU_LABELS,
        _per_gpu(lambda v: v.dram_bandwidth_bytes_per_second if v.up else None),
    ),
    MetricDef(
        "rooftop_gpu_pcie_transmit_bytes_per_second",
        "gauge",
        "PCIe transmit rate (GPM).",
        "bytes_per_second",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("pcie_tx_bytes_per_second"),
    ),
    MetricDef(
        "rooftop_gpu_pcie_receive_bytes_per_second",
        "gauge",
        "PCIe receive rate (GPM).",
        "bytes_per_second",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("pcie_rx_bytes_per_second"),
    ),
    MetricDef(
        "rooftop_gpu_nvlink_transmit_bytes_per_second",
        "gauge",
        "NVLink transmit rate, all links (GPM).",
        "bytes_per_second",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("nvlink_tx_bytes_per_second"),
    ),
    MetricDef(
        "rooftop_gpu_nvlink_receive_bytes_per_second",
        "gauge",
        "NVLink receive rate, all links (GPM).",
        "bytes_per_second",
        (*GPU_LABELS, "tier"),
        _per_gpu_reading("nvlink_rx_bytes_per_second"),
    ),
    MetricDef(
        "rooftop_gpu_sm_clock_hertz",
        "gauge",
        "Current SM clock.",
        "hertz",
        GPU_LABELS,
        _per_gpu(lambda v: v.reading.sm_clock_hz if v.reading and v.up else None),
    ),
    MetricDef(
        "rooftop_gpu_sm_clock_max_hertz",
        "gauge",
        "Maximum SM clock.",
        "hertz",
        GPU_LABELS,
        _per_gpu(lambda v: v.identity.max_sm_clock_hz),
    ),
    MetricDef(
        "rooftop_gpu_power_watts",
        "gauge",
        "Power draw.",
        "watts",
        GPU_LABELS,
        _per_gpu(lambda v: v.reading.power_watts if v.reading and v.up else None),
    ),
    MetricDef(
        "rooftop_gpu_power_limit_watts",
        "gauge",
        "Enforced power limit.",
        "watts",
        GPU_LABELS,
        _per_gpu(lambda v: v.reading.power_limit_watts if v.reading and v.up else None),
    ),
    MetricDef(
        "rooftop_gpu_temperature_celsius",
        "gauge",
        "GPU core temperature (nvmlDeviceGetTemperature).",
        "celsius",
        GPU_LABELS,
        _per_gpu(_reading("temperature_celsius")),
    ),
    MetricDef(
        "rooftop_gpu_memory_used_bytes",
        "gauge",
        "Device memory in use, all processes (nvmlDeviceGetMemoryInfo).",
        "bytes",
        GPU_LABELS,
        _per_gpu(_reading("memory_used_bytes")),
    ),
    MetricDef(
        "rooftop_gpu_energy_joules_total",
        "counter",
        "Energy the GPU used since the driver loaded (nvmlDeviceGetTotalEnergyConsumption).",
        "joules",
        GPU_LABELS,
        _per_gpu(_reading("energy_joules_total")),
    ),
    MetricDef(
        "rooftop_gpu_ecc_errors_total",
        "counter",
        "ECC errors since the driver loaded (volatile count), by type.",
        "",
        (*GPU_LABELS, "type"),
        _gpu_ecc_errors,
    ),
    MetricDef(
        "rooftop_gpu_xid_errors_total",
        "counter",
        "XID critical-error events seen since rooftop started watching the GPU.",
        "",
        GPU_LABELS,
        _per_gpu(_reading("xid_errors_total")),
    ),
    MetricDef(
        "rooftop_gpu_last_xid_code",
        "gauge",
        "The code of the latest XID event seen (79: fallen off the bus; 48: double-bit ECC).",
        "",
        GPU_LABELS,
        _per_gpu(_reading("last_xid")),
    ),
    MetricDef(
        "rooftop_gpu_clock_event_active",
        "gauge",
        "1 for each clock-event (throttle) reason active now (power cap, thermal, ...).",
        "",
        (*GPU_LABELS, "reason"),
        _gpu_clock_events,
    ),
    MetricDef(
        "rooftop_gpu_mig_instances",
        "gauge",
        "MIG GPU instances on this device (absent when the device does not support MIG).",
        "",
        GPU_LABELS,
        _per_gpu(lambda v: float(v.mig_instances) if v.mig_supported else None),
    ),
    # --- engines ----------------------------------------------------------------------
    MetricDef(
        "rooftop_engine_info",
        "info",
        "An engine endpoint: family, the model it serves and how rooftop resolved it, and how "
        "its GPUs were found.",
        "",
        (
            *ENGINE_LABELS,
            "family",
            "version_family",
            "model_resolved",
            "weights",
            "kv_dtype",
            "tensor_parallel",
            "gpu_mapping",
        ),
        _engine_info,
    ),
    MetricDef(
        "rooftop_engine_prefill_tokens_per_second",
        "gauge",
        "Prompt tokens computed per second (prefix-cache hits excluded where the engine says).",
        "tokens_per_second",
        ENGINE_LABELS,
        _per_engine(lambda e: e.prefill_tokens_per_second),
    ),
    MetricDef(
        "rooftop_engine_decode_tokens_per_second",
        "gauge",
        "Generated tokens per second.",
        "tokens_per_second",
        ENGINE_LABELS,
        _per_engine(lambda e: e.decode_tokens_per_second),
    ),
    MetricDef(
        "rooftop_engine_requests_running",
        "gauge",
        "Requests in the running batch.",
        "",
        ENGINE_LABELS,
        _per_engine(lambda e: e.requests_running),
    ),
    MetricDef(
        "rooftop_engine_batch_size",
        "gauge",
        "Running requests averaged over the rate window: the batch the token rates, the "
        "roofline and the verdict use.",
        "",
        ENGINE_LABELS,
        _per_engine(lambda e: e.requests_running_mean),
    ),
    MetricDef(
        "rooftop_engine_requests_waiting",
        "gauge",
        "Requests queued.",
        "",
        ENGINE_LABELS,
        _per_engine(lambda e: e.requests_waiting),
    ),
    MetricDef(
        "rooftop_engine_kv_cache_usage_ratio",
        "gauge",
        "Share of the KV cache in use.",
        "ratio",
        ENGINE_LABELS,
        _per_engine(lambda e: e.kv_usage_ratio),
    ),
    MetricDef(
        "rooftop_engine_kv_cache_capacity_tokens",
        "gauge",
        "KV cache capacity in tokens.",
        "tokens",
        ENGINE_LABELS,
        _per_engine(lambda e: e.kv_capacity_tokens),
    ),
    MetricDef(
        "rooftop_engine_kv_cache_resident_bytes",
        "gauge",
        "KV cache bytes resident (usage x capacity x model KV bytes per token), all GPUs.",
        "bytes",
        ENGINE_LABELS,
        _per_engine(lambda e: e.kv_resident_bytes),
    ),
    MetricDef(
        "rooftop_engine_inter_token_latency_seconds",
        "gauge",
        "Mean time between generated tokens over the window.",
        "seconds",
        ENGINE_LABELS,
        _per_engine(lambda e: e.inter_token_latency_seconds),
    ),
    MetricDef(
        "rooftop_engine_prefill_tokens_total",
        "counter",
        "Prompt tokens computed (prefix-cache hits excluded where the engine says), counted by "
        "rooftop across engine restarts; increase() gives any window's tokens.",
        "tokens",
        ENGINE_LABELS,
        _per_engine(lambda e: e.prefill_tokens_total),
    ),
    MetricDef(
        "rooftop_engine_decode_tokens_total",
        "counter",
        "Generated tokens, counted by rooftop across engine restarts.",
        "tokens",
        ENGINE_LABELS,
        _per_engine(lambda e: e.decode_tokens_total),
    ),
    MetricDef(
        "rooftop_engine_preemptions_total",
        "counter",
        "Requests the engine preempted (vLLM preemptions, SGLang retractions).",
        "",
        ENGINE_LABELS,
        _per_engine(lambda e: e.preemptions_total),
    ),
    MetricDef(
        "rooftop_engine_time_to_first_token_quantile_seconds",
        "gauge",
        "Time to first token at each quantile over the rate window (the engine's buckets).",
        "seconds",
        (*ENGINE_LABELS, "quantile"),
        _engine_quantiles("time_to_first_token_quantiles"),
    ),
    MetricDef(
        "rooftop_engine_inter_token_latency_quantile_seconds",
        "gauge",
        "Inter-token latency at each quantile over the rate window (the engine's buckets).",
        "seconds",
        (*ENGINE_LABELS, "quantile"),
        _engine_quantiles("inter_token_latency_quantiles"),
    ),
    MetricDef(
        "rooftop_engine_gpu_memory_used_bytes",
        "gauge",
        "GPU memory the engine's process tree holds on its GPUs (NVML per process; absent "
        "when its process cannot be seen).",
        "bytes",
        ENGINE_LABELS,
        _per_engine(lambda e: e.gpu_memory_used_bytes),
    ),
    MetricDef(
        "rooftop_engine_estimated_flops_per_second",
        "gauge",
        "The engine's own FLOP estimate rate (vLLM/SGLang --enable-mfu-metrics).",
        "flops_per_second",
        ENGINE_LABELS,
        _per_engine(lambda e: e.engine_flops_per_second),
    ),
    MetricDef(
        "rooftop_engine_estimated_read_bytes_per_second",
        "gauge",
        "The engine's own read-bytes estimate rate (vLLM/SGLang --enable-mfu-metrics).",
        "bytes_per_second",
        ENGINE_LABELS,
        _per_engine(lambda e: e.engine_read_bytes_per_second),
    ),
    MetricDef(
        "rooftop_engine_estimated_write_bytes_per_second",
        "gauge",
        "The engine's own write-bytes estimate rate (vLLM/SGLang --enable-mfu-metrics).",
        "bytes_per_second",
        ENGINE_LABELS,
        _per_engine(lambda e: e.engine_write_bytes_per_second),
    ),
    MetricDef(
        "rooftop_engine_prefix_cache_hit_ratio",
        "gauge",
        "Share of prompt tokens served from the prefix cache over the window (vLLM counters, "
        "SGLang cache_hit_rate).",
        "ratio",
        ENGINE_LABELS,
        _per_engine(lambda e: e.prefix_cache_hit_ratio),
    ),
    MetricDef(
        "rooftop_engine_process_cpu_cores",
        "gauge",
        "CPU cores used by the engine's process tree.",
        "cores",
        ENGINE_LABELS,
        _per_engine(lambda e: e.process_cpu_cores),
    ),
    MetricDef(
        "rooftop_engine_busiest_thread_cpu_ratio",
        "gauge",
        "CPU share of one core used by the engine's busiest thread (1 = saturated scheduler).",
        "ratio",
        ENGINE_LABELS,
        _per_engine(lambda e: e.process_busiest_thread_ratio),
    ),
    # --- roofline and verdict, per GPU (and engine) ----------------------------------
    MetricDef(
        "rooftop_gpu_bound",
        "gauge",
        "Bottleneck verdict as a one-hot state set: unknown, idle, memory, compute or latency.",
        "",
        (*TARGET_LABELS, "state"),
        _bound_states,
    ),
    MetricDef(
        "rooftop_gpu_bound_seconds_total",
        "counter",
        "Seconds the published verdict spent in each state (time per bottleneck).",
        "seconds",
        (*TARGET_LABELS, "state"),
        _per_target_by("bound_seconds_total"),
    ),
    MetricDef(
        "rooftop_model_bytes_total",
        "counter",
        "Bytes the model moved on this GPU by phase: tokens x the model's bytes per token.",
        "bytes",
        (*TARGET_LABELS, "phase"),
        _per_target_by("model_bytes_total"),
    ),
    MetricDef(
        "rooftop_model_flops_total",
        "counter",
        "FLOPs the model did on this GPU by phase: tokens x the model's FLOPs per token.",
        "flops",
        (*TARGET_LABELS, "phase"),
        _per_target_by("model_flops_total"),
    ),
    MetricDef(
        "rooftop_gpu_bound_info",
        "info",
        "The verdict with the evidence tier it rests on and what decided it, a code from a fixed "
        "set (the sentence with its numbers is on the landing page and in the log; "
        "`rooftop top` words the code).",
        "",
        (*TARGET_LABELS, "state", "evidence", "decided_by"),
        _bound_info,
    ),
    MetricDef(
        "rooftop_decode_bytes_per_token",
        "gauge",
        "Bytes one decode token must move on this GPU, from the model at the live batch and KV.",
        "bytes",
        TARGET_LABELS,
        _per_point("decode_bytes_per_token"),
    ),
    MetricDef(
        "rooftop_decode_observed_bytes_per_token",
        "gauge",
        "Bytes this GPU actually moved per decode token: DRAM bandwidth used / decode tokens/s.",
        "bytes",
        TARGET_LABELS,
        _per_point("decode_observed_bytes_per_token"),
    ),
    MetricDef(
        "rooftop_decode_flops_per_token",
        "gauge",
        "FLOPs one decode token costs on this GPU at the live context.",
        "flops",
        TARGET_LABELS,
        _per_point("decode_flops_per_token"),
    ),
    MetricDef(
        "rooftop_arithmetic_intensity_flops_per_byte",
        "gauge",
        "Arithmetic intensity by phase; basis=model from the architecture, basis=observed from "
        "model FLOPs over DRAM bytes the counters saw; phase=mix is what the verdict compares "
        "with the ridge.",
        "flops_per_byte",
        (*TARGET_LABELS, "phase", "basis"),
        _arithmetic_intensity,
    ),
    MetricDef(
        "rooftop_achieved_flops_per_second",
        "gauge",
        "Model FLOP/s achieved by phase: the operating point's height on the roofline.",
        "flops_per_second",
        (*TARGET_LABELS, "phase"),
        _achieved_flops,
    ),
    MetricDef(
        "rooftop_decode_speed_of_light_tokens_per_second",
        "gauge",
        "Decode tokens/s at speed of light for the live batch and context.",
        "tokens_per_second",
        TARGET_LABELS,
        _per_point("decode_speed_of_light_tokens_per_second"),
    ),
    MetricDef(
        "rooftop_decode_speed_of_light_ratio",
        "gauge",
        "Decode tokens/s achieved over speed of light (MBU while decode is memory-bound).",
        "ratio",
        TARGET_LABELS,
        _per_point("decode_speed_of_light_ratio"),
    ),
    MetricDef(
        "rooftop_prefill_speed_of_light_ratio",
        "gauge",
        "Prefill FLOP/s achieved over the compute roof (prefill MFU).",
        "ratio",
        TARGET_LABELS,
        _per_point("prefill_speed_of_light_ratio"),
    ),
    MetricDef(
        "rooftop_model_bandwidth_utilization_ratio",
        "gauge",
        "MBU (Databricks): model bytes moved per second over peak bandwidth, all phases.",
        "ratio",
        TARGET_LABELS,
        _per_point("model_bandwidth_utilization_ratio"),
    ),
    MetricDef(
        "rooftop_model_flops_utilization_ratio",
        "gauge",
        "MFU: model FLOP/s over peak FLOP/s of the compute dtype, all phases.",
        "ratio",
        TARGET_LABELS,
        _per_point("model_flops_utilization_ratio"),
    ),
    MetricDef(
        "rooftop_gpu_bound_cause",
        "gauge",
        "Causes the verdict's reason names, one series per stable code (1 when named): "
        "no_evidence, host_bound, communication, speculation, prefix_upper_bound, "
        "model_intensity, token_proxy, cross_check, throttled.",
        "",
        (*TARGET_LABELS, "cause"),
        _bound_causes,
    ),
    MetricDef(
        "rooftop_decode_tokens_per_step_per_sequence",
        "gauge",
        "Tokens each decoding sequence emits per step: 1, or 1 + k x acceptance with "
        "speculative decoding.",
        "tokens",
        TARGET_LABELS,
        _per_point("tokens_per_step_per_sequence"),
    ),
    MetricDef(
        "rooftop_speculative_acceptance_ratio",
        "gauge",
        "Share of speculative draft tokens accepted (engine counters, else the configured "
        "figure), by drafting method.",
        "ratio",
        (*TARGET_LABELS, "method"),
        _speculative_acceptance,
    ),
    MetricDef(
        "rooftop_communication_seconds",
        "gauge",
        "Tensor-parallel all-reduce time the model puts in each step (on the critical path).",
        "seconds",
        TARGET_LABELS,
        _per_point("communication_seconds"),
    ),
    MetricDef(
        "rooftop_communication_step_ratio",
        "gauge",
        "Share of the modelled step spent in tensor-parallel collectives.",
        "ratio",
        TARGET_LABELS,
        _per_point("communication_share"),
    ),
    MetricDef(
        "rooftop_prefill_flops_basis_info",
        "info",
        "How prefill FLOPs are counted: basis=computed (prefix-cache hits known and removed) or "
        "basis=upper_bound (raw prompt tokens; never decides compute alone).",
        "",
        (*TARGET_LABELS, "basis"),
        _prefill_flops_basis,
    ),
    MetricDef(
        "rooftop_kv_needed_tokens",
        "gauge",
        "KV tokens the running decode batch holds: batch x per-sequence context.",
        "tokens",
        TARGET_LABELS,
        _per_point("kv_needed_tokens"),
    ),
    MetricDef(
        "rooftop_kv_headroom_factor",
        "gauge",
        "The engine's KV capacity over what the running batch needs (below 1: preemption).",
        "",
        TARGET_LABELS,
        _per_point("kv_headroom_ratio"),
    ),
    MetricDef(
        "rooftop_cross_check_flops_per_second",
        "gauge",
        "FLOP/s side by side: source=model (rooftop) and source=engine (its own estimate).",
        "flops_per_second",
        (*TARGET_LABELS, "source"),
        _cross_check_rates("flops"),
    ),
    MetricDef(
        "rooftop_cross_check_bytes_per_second",
        "gauge",
        "Memory bytes/s side by side: source=model, engine (read + write estimate) and "
        "hardware (DRAM counters).",
        "bytes_per_second",
        (*TARGET_LABELS, "source"),
        _cross_check_rates("bytes"),
    ),
    MetricDef(
        "rooftop_cross_check_factor",
        "gauge",
        "Engine estimate or hardware counter over rooftop's model figure (1 = agreement), by "
        "quantity (flops, bytes) and pair (engine_over_model, hardware_over_model).",
        "",
        (*TARGET_LABELS, "quantity", "pair"),
        _cross_check_ratios,
    ),
    MetricDef(
        "rooftop_decode_crossover_batch",
        "gauge",
        "Smallest decode batch that turns compute-bound at the live context (absent if none).",
        "",
        TARGET_LABELS,
        _per_point("crossover_batch"),
    ),
)


def metric_reference_markdown() -> str:
    """The README's metric table, generated from :data:`METRICS`."""
    lines = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for metric in METRICS:
        name = f"{metric.name}" if metric.type != "info" else metric.name
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        kind = "gauge (info)" if metric.type == "info" else metric.type
        lines.append(f"| `{name}` | {kind} | {labels} | {metric.help} |")
    return "\n".join(lines) + "\n"


def _label_values(label: LabelDef) -> str:
    if label.values:
        return ", ".join(f"`{value}`" for value in label.values)
    return f"one per {label.one_per}"


def metrics_doc_markdown() -> str:
    """``docs/metrics.md``: every metric with its label set, every label with its values."""
    lines = [
        "# Metrics and their labels",
        "",
        "Generated from `exporter/metrics.py` (`python -m rooftop.exporter.metrics --doc > "
        "docs/metrics.md`); a test fails when this file is out of date.",
        "",
        "Every label is categorical and bounded: a fixed set of values, or one value per GPU, "
        "engine or source. Numbers live in gauges, never in labels, and the verdict's "
        "sentence (with its numbers) is on the landing page, in `rooftop top`, in "
        "`rooftop probe` and in the log. A node with G GPUs and E engines exports a number of "
        "series that depends on G, E and the sources only, never on time.",
        "",
        "## Metrics",
        "",
        "| metric | type | unit | labels |",
        "| --- | --- | --- | --- |",
    ]
    for metric in METRICS:
        kind = "gauge (info)" if metric.type == "info" else metric.type
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "—"
        lines.append(f"| `{metric.name}` | {kind} | {metric.unit or '—'} | {labels} |")
    lines += ["", "## Labels", "", "| label | values | meaning |", "| --- | --- | --- |"]
    for name, label in LABELS.items():
        lines.append(f"| `{name}` | {_label_values(label)} | {label.meaning} |")
    lines += [
        "",
        "## Verdict causes",
        "",
        "The `decided_by` label of `rooftop_gpu_bound_info` (`rooftop_gpu_bound_cause`'s `cause` "
        "label names the other causes the reason mentions):",
        "",
        "| decided_by | meaning |",
        "| --- | --- |",
    ]
    for cause in CAUSES:
        lines.append(f"| `{cause}` | {CAUSE_DESCRIPTIONS[cause]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rooftop.exporter.metrics",
        description="Print the README's metric table, or docs/metrics.md with --doc.",
    )
    parser.add_argument("--doc", action="store_true", help="print docs/metrics.md")
    args = parser.parse_args(argv)
    sys.stdout.write(metrics_doc_markdown() if args.doc else metric_reference_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
