"""GPU identities and per-cycle telemetry through NVML (``nvidia-ml-py``).

This is the only module in the project that imports :mod:`pynvml`. Everything it hands out is
in base units (hertz, watts, bytes, bytes per second, ratios 0-1) with ``None`` for anything
that could not be read; never NaN, never a sentinel number.

Two seams keep it testable without a GPU:

* the *backend*: an object with the pynvml function names used here. :class:`RealNvmlBackend`
  is a thin layer over pynvml that turns ctypes structs into the small frozen types below;
  ``exporter.sources.nvml_fake.FakeNvmlBackend`` implements the same methods and raises the
  same pynvml exception classes, built through :func:`nvml_error`;
* the *clock* used for timestamps and GPM windows.

Every backend call for a GPU goes through one function, :meth:`_GpuCalls.get`, which sorts
NVML errors with :func:`classify_nvml_error`: ``NotSupported``/``FunctionNotFound`` omit the
field, ``NoPermission`` and other "no data now" codes omit it with a note, and ``GpuIsLost``,
``Unknown`` and driver errors mark that GPU down while the other GPUs go on. Per-GPU reads run
in daemon worker threads under a deadline, so a GPU whose driver call hangs is reported down
without stalling the other GPUs or the caller.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, Literal, Protocol

import pynvml

from rooftop.exporter.telemetry import (
    GpuIdentity,
    GpuReading,
    GpuSourceResult,
    MigInstance,
    TelemetryTier,
)

log = logging.getLogger(__name__)

HERTZ_PER_MEGAHERTZ = 1_000_000.0
MILLIWATTS_PER_WATT = 1000.0
BYTES_PER_MIB = 1024 * 1024
PERCENT_PER_RATIO = 100.0
GPM_MIN_WINDOW_SECONDS = 0.1
"""nvml.h, ``nvmlGpmMetricsGet``: the two samples must be more than 100 ms apart."""

NVML_SUCCESS: int = int(pynvml.NVML_SUCCESS)
CLOCK_SM: int = int(pynvml.NVML_CLOCK_SM)
CLOCK_MEM: int = int(pynvml.NVML_CLOCK_MEM)
TEMPERATURE_GPU: int = int(pynvml.NVML_TEMPERATURE_GPU)
ECC_CORRECTED: int = int(pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED)
ECC_UNCORRECTED: int = int(pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
ECC_VOLATILE: int = int(pynvml.NVML_VOLATILE_ECC)
"""Counts since the driver last loaded (dcgm-exporter's ``DCGM_FI_DEV_ECC_*_VOL_TOTAL``)."""
XID_EVENT_TYPE: int = int(pynvml.nvmlEventTypeXidCriticalError)
MAX_XID_EVENTS_PER_CYCLE = 64
"""Events drained per GPU per cycle; more stay queued in the driver for the next cycle."""
MILLIJOULES_PER_JOULE = 1000.0
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
class ComputeProcess:
    """One entry of ``nvmlDeviceGetComputeRunningProcesses``."""

    pid: int
    used_gpu_memory_bytes: int | None
    """``None`` where NVML cannot say (``NVML_VALUE_NOT_AVAILABLE``, e.g. without permission)."""


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
    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[ComputeProcess]: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...
    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter: int) -> int: ...
    def nvmlEventSetCreate(self) -> Any: ...
    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: Any) -> None: ...
    def nvmlEventSetWait(self, event_set: Any, timeout_ms: int) -> int | None:
        """The XID of the next queued event, or ``None`` when none is queued."""
        ...

    def nvmlEventSetFree(self, event_set: Any) -> None: ...
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

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[ComputeProcess]:
        return [
            ComputeProcess(
                pid=int(p.pid),
                used_gpu_memory_bytes=(
                    int(p.usedGpuMemory) if isinstance(p.usedGpuMemory, int) else None
                ),
            )
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        ]

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        return int(pynvml.nvmlDeviceGetTemperature(handle, sensor))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))

    def nvmlDeviceGetTotalEccErrors(self, handle: Any, error_type: int, counter: int) -> int:
        return int(pynvml.nvmlDeviceGetTotalEccErrors(handle, error_type, counter))

    def nvmlEventSetCreate(self) -> Any:
        return pynvml.nvmlEventSetCreate()

    def nvmlDeviceRegisterEvents(self, handle: Any, event_types: int, event_set: Any) -> None:
        pynvml.nvmlDeviceRegisterEvents(handle, event_types, event_set)

    def nvmlEventSetWait(self, event_set: Any, timeout_ms: int) -> int | None:
        try:
            data = pynvml.nvmlEventSetWait_v2(event_set, timeout_ms)
        except pynvml.NVMLError_Timeout:
            return None
        return int(data.eventData)

    def nvmlEventSetFree(self, event_set: Any) -> None:
        pynvml.nvmlEventSetFree(event_set)

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


