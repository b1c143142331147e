"""DCGM profiling figures read from a running dcgm-exporter's ``/metrics``.

The tier between GPM and classic NVML: on Ampere and Ada, DCGM's profiling module is the only
source of DRAM-active, SM-active and tensor-active. Both naming eras are understood
(research/gpu-telemetry.md §1.1, §1.2, §1.11):

* up to dcgm-exporter 4.8: ``DCGM_FI_PROF_DRAM_ACTIVE`` etc. as 0-1 ratios,
  ``DCGM_FI_DEV_GPU_UTIL`` / ``DCGM_FI_DEV_MEM_COPY_UTIL`` in percent, ``DCGM_FI_DEV_SM_CLOCK``
  in MHz, ``DCGM_FI_DEV_POWER_USAGE`` in W, ``DCGM_FI_DEV_FB_USED`` in MiB;
* 4.9 and later: the DCGM 4.7 canonical names (``DCGM_FI_PROF_DRAM_UTIL_RATIO``,
  ``DCGM_FI_DEV_GPU_UTIL_RATIO`` ...), utilization as 0-1 ratios, clocks in hertz, power as
  ``DCGM_FI_DEV_BOARD_POWER_WATTS``.

Series are joined by the ``UUID`` label (``uuid`` under ``--use-old-namespace``). MIG-instance
series (``GPU_I_ID`` set) are skipped: their ratios are relative to the slice, not the GPU.
DCGM blank values (``DCGM_INT64_BLANK`` and ``DCGM_FP64_BLANK`` and above, e.g. the
``9223372036854775794`` in dcgm-exporter's README) and NaN become ``None``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from prometheus_client.metrics_core import Metric

from rooftop.classifiers.hardware import BYTES_PER_MIB
from rooftop.exporter.sources.base import SourceKind
from rooftop.exporter.sources.exposition import ExpositionError, parse_exposition
from rooftop.exporter.sources.http import Fetch, FetchError, fetch_text
from rooftop.exporter.telemetry import GpuIdentity, GpuReading, GpuSourceResult

DCGM_FP64_BLANK = 140737488355328.0
"""``DCGM_FP64_BLANK`` (2^47, dcgm_structs.h); every DCGM blank/not-supported value is >= it."""
SM_CLOCK_HZ_THRESHOLD = 1e5
"""An SM clock above this is in hertz (4.9+), below in MHz: real clocks are 200-3500 MHz."""
DEFAULT_STALE_AFTER_SECONDS = 90.0
"""Three of dcgm-exporter's default 30 s collect intervals (``-c 30000``)."""

Era = Literal["pre-4.9", "4.9+"]


@dataclass(frozen=True)
class DcgmField:
    """One dcgm-exporter metric and the :class:`GpuReading` field it fills."""

    name: str
    reading_field: str
    scale: float
    """Multiplier to the base unit (0.01 for percent, 2**20 for MiB)."""
    era: Era


