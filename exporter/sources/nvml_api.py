"""NVML's vocabulary for :mod:`rooftop.exporter.sources.nvml`: error codes and how each is
handled, the small frozen types the backend returns, the backend protocol and the real pynvml
backend, and the declarative tables (GPM metrics, clock-event reasons).

:class:`RealNvmlBackend` is a thin layer over pynvml that turns ctypes structs into the small
frozen types here; ``exporter.demo.nvml_fake.FakeNvmlBackend`` implements the same methods and
raises the same pynvml exception classes, built through :func:`nvml_error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, Literal, Protocol

import pynvml

HERTZ_PER_MEGAHERTZ = 1_000_000.0
MILLIWATTS_PER_WATT = 1000.0
PERCENT_PER_RATIO = 100.0
GPM_MIN_WINDOW_SECONDS = 0.1
"""nvml.h, ``nvmlGpmMetricsGet``: the two samples must be more than 100 ms apart."""

NVML_SUCCESS: int = int(pynvml.NVML_SUCCESS)
CLOCK_SM: int = int(pynvml.NVML_CLOCK_SM)
CLOCK_MEM: int = int(pynvml.NVML_CLOCK_MEM)
MIG_MODE_ENABLED: int = int(pynvml.NVML_DEVICE_MIG_ENABLE)


class NvmlErrorCode(IntEnum):
    """The ``NVML_ERROR_*`` return codes this module sorts (values from pynvml)."""

    UNINITIALIZED = int(pynvml.NVML_ERROR_UNINITIALIZED)
    INVALID_ARGUMENT = int(pynvml.NVML_ERROR_INVALID_ARGUMENT)
    NOT_SUPPORTED = int(pynvml.NVML_ERROR_NOT_SUPPORTED)
    NO_PERMISSION = int(pynvml.NVML_ERROR_NO_PERMISSION)
    NOT_FOUND = int(pynvml.NVML_ERROR_NOT_FOUND)
    INSUFFICIENT_SIZE = int(pynvml.NVML_ERROR_INSUFFICIENT_SIZE)
    DRIVER_NOT_LOADED = int(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    TIMEOUT = int(pynvml.NVML_ERROR_TIMEOUT)
    LIBRARY_NOT_FOUND = int(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    FUNCTION_NOT_FOUND = int(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    CORRUPTED_INFOROM = int(pynvml.NVML_ERROR_CORRUPTED_INFOROM)
    GPU_IS_LOST = int(pynvml.NVML_ERROR_GPU_IS_LOST)
    RESET_REQUIRED = int(pynvml.NVML_ERROR_RESET_REQUIRED)
    LIB_RM_VERSION_MISMATCH = int(pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    MEMORY = int(pynvml.NVML_ERROR_MEMORY)
    NO_DATA = int(pynvml.NVML_ERROR_NO_DATA)
    ARGUMENT_VERSION_MISMATCH = int(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
    NOT_READY = int(pynvml.NVML_ERROR_NOT_READY)
    GPU_NOT_FOUND = int(pynvml.NVML_ERROR_GPU_NOT_FOUND)
    UNKNOWN = int(pynvml.NVML_ERROR_UNKNOWN)


def nvml_error(code: int) -> Exception:
    """The pynvml exception NVML itself raises for ``code`` (e.g. ``NVMLError_GpuIsLost``).

    ``pynvml.NVMLError(code)`` maps the code to its generated subclass, so a fake backend that
    raises this is indistinguishable from the real library to the code that catches it.
    """
    error: Exception = pynvml.NVMLError(int(code))
    return error


def nvml_error_code(error: BaseException) -> int | None:
    """The NVML return code carried by a pynvml exception, or None for any other exception."""
    if isinstance(error, pynvml.NVMLError):
        return int(error.value)
    return None


class ErrorAction(Enum):
    OMIT = "omit"
    """The field is absent on this device; leave it out silently."""
    NOTE = "note"
    """The field could not be read now (permission, no data yet); leave it out and say why."""
    GPU_DOWN = "gpu_down"
    """The GPU cannot be read at all (lost, driver gone); mark it down, go on with the others."""


_OMIT_CODES = frozenset({NvmlErrorCode.NOT_SUPPORTED, NvmlErrorCode.FUNCTION_NOT_FOUND})
_NOTE_CODES = frozenset(
    {
        NvmlErrorCode.NO_PERMISSION,
        NvmlErrorCode.NOT_FOUND,
        NvmlErrorCode.NO_DATA,
        NvmlErrorCode.NOT_READY,
        NvmlErrorCode.TIMEOUT,
        NvmlErrorCode.INSUFFICIENT_SIZE,
        NvmlErrorCode.INVALID_ARGUMENT,
        NvmlErrorCode.ARGUMENT_VERSION_MISMATCH,
        NvmlErrorCode.MEMORY,
    }
)


def classify_nvml_error(code: int) -> ErrorAction:
    """What one failed NVML call means for the reading it was part of.

    ``NotSupported`` and ``FunctionNotFound`` (pynvml raises the latter itself when the driver
    lacks a symbol) omit the field. ``NoPermission``, ``NotFound``, ``NoData``, ``NotReady``,
    ``Timeout`` and argument/size errors omit it with a note. Everything else, notably
    ``GpuIsLost`` ("fallen off the bus"), ``Unknown``, ``ResetRequired``, ``DriverNotLoaded``,
    ``Uninitialized`` and ``LibRmVersionMismatch``, marks the GPU down.
    """
    if code in _OMIT_CODES:
        return ErrorAction.OMIT
    if code in _NOTE_CODES:
        return ErrorAction.NOTE
    return ErrorAction.GPU_DOWN


class NvmlUnavailableError(RuntimeError):
    """NVML cannot be used at all on this machine; raised at start-up with what to do."""


class NvmlReadError(RuntimeError):
    """A programming error inside a per-GPU read (not an NVML error); re-raised to the caller."""


# --- plain values the backend hands back (no ctypes beyond the backend) -----------------------


@dataclass(frozen=True)
class PciInfo:
    """From ``nvmlDeviceGetPciInfo``."""

    bus_id: str
    pci_device_id: int
    """Raw 32-bit ``pciDeviceId``: device id in the upper 16 bits, vendor id (0x10DE) below."""


@dataclass(frozen=True)
class MemoryInfo:
    """From ``nvmlDeviceGetMemoryInfo``, bytes."""

    total_bytes: int
    used_bytes: int


@dataclass(frozen=True)
class Utilization:
    """From ``nvmlDeviceGetUtilizationRates``, percent of the driver's sample period."""

    gpu_percent: float
    memory_percent: float