def _init_failure_message(error: BaseException) -> str:
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


class _GpuDown(Exception):
    """Raised inside a per-GPU read when the GPU cannot be read at all."""


@dataclass
class _Job:
    """One unit of work on one GPU (or the system, key -1) in a daemon thread."""

    started: float
    thread: threading.Thread | None = None
    current_call: str | None = None
    result: object = None
    exception: BaseException | None = None


@dataclass
class _GpuState:
    identity: GpuIdentity
    handle: Any
    gpm_supported: bool
    gpm_sample: Any = None
    gpm_sample_time: float | None = None
    xid_events: Any = None
    """This GPU's NVML event set for XID errors; ``None`` where XID events are unsupported."""
    xid_errors: int = 0
    """XID errors seen since rooftop started watching this GPU."""
    last_xid: int | None = None


_SYSTEM = -1


class _GpuCalls:
    """Backend calls for one GPU in one job: the single place NVML errors are sorted."""

    def __init__(
        self,
        backend: NvmlBackend,
        job: _Job,
        label: str,
        notes: list[str],
        warned_functions: set[str],
    ) -> None:
        self._backend = backend
        self._job = job
        self._label = label
        self._notes = notes
        self._warned_functions = warned_functions

    def get(self, name: str, *args: Any, absent_codes: Iterable[int] = (), ok: bool = False) -> Any:
        """Call ``backend.<name>(*args)``; the value, or None when the field is to be omitted.

        Raises :class:`_GpuDown` when the error means the GPU cannot be read at all.
        ``absent_codes`` are codes that, for this call, just mean "nothing there" (e.g.
        ``NotFound`` for an empty MIG slot). ``ok``: the call returns nothing; give True when
        it succeeded.
        """
        self._job.current_call = name
        try:
            result = getattr(self._backend, name)(*args)
            return True if ok else result
        except pynvml.NVMLError as error:
            code = int(error.value)
            if code in set(absent_codes):
                return None
            self.sort(name, code, str(error))
            return None
        finally:
            self._job.current_call = None

    def sort(self, name: str, code: int, text: str) -> None:
        """Apply :func:`classify_nvml_error` to a failed call (or one GPM metric's return)."""
        action = classify_nvml_error(code)
        if action is ErrorAction.OMIT:
            if code == NvmlErrorCode.FUNCTION_NOT_FOUND and name not in self._warned_functions:
                self._warned_functions.add(name)
                log.warning(
                    "%s is not in this NVIDIA driver; is nvidia-ml-py newer than the driver?",
                    name,
                )
            return
        if action is ErrorAction.NOTE:
            self._notes.append(f"{self._label}: {name}: {text} (omitted)")
            return
        raise _GpuDown(f"{name}: {text} (NVML error {code})")