DCGM_FIELDS: tuple[DcgmField, ...] = (
    # 4.9+ names first: where an exposition carries both spellings the canonical one wins.
    DcgmField("DCGM_FI_PROF_DRAM_UTIL_RATIO", "dram_active_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_PROF_SM_UTIL_RATIO", "sm_active_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_PROF_SM_OCCUPANCY_RATIO", "sm_occupancy_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_PROF_TENSOR_UTIL_RATIO", "tensor_active_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_PROF_FP16_UTIL_RATIO", "fp16_active_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_PROF_FP32_UTIL_RATIO", "fp32_active_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_DEV_GPU_UTIL_RATIO", "kernel_busy_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO", "kernel_busy_ratio", 1.0, "4.9+"),
    DcgmField("DCGM_FI_DEV_BOARD_POWER_WATTS", "power_watts", 1.0, "4.9+"),
    DcgmField("DCGM_FI_DEV_BOARD_POWER_LIMIT_ENFORCED_WATTS", "power_limit_watts", 1.0, "4.9+"),
    # Up to 4.8 (etc/default-counters.csv; SM_ACTIVE, OCCUPANCY and FP pipes are commented
    # out there and must be enabled in the exporter's CSV).
    DcgmField("DCGM_FI_PROF_DRAM_ACTIVE", "dram_active_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_SM_ACTIVE", "sm_active_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_SM_OCCUPANCY", "sm_occupancy_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "tensor_active_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_PIPE_TENSOR_HMMA_ACTIVE", "tensor_hmma_active_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_PIPE_FP16_ACTIVE", "fp16_active_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_PIPE_FP32_ACTIVE", "fp32_active_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_DEV_GPU_UTIL", "kernel_busy_ratio", 0.01, "pre-4.9"),
    # GR_ENGINE_ACTIVE is the profiling module's "context bound and a pipe busy" duty cycle,
    # the same quantity as GPU_UTIL; it stands in where GPU_UTIL is absent (MIG, custom CSVs).
    DcgmField("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "kernel_busy_ratio", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_DEV_MEM_COPY_UTIL", "memory_controller_busy_ratio", 0.01, "pre-4.9"),
    DcgmField("DCGM_FI_DEV_POWER_USAGE", "power_watts", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "power_limit_watts", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_DEV_FB_USED", "memory_used_bytes", float(BYTES_PER_MIB), "pre-4.9"),
    # Bytes per second in both eras.
    DcgmField("DCGM_FI_PROF_PCIE_TX_BYTES", "pcie_tx_bytes_per_second", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_PCIE_RX_BYTES", "pcie_rx_bytes_per_second", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_NVLINK_TX_BYTES", "nvlink_tx_bytes_per_second", 1.0, "pre-4.9"),
    DcgmField("DCGM_FI_PROF_NVLINK_RX_BYTES", "nvlink_rx_bytes_per_second", 1.0, "pre-4.9"),
)

SM_CLOCK_PREFIX = "DCGM_FI_DEV_SM_CLOCK"
"""``DCGM_FI_DEV_SM_CLOCK`` (MHz) and its 4.9+ hertz rename, whose exact spelling we have not
seen in a capture; the unit is told apart by magnitude (:data:`SM_CLOCK_HZ_THRESHOLD`)."""

ACTIVITY_FIELDS: tuple[str, ...] = (
    "sm_active_ratio",
    "sm_occupancy_ratio",
    "tensor_active_ratio",
    "tensor_hmma_active_ratio",
    "dram_active_ratio",
    "fp16_active_ratio",
    "fp32_active_ratio",
)
"""Profiling ratios that make a reading tier ``dcgm``."""

_MERGED_FIELDS = (
    *ACTIVITY_FIELDS,
    "pcie_tx_bytes_per_second",
    "pcie_rx_bytes_per_second",
    "nvlink_tx_bytes_per_second",
    "nvlink_rx_bytes_per_second",
)

_RATIO_LIMIT = 1.5
"""A 4.9+ ``*_RATIO`` sample above this is a percentage (DCGM's own GPU_UTIL_RATIO field is
still in percent; dcgm-exporter 4.9 converts it, a custom build may not)."""


class DcgmError(RuntimeError):
    """The dcgm-exporter could not be used this cycle; the message says why."""


class DcgmFetchError(DcgmError):
    pass


class DcgmStaleError(DcgmError):
    pass


class DcgmParseError(DcgmError):
    pass


@dataclass
class _Gpu:
    uuid: str
    index: int | None = None
    name: str | None = None
    pci_bus_id: str | None = None


class DcgmSource:
    """Reads one dcgm-exporter endpoint; :meth:`poll` once per sampler cycle.

    ``poll`` raises :class:`DcgmFetchError` when the endpoint cannot be fetched or parsed,
    and :class:`DcgmStaleError` when it has served identical values (and sample timestamps,
    where it sends them) for longer than ``stale_after_seconds``: dcgm-exporter serves its
    latest cached sample, so a hung hostengine looks like a frozen exposition.

    With ``pod_name``/``pod_namespace`` (a sidecar reading its node's dcgm-exporter), only the
    series dcgm-exporter attributed to that pod are used (:func:`pod_series`).
    """

    name = "dcgm"
    kind: SourceKind = "gpu"

    def __init__(
        self,
        url: str,
        fetch: Fetch | None = None,
        *,
        timeout_seconds: float = 2.0,
        max_bytes: int = 8 * 1024 * 1024,
        stale_after_seconds: float = DEFAULT_STALE_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        pod_name: str | None = None,
        pod_namespace: str | None = None,
    ) -> None:
        if stale_after_seconds <= 0:
            raise ValueError(f"stale_after_seconds must be > 0, got {stale_after_seconds}")
        self.url = url
        self._fetch: Fetch = fetch or fetch_text
        self._timeout = timeout_seconds
        self._max_bytes = max_bytes
        self._stale_after = stale_after_seconds
        self._clock = clock
        self._pod = (pod_name or None, pod_namespace or None)
        self._fingerprint: tuple[object, ...] | None = None
        self._fingerprint_since = 0.0

    def poll(self) -> GpuSourceResult:
        now = self._clock()
        try:
            text = self._fetch(self.url, self._timeout, self._max_bytes)
        except FetchError as error:
            raise DcgmFetchError(f"dcgm-exporter: {error}") from None
        except OSError as error:
            raise DcgmFetchError(f"dcgm-exporter at {self.url}: {error}") from None
        try:
            families = parse_exposition(text)
        except ExpositionError as error:
            raise DcgmParseError(f"dcgm-exporter at {self.url}: {error}") from None
        if self._pod != (None, None):
            families = self._own_pod_series(families)
        result, fingerprint = dcgm_readings(families, now)
        if not result.readings:
            raise DcgmParseError(
                f"dcgm-exporter at {self.url} serves no per-GPU DCGM_FI_* series with a UUID "
                "label (wrong URL, or only MIG instances?)"
            )
        self._check_fresh(fingerprint, now)
        return result

    def _own_pod_series(self, families: Mapping[str, Metric]) -> dict[str, Metric]:
        pod, namespace = self._pod
        kept = pod_series(families, pod, namespace)
        if not any(family.samples for family in kept.values()):
            labelled = any(
                _pod_label(sample.labels, POD_LABELS) is not None
                for family in families.values()
                for sample in family.samples
            )
            raise DcgmParseError(
                f"dcgm-exporter at {self.url} has no series for pod {namespace}/{pod}: "
                + (
                    "its GPU series are labelled with other pods (does this pod request "
                    "nvidia.com/gpu?)"
                    if labelled
                    else "no series carries a pod label (run dcgm-exporter with "
                    "--kubernetes / DCGM_EXPORTER_KUBERNETES=true, as the GPU Operator does)"
                )
            )
        return kept

    def _check_fresh(self, fingerprint: tuple[object, ...], now: float) -> None:
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint
            self._fingerprint_since = now
            return
        frozen_for = now - self._fingerprint_since
        if frozen_for > self._stale_after:
            raise DcgmStaleError(
                f"dcgm-exporter at {self.url} has served identical values for "
                f"{frozen_for:.0f} s (over {self._stale_after:g} s): its DCGM hostengine may be "
                "hung, or its collect interval (-c) is longer than stale_after_seconds"
            )


def dcgm_readings(
    families: Mapping[str, Metric], now: float
) -> tuple[GpuSourceResult, tuple[object, ...]]:
    """Per-GPU readings (tier ``dcgm``) and identities from parsed dcgm-exporter families.

    Also returns a fingerprint of every value and timestamp used, for staleness checks.
    """
    gpus: dict[str, _Gpu] = {}
    values: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    fingerprint: list[object] = []
    mig_skipped = False

    def take(family: Metric, field_name: str, scale: float, clock_field: bool) -> None:
        nonlocal mig_skipped
        for sample in family.samples:
            labels = sample.labels
            uuid = labels.get("UUID") or labels.get("uuid")
            if not uuid:
                continue
            if labels.get("GPU_I_ID"):
                mig_skipped = True
                continue
            gpu = gpus.setdefault(uuid, _Gpu(uuid=uuid))
            _fill_identity(gpu, labels)
            value = _finite(sample.value)
            fingerprint.append((sample.name, uuid, sample.value, sample.timestamp))
            if value is None or field_name in values.setdefault(uuid, {}):
                continue
            if clock_field:
                value = value if value > SM_CLOCK_HZ_THRESHOLD else value * 1e6
            elif family.name.endswith("_RATIO") and scale == 1.0 and value > _RATIO_LIMIT:
                notes.append(f"{sample.name} for {uuid} is {value}: read as percent")
                value /= 100.0
            else:
                value *= scale
            values[uuid][field_name] = value

    for spec in DCGM_FIELDS:
        family = families.get(spec.name)
        if family is not None:
            take(family, spec.reading_field, spec.scale, clock_field=False)
    for name in sorted(families):
        if name.startswith(SM_CLOCK_PREFIX):
            take(families[name], "sm_clock_hz", 1.0, clock_field=True)

    if mig_skipped:
        notes.append("MIG-instance series (GPU_I_ID) skipped: their ratios are per slice")
    identities: list[GpuIdentity] = []
    readings: list[GpuReading] = []
    for position, gpu in enumerate(sorted(gpus.values(), key=_gpu_order)):
        index = gpu.index if gpu.index is not None else position
        identities.append(
            GpuIdentity(
                index=index,
                uuid=gpu.uuid,
                name=gpu.name or "NVIDIA GPU (no modelName label)",
                pci_bus_id=gpu.pci_bus_id,
            )
        )
        fields = values.get(gpu.uuid, {})
        memory = fields.get("memory_used_bytes")
        readings.append(
            GpuReading(
                uuid=gpu.uuid,
                index=index,
                up=True,
                tier="dcgm" if any(f in fields for f in ACTIVITY_FIELDS) else _weak_tier(fields),
                timestamp=now,
                sm_active_ratio=fields.get("sm_active_ratio"),
                sm_occupancy_ratio=fields.get("sm_occupancy_ratio"),
                tensor_active_ratio=fields.get("tensor_active_ratio"),
                tensor_hmma_active_ratio=fields.get("tensor_hmma_active_ratio"),
                dram_active_ratio=fields.get("dram_active_ratio"),
                fp16_active_ratio=fields.get("fp16_active_ratio"),
                fp32_active_ratio=fields.get("fp32_active_ratio"),
                kernel_busy_ratio=fields.get("kernel_busy_ratio"),
                memory_controller_busy_ratio=fields.get("memory_controller_busy_ratio"),
                pcie_tx_bytes_per_second=fields.get("pcie_tx_bytes_per_second"),
                pcie_rx_bytes_per_second=fields.get("pcie_rx_bytes_per_second"),
                nvlink_tx_bytes_per_second=fields.get("nvlink_tx_bytes_per_second"),
                nvlink_rx_bytes_per_second=fields.get("nvlink_rx_bytes_per_second"),
                sm_clock_hz=fields.get("sm_clock_hz"),
                power_watts=fields.get("power_watts"),
                power_limit_watts=fields.get("power_limit_watts"),
                memory_used_bytes=int(memory) if memory is not None else None,
            )
        )
    result = GpuSourceResult(
        identities=tuple(identities), readings=tuple(readings), errors=tuple(notes)
    )
    return result, tuple(sorted(fingerprint, key=repr))


POD_LABELS: tuple[str, ...] = ("exported_pod", "pod", "pod_name")
"""dcgm-exporter's pod attribution label, most specific first: ``exported_pod`` when a
Prometheus scrape renamed it (``honorLabels: false``; ``pod`` is then dcgm-exporter's own pod),
``pod_name`` under ``--use-old-namespace`` (research/gpu-telemetry.md §1.3, §1.4)."""
NAMESPACE_LABELS: tuple[str, ...] = ("exported_namespace", "namespace", "pod_namespace")


def pod_series(
    families: Mapping[str, Metric], pod: str | None, namespace: str | None
) -> dict[str, Metric]:
    """Only the samples dcgm-exporter attributed to ``pod`` in ``namespace`` (either may be
    ``None``: not compared). Samples without the pod label are dropped."""
    kept: dict[str, Metric] = {}
    for name, family in families.items():
        copy = Metric(family.name, family.documentation, family.type, family.unit)
        copy.samples = [
            sample
            for sample in family.samples
            if _pod_label(sample.labels, POD_LABELS) is not None
            and pod in (None, _pod_label(sample.labels, POD_LABELS))
            and namespace in (None, _pod_label(sample.labels, NAMESPACE_LABELS))
        ]
        kept[name] = copy
    return kept


def _pod_label(labels: Mapping[str, str], spellings: tuple[str, ...]) -> str | None:
    return next((labels[key] for key in spellings if labels.get(key)), None)


def naming_era(families: Mapping[str, Metric]) -> Era | None:
    """Which dcgm-exporter naming generation an exposition uses (None: no known field)."""
    names = set(families)
    if any(spec.name in names for spec in DCGM_FIELDS if spec.era == "4.9+"):
        return "4.9+"
    if any(spec.name in names for spec in DCGM_FIELDS if spec.era == "pre-4.9"):
        return "pre-4.9"
    return None


def merge_dcgm_activity(nvml: GpuSourceResult, dcgm: GpuSourceResult) -> GpuSourceResult:
    """NVML's readings with DCGM's profiling figures where NVML has no GPM, joined by UUID.

    A ``gpm`` reading, or one that is down, is kept as is. Otherwise the profiling ratios and
    PCIe/NVLink rates come from DCGM and the tier becomes ``dcgm`` when DCGM supplied any
    ratio. Clocks, power and memory stay NVML's: they were read this cycle, DCGM's may be a
    collect interval old. With no NVML GPUs at all, the DCGM result is returned unchanged.
    """
    if not nvml.identities:
        return dcgm
    by_uuid = {reading.uuid: reading for reading in dcgm.readings}
    merged: list[GpuReading] = []
    for reading in nvml.readings:
        extra = by_uuid.get(reading.uuid)
        if extra is None or not reading.up or reading.tier == "gpm":
            merged.append(reading)
            continue
        changes: dict[str, object] = {
            name: getattr(extra, name)
            for name in _MERGED_FIELDS
            if getattr(extra, name) is not None
        }
        if any(name in changes for name in ACTIVITY_FIELDS):
            changes["tier"] = "dcgm"
        merged.append(replace(reading, **changes))  # type: ignore[arg-type]
    known = {identity.uuid for identity in nvml.identities}
    unknown = sorted(uuid for uuid in by_uuid if uuid not in known)
    errors = list(nvml.errors) + list(dcgm.errors)
    if unknown:
        errors.append(f"dcgm-exporter reports GPUs NVML does not see: {', '.join(unknown)}")
    return GpuSourceResult(identities=nvml.identities, readings=tuple(merged), errors=tuple(errors))


def _fill_identity(gpu: _Gpu, labels: Mapping[str, str]) -> None:
    if gpu.index is None and labels.get("gpu", "").isdigit():
        gpu.index = int(labels["gpu"])
    if gpu.name is None and labels.get("modelName"):
        gpu.name = labels["modelName"]
    if gpu.pci_bus_id is None and labels.get("pci_bus_id"):
        gpu.pci_bus_id = labels["pci_bus_id"]


def _gpu_order(gpu: _Gpu) -> tuple[int, str]:
    return (gpu.index if gpu.index is not None else 1 << 30, gpu.uuid)


def _weak_tier(fields: Mapping[str, float]) -> Literal["nvml", "none"]:
    # GPU_UTIL / GR_ENGINE_ACTIVE alone is the same weak duty cycle as classic NVML.
    return "nvml" if "kernel_busy_ratio" in fields else "none"


def _finite(value: float) -> float | None:
    if not math.isfinite(value) or value >= DCGM_FP64_BLANK or value < 0:
        return None
    return float(value)