@dataclass(frozen=True)
class GpmMetricValue:
    """One entry of ``nvmlGpmMetricsGet_t.metrics`` after the call."""

    metric_id: int
    nvml_return: int
    value: float


class NvmlBackend(Protocol):
    """The NVML calls this module makes; method names are the pynvml function names.

    Handles and GPM samples are opaque. Where pynvml returns a ctypes struct the backend
    returns the plain type above; ``nvmlGpmMetricsGet`` takes the two samples and the metric
    ids and returns one :class:`GpmMetricValue` per id (the backend builds the struct).
    """

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str: ...
    def nvmlDeviceGetName(self, handle: Any) -> str: ...
    def nvmlDeviceGetPciInfo(self, handle: Any) -> PciInfo: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> MemoryInfo: ...
    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int: ...
    def nvmlDeviceGetMemoryBusWidth(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Utilization: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[int]: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any: ...
    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int: ...
    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int: ...
    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> bool: ...
    def nvmlGpmSampleAlloc(self) -> Any: ...
    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any: ...
    def nvmlGpmMetricsGet(
        self, sample1: Any, sample2: Any, metric_ids: Sequence[int]
    ) -> list[GpmMetricValue]: ...
    def nvmlGpmSampleFree(self, sample: Any) -> None: ...


class RealNvmlBackend:
    """The real library: pynvml calls, structs turned into the plain types above."""

    def nvmlInit(self) -> None:
        pynvml.nvmlInit()

    def nvmlShutdown(self) -> None:
        pynvml.nvmlShutdown()

    def nvmlDeviceGetCount(self) -> int:
        return int(pynvml.nvmlDeviceGetCount())

    # Not part of NvmlBackend: facts for a recording's header (rooftop record).
    def nvmlSystemGetDriverVersion(self) -> str:
        return str(pynvml.nvmlSystemGetDriverVersion())

    def nvmlSystemGetNVMLVersion(self) -> str:
        return str(pynvml.nvmlSystemGetNVMLVersion())

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return int(pynvml.nvmlSystemGetCudaDriverVersion())

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return pynvml.nvmlDeviceGetHandleByIndex(index)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return str(pynvml.nvmlDeviceGetUUID(handle))

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return str(pynvml.nvmlDeviceGetName(handle))

    def nvmlDeviceGetPciInfo(self, handle: Any) -> PciInfo:
        info = pynvml.nvmlDeviceGetPciInfo(handle)
        bus_id = info.busId
        if isinstance(bus_id, bytes):
            bus_id = bus_id.decode("ascii", "replace")
        return PciInfo(bus_id=str(bus_id), pci_device_id=int(info.pciDeviceId))

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> MemoryInfo:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return MemoryInfo(total_bytes=int(info.total), used_bytes=int(info.used))

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(pynvml.nvmlDeviceGetMaxClockInfo(handle, clock_type))

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(pynvml.nvmlDeviceGetClockInfo(handle, clock_type))

    def nvmlDeviceGetMemoryBusWidth(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetMemoryBusWidth(handle))

    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
        current, pending = pynvml.nvmlDeviceGetMigMode(handle)
        return int(current), int(pending)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Utilization:
        rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
        return Utilization(gpu_percent=float(rates.gpu), memory_percent=float(rates.memory))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetPowerUsage(handle))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetCurrentClocksEventReasons(handle))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[int]:
        return [int(p.pid) for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        return pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetGpuInstanceId(handle))

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetComputeInstanceId(handle))

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> bool:
        return bool(pynvml.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice)

    def nvmlGpmSampleAlloc(self) -> Any:
        return pynvml.nvmlGpmSampleAlloc()

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        return pynvml.nvmlGpmSampleGet(handle, sample)

    def nvmlGpmMetricsGet(
        self, sample1: Any, sample2: Any, metric_ids: Sequence[int]
    ) -> list[GpmMetricValue]:
        # pynvml raises only on the overall return code; each metric carries its own.
        request = pynvml.c_nvmlGpmMetricsGet_t()
        request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(metric_ids)
        request.sample1 = sample1
        request.sample2 = sample2
        for slot, metric_id in enumerate(metric_ids):
            request.metrics[slot].metricId = metric_id
        pynvml.nvmlGpmMetricsGet(request)
        return [
            GpmMetricValue(
                metric_id=int(request.metrics[slot].metricId),
                nvml_return=int(request.metrics[slot].nvmlReturn),
                value=float(request.metrics[slot].value),
            )
            for slot in range(len(metric_ids))
        ]

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        pynvml.nvmlGpmSampleFree(sample)


