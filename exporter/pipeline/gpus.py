"""GPU stage: read the GPUs, merge dcgm-exporter's profiling figures, report lost GPUs down,
and attach each GPU's catalog spec (after overrides), peaks and ridge point.

In: the NVML source (or none) and the dcgm-exporter source (or none). Out: one
:class:`GpuView` per GPU ever seen, sorted by index, and the merged
:class:`~rooftop.exporter.telemetry.GpuSourceResult` the engine stage maps engines onto.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from rooftop.classifiers.hardware import (
    GpuSpec,
    bandwidth_matches_catalog,
    identify_gpu,
    lookup_gpu,
    ridge_point_flops_per_byte,
    theoretical_bandwidth_bytes_per_second,
    with_overrides,
)
from rooftop.classifiers.verdict import Tier
from rooftop.exporter.pipeline.status import SourceTimer, error_text
from rooftop.exporter.settings import GpuOverride
from rooftop.exporter.snapshot import GpuView, SourceStatus
from rooftop.exporter.sources.base import Source
from rooftop.exporter.sources.dcgm import merge_dcgm_activity
from rooftop.exporter.telemetry import GpuIdentity, GpuReading, GpuSourceResult

GpuSource = Source[GpuSourceResult]
"""A GPU source: NVML (real or the demo's fake) or DCGM. ``poll`` raises only when the whole
source failed; a single GPU's failure is a reading with ``up`` False."""


@dataclass(frozen=True)
class Peaks:
    """A roof: dense peak FLOP/s, peak bandwidth, and their ratio, computed once."""

    flops_per_second: float | None
    bandwidth_bytes_per_second: float | None
    ridge_point_flops_per_byte: float | None

    @classmethod
    def of(cls, flops: float | None, bandwidth: float | None) -> Peaks:
        ridge = ridge_point_flops_per_byte(flops, bandwidth) if flops and bandwidth else None
        return cls(flops, bandwidth, ridge)

    @classmethod
    def of_gpu(cls, gpu: GpuView) -> Peaks:
        """The roof the GPU stage put on ``gpu`` (its compute dtype's peak)."""
        return cls(
            gpu.peak_flops_per_second.get(gpu.compute_dtype),
            gpu.peak_bandwidth_bytes_per_second,
            gpu.ridge_point_flops_per_byte,
        )


NO_PEAKS = Peaks(None, None, None)


class GpuSpecs:
    """Catalog specs with the configured overrides, resolved once per GPU."""

    def __init__(self, gpu_model: str | None, overrides: Mapping[str, GpuOverride]) -> None:
        self._gpu_model = gpu_model
        self._overrides = overrides
        self._cache: dict[str, GpuSpec | None] = {}
        self._engine_only: Peaks | None = None

    def for_gpu(self, identity: GpuIdentity) -> GpuSpec | None:
        if identity.uuid in self._cache:
            return self._cache[identity.uuid]
        spec = identify_gpu(identity.name, identity.pci_device_id)
        if spec is None and self._gpu_model:
            spec = lookup_gpu(self._gpu_model)
        if spec is not None:
            spec = self._overridden(spec, identity.uuid)
        self._cache[identity.uuid] = spec
        return spec

    def engine_only_peaks(self) -> Peaks:
        """The roof for an engine whose GPUs cannot be seen: ``gpu_model``'s BF16 peak."""
        if self._engine_only is None:
            peaks = NO_PEAKS
            if self._gpu_model:
                spec = self._overridden(lookup_gpu(self._gpu_model))
                peaks = Peaks.of(
                    spec.peak_flops_per_second.get("bf16"),
                    spec.memory_bandwidth_bytes_per_second,
                )
            self._engine_only = peaks
        return self._engine_only

    def _overridden(self, spec: GpuSpec, uuid: str = "") -> GpuSpec:
        override = self._overrides.get(uuid) or self._overrides.get(spec.id)
        if override is None:
            return spec
        return with_overrides(
            spec,
            peak_flops_per_second=override.peak_flops_per_second,
            memory_bandwidth_bytes_per_second=override.memory_bandwidth_bytes_per_second,
            note=override.note,
        )


def _all_down(result: GpuSourceResult) -> str | None:
    """Nothing readable (driver unloaded, re-init failing): the source is down."""
    if result.readings and not any(reading.up for reading in result.readings):
        return "; ".join(result.errors) or "no GPU could be read"
    return None


class GpuStage:
    """Reads the GPU sources each cycle and turns the result into :class:`GpuView` s."""

    def __init__(
        self,
        timer: SourceTimer,
        specs: GpuSpecs,
        nvml: GpuSource | None,
        dcgm: GpuSource | None,
        dcgm_deadline_seconds: float,
    ) -> None:
        self._timer = timer
        self._specs = specs
        self._nvml = nvml
        self._dcgm = dcgm
        self._dcgm_deadline = dcgm_deadline_seconds
        self._dcgm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcgm")
        self._dcgm_pending: Future[GpuSourceResult] | None = None
        self._known: dict[str, GpuIdentity] = {}

    def close(self) -> None:
        self._dcgm_pool.shutdown(wait=False, cancel_futures=True)

    def submit_dcgm(self) -> Future[GpuSourceResult] | None:
        """The dcgm-exporter fetch runs beside the cycle, so a slow one cannot stall it."""
        if self._dcgm is None:
            return None
        if self._dcgm_pending is not None and not self._dcgm_pending.done():
            return None
        self._dcgm_pending = self._dcgm_pool.submit(self._dcgm.poll)
        return self._dcgm_pending

    def read(
        self, statuses: list[SourceStatus], dcgm_future: Future[GpuSourceResult] | None
    ) -> GpuSourceResult:
        """This cycle's GPUs: NVML, merged with DCGM, plus every known GPU missing now (down)."""
        identities: tuple[GpuIdentity, ...] = ()
        readings: tuple[GpuReading, ...] = ()
        if self._nvml is not None:
            polled = self._timer.poll(self._nvml, failed=_all_down)
            if polled.reading is not None:
                identities, readings = polled.reading.identities, polled.reading.readings
            statuses.append(polled.status)
        if self._dcgm is not None:
            started = self._timer.now()
            error: str | None = None
            if dcgm_future is None:
                error = "previous read still has no answer"
            else:
                try:
                    merged = merge_dcgm_activity(
                        GpuSourceResult(identities, readings),
                        dcgm_future.result(timeout=self._dcgm_deadline),
                    )
                    identities, readings = merged.identities, merged.readings
                except FutureTimeout:
                    error = f"no answer within {self._dcgm_deadline:g} s"
                except Exception as exc:
                    error = error_text(exc)
            self._timer.log_change(self._dcgm.name, error)
            statuses.append(self._timer.status(self._dcgm.name, "gpu", started, error))
        for identity in identities:
            self._known[identity.uuid] = identity
        # A GPU known before and missing now is reported down, never silently dropped.
        seen = {reading.uuid for reading in readings}
        lost = tuple(
            GpuReading(
                uuid=identity.uuid,
                index=identity.index,
                up=False,
                tier="none",
                timestamp=self._timer.now(),
                error="not reported by any GPU source this cycle",
            )
            for uuid, identity in self._known.items()
            if uuid not in seen
        )
        return GpuSourceResult(tuple(self._known.values()), readings + lost)

    def views(self, result: GpuSourceResult) -> list[GpuView]:
        readings = {reading.uuid: reading for reading in result.readings}
        return [
            self._view(identity, readings.get(identity.uuid))
            for identity in sorted(result.identities, key=lambda i: (i.index, i.uuid))
        ]

    def _view(self, identity: GpuIdentity, reading: GpuReading | None) -> GpuView:
        spec = self._specs.for_gpu(identity)
        up = reading is not None and reading.up
        tier: Tier = reading.tier if reading is not None and up else "none"
        peaks = dict(spec.peak_flops_per_second) if spec is not None else {}
        bandwidth = spec.memory_bandwidth_bytes_per_second if spec is not None else None
        compute_dtype = "bf16" if "bf16" in peaks else next(iter(peaks), "bf16")
        roof = Peaks.of(peaks.get(compute_dtype), bandwidth)
        nvml_bandwidth = None
        if identity.max_memory_clock_hz and identity.memory_bus_width_bits:
            nvml_bandwidth = theoretical_bandwidth_bytes_per_second(
                identity.max_memory_clock_hz, identity.memory_bus_width_bits
            )
            if spec is not None and not bandwidth_matches_catalog(spec, nvml_bandwidth):
                self._timer.log_change(
                    f"GPU {identity.uuid} bandwidth",
                    f"NVML's clock x bus width gives {nvml_bandwidth / 1e12:.2f} TB/s, the "
                    f"catalog's {spec.id} {bandwidth / 1e12 if bandwidth else 0:.2f} TB/s: "
                    "a different SKU, or set gpu_overrides",
                )
        dram = None
        if up and reading is not None and reading.dram_active_ratio is not None and bandwidth:
            dram = reading.dram_active_ratio * bandwidth
        return GpuView(
            identity=identity,
            catalog_id=spec.id if spec is not None else None,
            up=up,
            tier=tier,
            reading=reading,
            peak_flops_per_second=peaks,
            peak_bandwidth_bytes_per_second=bandwidth,
            nvml_bandwidth_bytes_per_second=nvml_bandwidth,
            compute_dtype=compute_dtype,
            ridge_point_flops_per_byte=roof.ridge_point_flops_per_byte,
            dram_bandwidth_bytes_per_second=dram,
            mig_supported=reading.mig_supported if reading is not None else None,
            mig_instances=len(reading.mig_instances) if reading is not None else 0,
        )