class NvmlSource:
    """GPUs through NVML: :meth:`start` once, then :meth:`read` once per sampler cycle.

    ``call_deadline_seconds`` bounds each cycle's per-GPU reads (they run concurrently); a GPU
    still inside a driver call after it is reported down, and is not read again until that call
    returns. ``gpm_max_window_seconds``: a GPM window longer than this (e.g. after a stall)
    reseeds instead of reporting a stale average.
    """

    name = "nvml"

    def __init__(
        self,
        backend: NvmlBackend | None = None,
        call_deadline_seconds: float = 2.0,
        *,
        init_deadline_seconds: float = 30.0,
        gpm_max_window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if call_deadline_seconds <= 0:
            raise ValueError(f"call_deadline_seconds must be > 0, got {call_deadline_seconds}")
        if gpm_max_window_seconds <= GPM_MIN_WINDOW_SECONDS:
            raise ValueError(
                f"gpm_max_window_seconds must be > {GPM_MIN_WINDOW_SECONDS}, "
                f"got {gpm_max_window_seconds}"
            )
        self._backend = backend
        self._deadline = call_deadline_seconds
        self._init_deadline = init_deadline_seconds
        self._gpm_max_window = gpm_max_window_seconds
        self._clock = clock
        self._states: dict[int, _GpuState] = {}
        self._device_count = 0
        self._undiscovered: dict[int, str] = {}
        self._jobs: dict[int, _Job] = {}
        self._warned_functions: set[str] = set()
        self._started = False
        self._needs_reinit = False

    # -- lifecycle --

    @property
    def identities(self) -> tuple[GpuIdentity, ...]:
        return tuple(self._states[i].identity for i in sorted(self._states))

    def start(self) -> tuple[GpuIdentity, ...]:
        """``nvmlInit`` and discover the GPUs.

        Raises :class:`NvmlUnavailableError` naming the fix when the library or driver is
        missing, or when initialisation does not return within ``init_deadline_seconds``.
        """
        if self._backend is None:
            self._backend = RealNvmlBackend()
        backend = self._backend
        outcome = self._run_jobs({_SYSTEM: lambda job: backend.nvmlInit()}, self._init_deadline)
        result = outcome[_SYSTEM]
        if isinstance(result, _Job) and result.exception is not None:
            raise NvmlUnavailableError(_init_failure_message(result.exception)) from (
                result.exception
            )
        if isinstance(result, str):
            raise NvmlUnavailableError(f"NVML initialisation {result}: the driver may be hung")
        self._started = True
        identities = self.discover()
        if self._undiscovered:
            log.warning("NVML: some GPUs could not be read: %s", self._undiscovered)
        return identities

    def close(self) -> None:
        """Free GPM samples and shut NVML down (errors ignored: this is teardown)."""
        for state in self._states.values():
            self._drop_gpm(state)
        if self._started and self._backend is not None:
            try:
                self._backend.nvmlShutdown()
            except pynvml.NVMLError as error:
                log.debug("nvmlShutdown: %s", error)
        self._started = False

    # -- discovery --

    def discover(self) -> tuple[GpuIdentity, ...]:
        """(Re)read every GPU's static facts; GPM windows restart from a fresh seed."""
        backend = self._require_backend()
        count_outcome = self._run_jobs(
            {_SYSTEM: lambda job: backend.nvmlDeviceGetCount()}, self._deadline
        )[_SYSTEM]
        count = self._system_result(count_outcome, "nvmlDeviceGetCount")
        if not isinstance(count, int):
            raise NvmlUnavailableError(f"NVML could not count GPUs: {count}")
        for state in self._states.values():
            self._drop_gpm(state)
            if state.xid_events is not None:
                self._free_events(state.xid_events)
        self._states = {}
        self._undiscovered = {}
        self._device_count = count
        self._discover_indices(range(self._device_count), notes=[])
        return self.identities

    def _discover_indices(self, indices: Iterable[int], notes: list[str]) -> None:
        backend = self._require_backend()
        work: dict[int, Callable[[_Job], object]] = {}
        for index in indices:
            work[index] = self._discovery_work(backend, index, notes)
        for index, outcome in self._run_jobs(work, self._deadline).items():
            if isinstance(outcome, str):
                self._undiscovered[index] = outcome
            elif outcome.exception is not None:
                self._undiscovered[index] = str(outcome.exception)
                if not isinstance(outcome.exception, _GpuDown):
                    raise NvmlReadError(
                        f"reading GPU {index} failed: {outcome.exception!r}"
                    ) from outcome.exception
            elif isinstance(outcome.result, _GpuState):
                self._states[index] = outcome.result
                self._undiscovered.pop(index, None)
            else:
                self._undiscovered[index] = str(outcome.result)

    def _discovery_work(
        self, backend: NvmlBackend, index: int, notes: list[str]
    ) -> Callable[[_Job], object]:
        def work(job: _Job) -> object:
            calls = _GpuCalls(backend, job, f"gpu {index}", notes, self._warned_functions)
            handle = calls.get("nvmlDeviceGetHandleByIndex", index)
            if handle is None:
                return "no handle from nvmlDeviceGetHandleByIndex (see notes)"
            uuid = calls.get("nvmlDeviceGetUUID", handle)
            if not uuid:
                return "no UUID from nvmlDeviceGetUUID"
            name = calls.get("nvmlDeviceGetName", handle)
            pci: PciInfo | None = calls.get("nvmlDeviceGetPciInfo", handle)
            memory: MemoryInfo | None = calls.get("nvmlDeviceGetMemoryInfo", handle)
            max_sm = calls.get("nvmlDeviceGetMaxClockInfo", handle, CLOCK_SM)
            max_mem = calls.get("nvmlDeviceGetMaxClockInfo", handle, CLOCK_MEM)
            bus_width = calls.get("nvmlDeviceGetMemoryBusWidth", handle)
            mig_mode = calls.get("nvmlDeviceGetMigMode", handle)
            gpm = calls.get("nvmlGpmQueryDeviceSupport", handle)
            xid_events = calls.get("nvmlEventSetCreate")
            if xid_events is not None:
                registered = calls.get(
                    "nvmlDeviceRegisterEvents", handle, XID_EVENT_TYPE, xid_events, ok=True
                )
                if registered is None:  # XID events unsupported here (vGPU, some MIG setups)
                    self._free_events(xid_events)
                    xid_events = None
            identity = GpuIdentity(
                index=index,
                uuid=str(uuid),
                name=str(name) if name else "NVIDIA GPU (nvmlDeviceGetName unavailable)",
                pci_device_id=(pci.pci_device_id >> 16) & 0xFFFF if pci else None,
                pci_bus_id=pci.bus_id if pci else None,
                memory_total_bytes=memory.total_bytes if memory else None,
                max_sm_clock_hz=_mhz_to_hz(max_sm),
                max_memory_clock_hz=_mhz_to_hz(max_mem),
                # Unified-memory parts (GB10) report a bus width of 0.
                memory_bus_width_bits=int(bus_width) if bus_width else None,
                mig_mode_enabled=(mig_mode[0] == MIG_MODE_ENABLED) if mig_mode else None,
            )
            return _GpuState(
                identity=identity, handle=handle, gpm_supported=bool(gpm), xid_events=xid_events
            )

        return work

    # -- reading --

    def read(self) -> GpuSourceResult:
        """One cycle: every known GPU read concurrently, each within the deadline."""
        backend = self._require_backend()
        notes: list[str] = []
        now = self._clock()
        if self._needs_reinit:
            reinit = self._run_jobs({_SYSTEM: lambda job: backend.nvmlInit()}, self._deadline)
            problem = self._system_result(reinit[_SYSTEM], "nvmlInit")
            if isinstance(problem, str):
                return self._all_down(f"NVML re-initialisation failed: {problem}", now)
            self._needs_reinit = False
            self._device_count = -1  # force rediscovery below
        count_outcome = self._run_jobs(
            {_SYSTEM: lambda job: backend.nvmlDeviceGetCount()}, self._deadline
        )[_SYSTEM]
        count = self._system_result(count_outcome, "nvmlDeviceGetCount")
        if not isinstance(count, int):
            self._needs_reinit = True
            return self._all_down(str(count), now)
        if count != self._device_count:
            if self._device_count >= 0:
                notes.append(
                    f"GPU count changed from {self._device_count} to {count}; rediscovered"
                )
            for state in self._states.values():
                self._drop_gpm(state)
                if state.xid_events is not None:
                    self._free_events(state.xid_events)
            self._states = {}
            self._undiscovered = {}
            self._device_count = count
            self._discover_indices(range(self._device_count), notes)
        elif self._undiscovered:
            self._discover_indices(list(self._undiscovered), notes)

        work = {
            index: self._read_work(backend, state, notes) for index, state in self._states.items()
        }
        readings: list[GpuReading] = []
        for index, outcome in sorted(self._run_jobs(work, self._deadline).items()):
            state = self._states[index]
            if isinstance(outcome, str):
                readings.append(self._down(state, outcome, now))
            elif outcome.exception is not None:
                raise NvmlReadError(
                    f"reading GPU {index} failed: {outcome.exception!r}"
                ) from outcome.exception
            else:
                assert isinstance(outcome.result, GpuReading)
                readings.append(outcome.result)
        notes.extend(f"gpu {index}: {reason}" for index, reason in self._undiscovered.items())
        return GpuSourceResult(
            identities=self.identities, readings=tuple(readings), errors=tuple(notes)
        )

    def _read_work(
        self, backend: NvmlBackend, state: _GpuState, notes: list[str]
    ) -> Callable[[_Job], object]:
        def work(job: _Job) -> object:
            identity = state.identity
            local_notes: list[str] = []
            calls = _GpuCalls(
                backend,
                job,
                f"gpu {identity.index} ({identity.uuid})",
                local_notes,
                self._warned_functions,
            )
            now = self._clock()
            try:
                reading = self._read_gpu(state, calls, now, local_notes)
            except _GpuDown as down:
                self._drop_gpm(state)
                reading = self._down(state, str(down), now)
            notes.extend(local_notes)
            return reading

        return work

    def _read_gpu(
        self, state: _GpuState, calls: _GpuCalls, now: float, notes: list[str]
    ) -> GpuReading:
        handle = state.handle
        identity = state.identity
        gpm = self._read_gpm(state, calls, now, notes) if state.gpm_supported else {}
        utilization: Utilization | None = calls.get("nvmlDeviceGetUtilizationRates", handle)
        sm_clock = calls.get("nvmlDeviceGetClockInfo", handle, CLOCK_SM)
        power_mw = calls.get("nvmlDeviceGetPowerUsage", handle)
        limit_mw = calls.get("nvmlDeviceGetEnforcedPowerLimit", handle)
        memory: MemoryInfo | None = calls.get("nvmlDeviceGetMemoryInfo", handle)
        reasons = calls.get("nvmlDeviceGetCurrentClocksEventReasons", handle)
        processes: list[ComputeProcess] | None = calls.get(
            "nvmlDeviceGetComputeRunningProcesses", handle
        )
        temperature = calls.get("nvmlDeviceGetTemperature", handle, TEMPERATURE_GPU)
        energy_mj = calls.get("nvmlDeviceGetTotalEnergyConsumption", handle)
        ecc_corrected = calls.get(
            "nvmlDeviceGetTotalEccErrors", handle, ECC_CORRECTED, ECC_VOLATILE
        )
        ecc_uncorrected = calls.get(
            "nvmlDeviceGetTotalEccErrors", handle, ECC_UNCORRECTED, ECC_VOLATILE
        )
        self._drain_xid_events(state, calls)
        mig = self._read_mig(state, calls) if identity.mig_mode_enabled else ()

        tier: TelemetryTier = "none"
        if any(gpm.get(name) is not None for name in GPM_ACTIVITY_FIELDS):
            tier = "gpm"
        elif utilization is not None:
            tier = "nvml"
        return GpuReading(
            uuid=identity.uuid,
            index=identity.index,
            up=True,
            tier=tier,
            timestamp=now,
            kernel_busy_ratio=_percent_to_ratio(utilization.gpu_percent) if utilization else None,
            memory_controller_busy_ratio=(
                _percent_to_ratio(utilization.memory_percent) if utilization else None
            ),
            sm_clock_hz=_mhz_to_hz(sm_clock),
            power_watts=power_mw / MILLIWATTS_PER_WATT if power_mw is not None else None,
            power_limit_watts=limit_mw / MILLIWATTS_PER_WATT if limit_mw is not None else None,
            memory_used_bytes=memory.used_bytes if memory else None,
            clock_event_reasons=clock_event_reason_names(int(reasons)) if reasons else (),
            compute_pids=tuple(sorted({p.pid for p in processes})) if processes else (),
            process_memory_bytes=tuple(
                sorted(
                    (p.pid, p.used_gpu_memory_bytes)
                    for p in processes or ()
                    if p.used_gpu_memory_bytes is not None
                )
            ),
            temperature_celsius=float(temperature) if temperature is not None else None,
            energy_joules_total=(
                energy_mj / MILLIJOULES_PER_JOULE if energy_mj is not None else None
            ),
            ecc_corrected_errors_total=ecc_corrected,
            ecc_uncorrected_errors_total=ecc_uncorrected,
            xid_errors_total=state.xid_errors if state.xid_events is not None else None,
            last_xid=state.last_xid,
            mig_instances=mig,
            mig_supported=identity.mig_mode_enabled is not None,
            sm_active_ratio=gpm.get("sm_active_ratio"),
            sm_occupancy_ratio=gpm.get("sm_occupancy_ratio"),
            tensor_active_ratio=gpm.get("tensor_active_ratio"),
            tensor_hmma_active_ratio=gpm.get("tensor_hmma_active_ratio"),
            dram_active_ratio=gpm.get("dram_active_ratio"),
            fp16_active_ratio=gpm.get("fp16_active_ratio"),
            fp32_active_ratio=gpm.get("fp32_active_ratio"),
            pcie_tx_bytes_per_second=gpm.get("pcie_tx_bytes_per_second"),
            pcie_rx_bytes_per_second=gpm.get("pcie_rx_bytes_per_second"),
            nvlink_tx_bytes_per_second=gpm.get("nvlink_tx_bytes_per_second"),
            nvlink_rx_bytes_per_second=gpm.get("nvlink_rx_bytes_per_second"),
        )

    def _read_gpm(
        self, state: _GpuState, calls: _GpuCalls, now: float, notes: list[str]
    ) -> dict[str, float | None]:
        """GPM metrics between the previous cycle's sample and one taken now.

        The first cycle (and the first after a reseed) only stores its sample. A window under
        100 ms keeps the older sample (a rapid extra read must not shrink the window); one over
        ``gpm_max_window_seconds`` reseeds. Samples are always freed.
        """
        label = f"gpu {state.identity.index} ({state.identity.uuid})"
        sample = calls.get("nvmlGpmSampleAlloc")
        if sample is None:
            return {}
        try:
            if calls.get("nvmlGpmSampleGet", state.handle, sample) is None:
                return {}
            previous, previous_time = state.gpm_sample, state.gpm_sample_time
            if previous is None or previous_time is None:
                state.gpm_sample, state.gpm_sample_time, sample = sample, now, None
                return {}
            window = now - previous_time
            if window < GPM_MIN_WINDOW_SECONDS:
                notes.append(
                    f"{label}: GPM window {window:.3f} s is under {GPM_MIN_WINDOW_SECONDS} s; "
                    "kept the older sample"
                )
                return {}
            if window > self._gpm_max_window:
                notes.append(
                    f"{label}: GPM window {window:.1f} s exceeds {self._gpm_max_window} s; reseeded"
                )
                self._free_sample(previous)
                state.gpm_sample, state.gpm_sample_time, sample = sample, now, None
                return {}
            values: list[GpmMetricValue] | None = calls.get(
                "nvmlGpmMetricsGet", previous, sample, [m.metric_id for m in GPM_METRICS]
            )
            self._free_sample(previous)
            state.gpm_sample, state.gpm_sample_time, sample = sample, now, None
        finally:
            if sample is not None:
                self._free_sample(sample)
        if values is None:
            return {}
        return self._convert_gpm(values, calls, notes, label)

    @staticmethod
    def _convert_gpm(
        values: Sequence[GpmMetricValue], calls: _GpuCalls, notes: list[str], label: str
    ) -> dict[str, float | None]:
        by_id = {value.metric_id: value for value in values}
        out: dict[str, float | None] = {}
        for metric in GPM_METRICS:
            value = by_id.get(metric.metric_id)
            converted: float | None = None
            if value is None:
                pass
            elif value.nvml_return != NVML_SUCCESS:
                try:
                    calls.sort(
                        f"GPM metric {metric.metric_id}",
                        value.nvml_return,
                        str(nvml_error(value.nvml_return)),
                    )
                except _GpuDown:
                    # The sample as a whole succeeded; one metric's code does not down the GPU.
                    notes.append(
                        f"{label}: GPM metric {metric.metric_id} returned NVML error "
                        f"{value.nvml_return} (omitted)"
                    )
            elif math.isfinite(value.value):
                converted = _convert_gpm_value(metric, value.value, notes, label)
            out[metric.reading_field] = converted
        return out

    def _read_mig(self, state: _GpuState, calls: _GpuCalls) -> tuple[MigInstance, ...]:
        slots = calls.get("nvmlDeviceGetMaxMigDeviceCount", state.handle) or 0
        instances: list[MigInstance] = []
        for slot in range(int(slots)):
            mig_handle = calls.get(
                "nvmlDeviceGetMigDeviceHandleByIndex",
                state.handle,
                slot,
                absent_codes=(NvmlErrorCode.NOT_FOUND, NvmlErrorCode.INVALID_ARGUMENT),
            )
            if mig_handle is None:
                continue
            uuid = calls.get("nvmlDeviceGetUUID", mig_handle)
            if not uuid:
                continue
            memory: MemoryInfo | None = calls.get("nvmlDeviceGetMemoryInfo", mig_handle)
            instances.append(
                MigInstance(
                    parent_uuid=state.identity.uuid,
                    uuid=str(uuid),
                    gpu_instance_id=calls.get("nvmlDeviceGetGpuInstanceId", mig_handle),
                    compute_instance_id=calls.get("nvmlDeviceGetComputeInstanceId", mig_handle),
                    memory_total_bytes=memory.total_bytes if memory else None,
                )
            )
        return tuple(instances)

    # -- helpers --

    def _run_jobs(
        self, work: Mapping[int, Callable[[_Job], object]], deadline_seconds: float
    ) -> dict[int, _Job | str]:
        """Run each job in a daemon thread; a job past the deadline comes back as a reason.

        A key whose previous job is still running (hung in the driver) is not started again.
        """
        outcomes: dict[int, _Job | str] = {}
        running: dict[int, _Job] = {}
        for key, fn in work.items():
            previous = self._jobs.get(key)
            if previous is not None and previous.thread is not None and previous.thread.is_alive():
                outcomes[key] = (
                    f"still hung in {previous.current_call or 'an NVML call'} "
                    f"for {time.monotonic() - previous.started:.1f} s"
                )
                continue
            job = _Job(started=time.monotonic())
            job.thread = threading.Thread(
                target=_run_job, args=(job, fn), name=f"nvml-{key}", daemon=True
            )
            self._jobs[key] = job
            running[key] = job
            job.thread.start()
        end = time.monotonic() + deadline_seconds
        for key, job in running.items():
            assert job.thread is not None
            job.thread.join(max(0.0, end - time.monotonic()))
            if job.thread.is_alive():
                outcomes[key] = (
                    f"no answer within {deadline_seconds:g} s "
                    f"(hung in {job.current_call or 'an NVML call'})"
                )
            else:
                outcomes[key] = job
        return outcomes

    @staticmethod
    def _system_result(outcome: _Job | str, call: str) -> object:
        """A system-level call's value, or a reason string when it failed or hung."""
        if isinstance(outcome, str):
            return f"{call}: {outcome}"
        if outcome.exception is not None:
            code = nvml_error_code(outcome.exception)
            if code is None:
                raise NvmlReadError(f"{call} failed: {outcome.exception!r}") from (
                    outcome.exception
                )
            return f"{call}: {outcome.exception} (NVML error {code})"
        return outcome.result

    def _all_down(self, reason: str, now: float) -> GpuSourceResult:
        for state in self._states.values():
            self._drop_gpm(state)
        readings = tuple(self._down(self._states[i], reason, now) for i in sorted(self._states))
        return GpuSourceResult(identities=self.identities, readings=readings, errors=(reason,))

    @staticmethod
    def _down(state: _GpuState, reason: str, now: float) -> GpuReading:
        return GpuReading(
            uuid=state.identity.uuid,
            index=state.identity.index,
            up=False,
            tier="none",
            timestamp=now,
            mig_supported=state.identity.mig_mode_enabled is not None,
            error=reason,
        )

    def _drain_xid_events(self, state: _GpuState, calls: _GpuCalls) -> None:
        """Count the XID errors queued for this GPU since the last cycle (never blocks)."""
        if state.xid_events is None:
            return
        for _ in range(MAX_XID_EVENTS_PER_CYCLE):
            xid = calls.get("nvmlEventSetWait", state.xid_events, 0)
            if xid is None:
                return
            state.xid_errors += 1
            state.last_xid = int(xid)

    def _free_events(self, event_set: Any) -> None:
        if self._backend is None:
            return
        try:
            self._backend.nvmlEventSetFree(event_set)
        except pynvml.NVMLError as error:
            log.debug("nvmlEventSetFree: %s", error)

    def _drop_gpm(self, state: _GpuState) -> None:
        if state.gpm_sample is not None:
            self._free_sample(state.gpm_sample)
        state.gpm_sample = None
        state.gpm_sample_time = None

    def _free_sample(self, sample: Any) -> None:
        if self._backend is None:
            return
        try:
            self._backend.nvmlGpmSampleFree(sample)
        except pynvml.NVMLError as error:
            log.debug("nvmlGpmSampleFree: %s", error)

    def _require_backend(self) -> NvmlBackend:
        if self._backend is None or not self._started:
            raise RuntimeError("NvmlSource.start() must be called before discover() or read()")
        return self._backend


def _run_job(job: _Job, fn: Callable[[_Job], object]) -> None:
    try:
        job.result = fn(job)
    except BaseException as error:  # handed to the caller, which decides
        job.exception = error


def _mhz_to_hz(mhz: object) -> float | None:
    if mhz is None or not isinstance(mhz, int | float) or mhz <= 0:
        return None
    return float(mhz) * HERTZ_PER_MEGAHERTZ


def _percent_to_ratio(percent: float) -> float | None:
    if not math.isfinite(percent) or percent < 0:
        return None
    return min(percent, PERCENT_PER_RATIO) / PERCENT_PER_RATIO


def _convert_gpm_value(
    metric: GpmMetric, value: float, notes: list[str], label: str
) -> float | None:
    if value < 0:
        notes.append(f"{label}: GPM metric {metric.metric_id} is negative ({value}); omitted")
        return None
    if metric.unit == "mib_per_second":
        return value * BYTES_PER_MIB
    if value > PERCENT_PER_RATIO:
        # DCGM's GPM path does not clamp either; SMACT above 100 % is seen on MIG (DCGM #152).
        notes.append(f"{label}: GPM metric {metric.metric_id} read {value:.1f} %, clamped to 100 %")
        value = PERCENT_PER_RATIO
    return value / PERCENT_PER_RATIO


__all__ = [
    "CLOCK_EVENT_REASONS",
    "CLOCK_MEM",
    "CLOCK_SM",
    "GPM_METRICS",
    "ComputeProcess",
    "ErrorAction",
    "GpmMetric",
    "GpmMetricValue",
    "MemoryInfo",
    "NvmlBackend",
    "NvmlErrorCode",
    "NvmlReadError",
    "NvmlSource",
    "NvmlUnavailableError",
    "PciInfo",
    "RealNvmlBackend",
    "Utilization",
    "classify_nvml_error",
    "clock_event_reason_names",
    "nvml_error",
    "nvml_error_code",
]
