"""A programmable NVML backend for tests and the demo node.

:class:`FakeNvmlBackend` has the methods of :class:`rooftop.exporter.sources.nvml.NvmlBackend` and
fails the way NVML does: it raises the very pynvml exception classes, built through
:func:`rooftop.exporter.sources.nvml.nvml_error` (this module never imports pynvml). Devices are
:class:`FakeGpu` objects whose readings can be changed between cycles, most easily with
:meth:`FakeNvmlBackend.set_activity`, and whose calls can be made to fail or hang by name.

Readings are held in NVML's own units (percent, MHz, milliwatts, MiB/s) so the source's unit
conversions are exercised. GPM metrics are those set when the later of the two samples was
taken (real hardware averages over the window; a demo that changes activity once per cycle
sees the same numbers either way).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rooftop.classifiers.hardware import BYTES_PER_MIB
from rooftop.exporter.sources.nvml_api import (
    CLOCK_MEM,
    CLOCK_SM,
    GPM_METRICS,
    MIG_MODE_ENABLED,
    NVML_SUCCESS,
    GpmMetricValue,
    MemoryInfo,
    NvmlErrorCode,
    PciInfo,
    Utilization,
    nvml_error,
)

NVIDIA_VENDOR_ID = 0x10DE
ANY_CALL = "*"
"""Fault key matching every device call of a GPU."""

_GPM_IDS = {metric.reading_field: metric.metric_id for metric in GPM_METRICS}


CALL_LOG_LENGTH = 10_000


def _error_code(error: NvmlErrorCode | int | str) -> int:
    if isinstance(error, str):
        try:
            return int(NvmlErrorCode[error.upper()])
        except KeyError:
            names = ", ".join(code.name.lower() for code in NvmlErrorCode)
            raise ValueError(f"unknown NVML error name {error!r}; use one of: {names}") from None
    return int(error)


@dataclass
class _Fault:
    code: int | None = None
    hang_seconds: float = 0.0
    times: int | None = None
    """How many more calls it applies to; None: until cleared."""


@dataclass
class FakeMigDevice:
    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    memory_total_bytes: int


@dataclass
class FakeGpu:
    """One programmable GPU. Defaults are an idle H100 SXM5 80GB (PCI device id 0x2330)."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_device_id: int = 0x2330
    """16-bit PCI device id; the fake reports ``pciDeviceId`` as ``id << 16 | 0x10DE``."""
    pci_bus_id: str = "00000000:18:00.0"
    memory_total_bytes: int = 81559 * BYTES_PER_MIB
    memory_used_bytes: int = 0
    max_sm_clock_mhz: int = 1980
    max_memory_clock_mhz: int = 2619
    memory_bus_width_bits: int = 5120
    gpm_supported: bool = True
    mig_mode: tuple[int, int] | None = (0, 0)
    """(current, pending); None: the device does not support MIG (NotSupported)."""
    mig_devices: list[FakeMigDevice] = field(default_factory=list)
    sm_clock_mhz: int = 1980
    utilization_gpu_percent: float = 0.0
    utilization_memory_percent: float = 0.0
    power_mw: int = 70_000
    power_limit_mw: int = 700_000
    clock_event_reasons: int = 0
    compute_pids: list[int] = field(default_factory=list)
    gpm_values: dict[int, float] = field(
        default_factory=lambda: {metric.metric_id: 0.0 for metric in GPM_METRICS}
    )
    """GPM metric id -> value in NVML units (percent 0-100, MiB/s); may be NaN."""
    gpm_metric_errors: dict[int, int] = field(default_factory=dict)
    """GPM metric id -> the per-metric ``nvmlReturn`` to report instead of a value."""
    faults: dict[str, _Fault] = field(default_factory=dict)

    def fail(
        self, call: str, error: NvmlErrorCode | int | str, *, times: int | None = None
    ) -> None:
        """Make ``call`` (a pynvml function name, or ``"*"`` for all) raise NVML ``error``.

        ``error`` is a code or a name such as ``"not_supported"``, ``"no_permission"``,
        ``"gpu_is_lost"``, ``"uninitialized"``, ``"driver_not_loaded"``.
        """
        self.faults[call] = _Fault(code=_error_code(error), times=times)

    def hang(self, call: str, seconds: float, *, times: int | None = 1) -> None:
        """Make ``call`` block for ``seconds`` (released early by ``release_hangs``)."""
        self.faults[call] = _Fault(hang_seconds=seconds, times=times)

    def clear_faults(self) -> None:
        self.faults.clear()


@dataclass
class _FakeHandle:
    gpu: FakeGpu
    mig: FakeMigDevice | None = None