# --- what is read -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GpmMetric:
    """One GPM metric: the :class:`GpuReading` field it fills and NVML's unit for it."""

    reading_field: str
    metric_id: int
    unit: Literal["percent", "mib_per_second"]


GPM_METRICS: tuple[GpmMetric, ...] = (
    GpmMetric("sm_active_ratio", int(pynvml.NVML_GPM_METRIC_SM_UTIL), "percent"),
    GpmMetric("sm_occupancy_ratio", int(pynvml.NVML_GPM_METRIC_SM_OCCUPANCY), "percent"),
    GpmMetric("tensor_active_ratio", int(pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL), "percent"),
    GpmMetric("tensor_hmma_active_ratio", int(pynvml.NVML_GPM_METRIC_HMMA_TENSOR_UTIL), "percent"),
    GpmMetric("dram_active_ratio", int(pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL), "percent"),
    GpmMetric("fp16_active_ratio", int(pynvml.NVML_GPM_METRIC_FP16_UTIL), "percent"),
    GpmMetric("fp32_active_ratio", int(pynvml.NVML_GPM_METRIC_FP32_UTIL), "percent"),
    GpmMetric(
        "pcie_tx_bytes_per_second", int(pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC), "mib_per_second"
    ),
    GpmMetric(
        "pcie_rx_bytes_per_second", int(pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC), "mib_per_second"
    ),
    GpmMetric(
        "nvlink_tx_bytes_per_second",
        int(pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC),
        "mib_per_second",
    ),
    GpmMetric(
        "nvlink_rx_bytes_per_second",
        int(pynvml.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC),
        "mib_per_second",
    ),
)
"""Metric ids from nvml.h; percent metrics become 0-1 ratios, MiB/s become bytes/s."""

GPM_ACTIVITY_FIELDS = frozenset(m.reading_field for m in GPM_METRICS if m.unit == "percent")

CLOCK_EVENT_REASONS: tuple[tuple[int, str], ...] = (
    (int(pynvml.nvmlClocksEventReasonGpuIdle), "gpu_idle"),
    (int(pynvml.nvmlClocksEventReasonApplicationsClocksSetting), "applications_clocks_setting"),
    (int(pynvml.nvmlClocksEventReasonSwPowerCap), "sw_power_cap"),
    (int(pynvml.nvmlClocksEventReasonHwSlowdown), "hw_slowdown"),
    (int(pynvml.nvmlClocksEventReasonSyncBoost), "sync_boost"),
    (int(pynvml.nvmlClocksEventReasonSwThermalSlowdown), "sw_thermal_slowdown"),
    (int(pynvml.nvmlClocksEventReasonHwThermalSlowdown), "hw_thermal_slowdown"),
    (int(pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown), "hw_power_brake_slowdown"),
    (int(pynvml.nvmlClocksEventReasonDisplayClockSetting), "display_clock_setting"),
)
"""``nvmlDeviceGetCurrentClocksEventReasons`` bits and their short names, in bit order."""


def clock_event_reason_names(mask: int) -> tuple[str, ...]:
    """Short names of the bits set in a clocks-event-reasons mask; unknown bits as ``bit_N``."""
    names = [name for bit, name in CLOCK_EVENT_REASONS if mask & bit]
    known = 0
    for bit, _ in CLOCK_EVENT_REASONS:
        known |= bit
    unknown = mask & ~known
    names.extend(f"bit_{n}" for n in range(64) if unknown & (1 << n))
    return tuple(names)


def init_failure_message(error: BaseException) -> str:
    code = nvml_error_code(error)
    hints = {
        NvmlErrorCode.LIBRARY_NOT_FOUND: (
            "libnvidia-ml.so.1 was not found: install the NVIDIA driver, or run the container "
            "with the NVIDIA runtime (docker --gpus all / the k8s device plugin)"
        ),
        NvmlErrorCode.DRIVER_NOT_LOADED: (
            "the NVIDIA kernel driver is not loaded: check `nvidia-smi` and `lsmod | grep nvidia`"
        ),
        NvmlErrorCode.LIB_RM_VERSION_MISMATCH: (
            "the NVIDIA driver was upgraded without reloading the kernel module: reboot, or "
            "reload the nvidia modules"
        ),
        NvmlErrorCode.NO_PERMISSION: (
            "no permission to open /dev/nvidia*: run as a user in the video group or give the "
            "container the GPU device nodes"
        ),
    }
    hint = None
    if code is not None:
        try:
            hint = hints.get(NvmlErrorCode(code))
        except ValueError:
            hint = None
    detail = f"{error} (NVML error {code})" if code is not None else repr(error)
    return f"NVML initialisation failed: {detail}. " + (
        hint or "Check that `nvidia-smi` works on this machine."
    )


# --- per-GPU worker threads with a deadline ------------------------------------------------------