@dataclass
class _FakeGpmSample:
    serial: int
    gpu: FakeGpu | None = None
    values: dict[int, float] = field(default_factory=dict)
    taken_at: float | None = None
    freed: bool = False


class FakeNvmlBackend:
    """NVML with programmable devices. ``gpus`` is the live, mutable device list."""

    def __init__(
        self, gpus: Sequence[FakeGpu] = (), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.gpus: list[FakeGpu] = list(gpus)
        self.initialized = False
        self.driver_loaded = True
        self.driver_version = "fake"
        """What ``nvmlSystemGetDriverVersion`` answers (a real one reads like ``550.54.15``)."""
        self.system_faults: dict[str, _Fault] = {}
        self.calls: deque[str] = deque(maxlen=CALL_LOG_LENGTH)
        """The most recent calls, newest last (bounded: the demo node runs for days)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._samples: dict[int, _FakeGpmSample] = {}
        self._next_sample = 0

    # -- programming --

    @classmethod
    def from_json(cls, path: str | Path) -> FakeNvmlBackend:
        """Devices from a fixture: ``{"source": "...", "gpus": [{FakeGpu fields}, ...]}``.

        Integers may be given as strings with a base prefix (``"0x2330"``).
        """
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
            raise ValueError(f"{path}: expected an object with a 'gpus' list")
        gpus = []
        for number, raw in enumerate(data["gpus"]):
            if not isinstance(raw, dict):
                raise ValueError(f"{path}: gpus[{number}] must be an object")
            gpus.append(_gpu_from_dict(raw, f"{path}: gpus[{number}]"))
        return cls(gpus)

    def gpu(self, index: int) -> FakeGpu:
        try:
            return self.gpus[index]
        except IndexError:
            raise IndexError(f"no fake GPU {index}; there are {len(self.gpus)}") from None

    def set_activity(
        self,
        index: int,
        *,
        sm_active: float | None = None,
        sm_occupancy: float | None = None,
        tensor_active: float | None = None,
        hmma_active: float | None = None,
        dram_active: float | None = None,
        fp16_active: float | None = None,
        fp32_active: float | None = None,
        pcie_tx_bytes_per_second: float | None = None,
        pcie_rx_bytes_per_second: float | None = None,
        nvlink_tx_bytes_per_second: float | None = None,
        nvlink_rx_bytes_per_second: float | None = None,
        kernel_busy: float | None = None,
        memory_controller_busy: float | None = None,
        sm_clock_hz: float | None = None,
        power_watts: float | None = None,
        memory_used_bytes: int | None = None,
        compute_pids: Sequence[int] | None = None,
        clock_event_reasons: int | None = None,
    ) -> None:
        """Set a GPU's current activity in base units (ratios 0-1, bytes/s, Hz, W).

        Only the arguments given change. Ratios become NVML percent, rates MiB/s, clocks MHz,
        power mW, as the real library would report them.
        """
        gpu = self.gpu(index)
        ratios = {
            "sm_active_ratio": sm_active,
            "sm_occupancy_ratio": sm_occupancy,
            "tensor_active_ratio": tensor_active,
            "tensor_hmma_active_ratio": hmma_active,
            "dram_active_ratio": dram_active,
            "fp16_active_ratio": fp16_active,
            "fp32_active_ratio": fp32_active,
        }
        rates = {
            "pcie_tx_bytes_per_second": pcie_tx_bytes_per_second,
            "pcie_rx_bytes_per_second": pcie_rx_bytes_per_second,
            "nvlink_tx_bytes_per_second": nvlink_tx_bytes_per_second,
            "nvlink_rx_bytes_per_second": nvlink_rx_bytes_per_second,
        }
        with self._lock:
            for name, ratio in ratios.items():
                if ratio is not None:
                    _check_ratio(name, ratio)
                    gpu.gpm_values[_GPM_IDS[name]] = ratio * 100.0
            for name, rate in rates.items():
                if rate is not None:
                    gpu.gpm_values[_GPM_IDS[name]] = rate / BYTES_PER_MIB
            if kernel_busy is not None:
                _check_ratio("kernel_busy", kernel_busy)
                gpu.utilization_gpu_percent = round(kernel_busy * 100.0)
            if memory_controller_busy is not None:
                _check_ratio("memory_controller_busy", memory_controller_busy)
                gpu.utilization_memory_percent = round(memory_controller_busy * 100.0)
            if sm_clock_hz is not None:
                gpu.sm_clock_mhz = round(sm_clock_hz / 1e6)
            if power_watts is not None:
                gpu.power_mw = round(power_watts * 1000.0)
            if memory_used_bytes is not None:
                gpu.memory_used_bytes = memory_used_bytes
            if compute_pids is not None:
                gpu.compute_pids = list(compute_pids)
            if clock_event_reasons is not None:
                gpu.clock_event_reasons = clock_event_reasons

    def fail_system(
        self, call: str, error: NvmlErrorCode | int | str, *, times: int | None = None
    ) -> None:
        """Make a system call (``nvmlInit``, ``nvmlDeviceGetCount``, ...) raise ``error``."""
        self.system_faults[call] = _Fault(code=_error_code(error), times=times)

    def unload_driver(self) -> None:
        """Every call, ``nvmlInit`` included, raises ``DriverNotLoaded`` until reloaded."""
        self.driver_loaded = False
        self.initialized = False

    def reload_driver(self) -> None:
        self.driver_loaded = True

    def release_hangs(self) -> None:
        """Let every hanging call return now (tests call this in teardown)."""
        self._release.set()

    @property
    def live_gpm_samples(self) -> int:
        """GPM samples allocated and not yet freed (a leak check)."""
        with self._lock:
            return len(self._samples)

    # -- fault machinery --

    def _enter(self, call: str, gpu: FakeGpu | None = None) -> None:
        self.calls.append(call)
        if not self.driver_loaded:
            raise nvml_error(NvmlErrorCode.DRIVER_NOT_LOADED)
        if call not in ("nvmlInit",) and not self.initialized:
            raise nvml_error(NvmlErrorCode.UNINITIALIZED)
        faults = self.system_faults if gpu is None else gpu.faults
        fault = faults.get(call) or (faults.get(ANY_CALL) if gpu is not None else None)
        if fault is not None:
            key = call if call in faults else ANY_CALL
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del faults[key]
            if fault.hang_seconds > 0:
                self._release.wait(fault.hang_seconds)
            if fault.code is not None:
                raise nvml_error(fault.code)
        if gpu is not None and gpu not in self.gpus:
            # A device that left the bus after its handle was taken.
            raise nvml_error(NvmlErrorCode.GPU_IS_LOST)

    def _device(self, call: str, handle: Any) -> _FakeHandle:
        if not isinstance(handle, _FakeHandle):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        self._enter(call, handle.gpu)
        return handle

    # -- the NVML API --

    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialized = False

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        gpu = self.gpus[index]
        self._enter("nvmlDeviceGetHandleByIndex", gpu)
        return _FakeHandle(gpu)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        h = self._device("nvmlDeviceGetUUID", handle)
        return h.mig.uuid if h.mig else h.gpu.uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._device("nvmlDeviceGetName", handle).gpu.name

    def nvmlDeviceGetPciInfo(self, handle: Any) -> PciInfo:
        gpu = self._device("nvmlDeviceGetPciInfo", handle).gpu
        return PciInfo(
            bus_id=gpu.pci_bus_id, pci_device_id=(gpu.pci_device_id << 16) | NVIDIA_VENDOR_ID
        )

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> MemoryInfo:
        h = self._device("nvmlDeviceGetMemoryInfo", handle)
        if h.mig is not None:
            return MemoryInfo(total_bytes=h.mig.memory_total_bytes, used_bytes=0)
        return MemoryInfo(total_bytes=h.gpu.memory_total_bytes, used_bytes=h.gpu.memory_used_bytes)

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        gpu = self._device("nvmlDeviceGetMaxClockInfo", handle).gpu
        return self._clock_of(gpu, clock_type, gpu.max_sm_clock_mhz, gpu.max_memory_clock_mhz)

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        gpu = self._device("nvmlDeviceGetClockInfo", handle).gpu
        return self._clock_of(gpu, clock_type, gpu.sm_clock_mhz, gpu.max_memory_clock_mhz)

    @staticmethod
    def _clock_of(gpu: FakeGpu, clock_type: int, sm: int, mem: int) -> int:
        if clock_type == CLOCK_SM:
            return sm
        if clock_type == CLOCK_MEM:
            return mem
        raise nvml_error(NvmlErrorCode.NOT_SUPPORTED)

    def nvmlDeviceGetMemoryBusWidth(self, handle: Any) -> int:
        return self._device("nvmlDeviceGetMemoryBusWidth", handle).gpu.memory_bus_width_bits

    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
        gpu = self._device("nvmlDeviceGetMigMode", handle).gpu
        if gpu.mig_mode is None:
            raise nvml_error(NvmlErrorCode.NOT_SUPPORTED)
        return gpu.mig_mode

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Utilization:
        gpu = self._device("nvmlDeviceGetUtilizationRates", handle).gpu
        if gpu.mig_mode is not None and gpu.mig_mode[0] == MIG_MODE_ENABLED:
            # nvml.h: "On MIG-enabled GPUs, querying device utilization rates is not supported."
            raise nvml_error(NvmlErrorCode.NOT_SUPPORTED)
        return Utilization(
            gpu_percent=gpu.utilization_gpu_percent, memory_percent=gpu.utilization_memory_percent
        )

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return self._device("nvmlDeviceGetPowerUsage", handle).gpu.power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._device("nvmlDeviceGetEnforcedPowerLimit", handle).gpu.power_limit_mw

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return self._device(
            "nvmlDeviceGetCurrentClocksEventReasons", handle
        ).gpu.clock_event_reasons

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[int]:
        return list(self._device("nvmlDeviceGetComputeRunningProcesses", handle).gpu.compute_pids)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        gpu = self._device("nvmlDeviceGetMaxMigDeviceCount", handle).gpu
        if gpu.mig_mode is None:
            raise nvml_error(NvmlErrorCode.NOT_SUPPORTED)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        gpu = self._device("nvmlDeviceGetMigDeviceHandleByIndex", handle).gpu
        if not 0 <= index < len(gpu.mig_devices):
            raise nvml_error(NvmlErrorCode.NOT_FOUND)
        return _FakeHandle(gpu, gpu.mig_devices[index])

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        h = self._device("nvmlDeviceGetGpuInstanceId", handle)
        if h.mig is None:
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        return h.mig.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        h = self._device("nvmlDeviceGetComputeInstanceId", handle)
        if h.mig is None:
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        return h.mig.compute_instance_id

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> bool:
        return self._device("nvmlGpmQueryDeviceSupport", handle).gpu.gpm_supported

    def nvmlGpmSampleAlloc(self) -> Any:
        self._enter("nvmlGpmSampleAlloc")
        with self._lock:
            self._next_sample += 1
            sample = _FakeGpmSample(serial=self._next_sample)
            self._samples[sample.serial] = sample
        return sample

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        gpu = self._device("nvmlGpmSampleGet", handle).gpu
        if not gpu.gpm_supported:
            raise nvml_error(NvmlErrorCode.NOT_SUPPORTED)
        live = self._live_sample(sample)
        with self._lock:
            live.gpu = gpu
            live.values = dict(gpu.gpm_values)
            live.taken_at = self._clock()
        return live

    def nvmlGpmMetricsGet(
        self, sample1: Any, sample2: Any, metric_ids: Sequence[int]
    ) -> list[GpmMetricValue]:
        first, second = self._live_sample(sample1), self._live_sample(sample2)
        if first.gpu is None or second.gpu is None or first.gpu is not second.gpu:
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        self._enter("nvmlGpmMetricsGet", second.gpu)
        gpu = second.gpu
        out = []
        for metric_id in metric_ids:
            code = gpu.gpm_metric_errors.get(metric_id)
            if code is None and metric_id not in second.values:
                code = int(NvmlErrorCode.NOT_SUPPORTED)
            if code is not None:
                out.append(GpmMetricValue(metric_id, code, 0.0))
            else:
                out.append(GpmMetricValue(metric_id, NVML_SUCCESS, second.values[metric_id]))
        return out

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        # Samples are host memory: freeing works even with the driver gone, so no _enter.
        self.calls.append("nvmlGpmSampleFree")
        live = self._live_sample(sample)
        live.freed = True
        with self._lock:
            self._samples.pop(live.serial, None)

    def _live_sample(self, sample: Any) -> _FakeGpmSample:
        if not isinstance(sample, _FakeGpmSample) or sample.freed:
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        return sample


def _check_ratio(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a ratio in 0-1, got {value}")


def _gpu_from_dict(raw: dict[str, Any], where: str) -> FakeGpu:
    known = set(FakeGpu.__dataclass_fields__) - {"faults", "mig_devices"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("comment", "_comment"):
            continue
        if key == "gpm_values":
            values[key] = {int(k): float(v) for k, v in value.items()}
        elif key == "mig_devices":
            values[key] = [FakeMigDevice(**device) for device in value]
        elif key == "mig_mode":
            values[key] = None if value is None else (int(value[0]), int(value[1]))
        elif key in known:
            values[key] = int(value, 0) if isinstance(value, str) and value[:2] == "0x" else value
        else:
            raise ValueError(f"{where}: unknown field {key!r}; known: {', '.join(sorted(known))}")
    if "uuid" not in values:
        raise ValueError(f"{where}: 'uuid' is required")
    gpu = FakeGpu(**values)
    if "gpm_values" not in raw and gpu.gpm_supported:
        gpu.gpm_values = {metric.metric_id: 0.0 for metric in GPM_METRICS}
    elif not gpu.gpm_supported:
        gpu.gpm_values = {}
    return gpu


__all__ = ["ANY_CALL", "FakeGpu", "FakeMigDevice", "FakeNvmlBackend"]
