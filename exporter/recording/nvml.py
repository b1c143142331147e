"""NVML at the backend boundary: a recording wrapper and a replaying backend.

:class:`RecordingNvmlBackend` wraps a real (or fake) backend: every answer is recorded, under a
key made of the pynvml function name and its arguments, with handles named by tokens (``gpu0``,
``gpu0/mig3``) so keys mean the same in a replay. :class:`ReplayNvmlBackend` implements the same
interface from a recording and raises the same pynvml exception classes (through
:func:`~rooftop.exporter.sources.nvml.nvml_error`), so
:class:`~rooftop.exporter.sources.nvml.NvmlSource` sorts errors, converts units and runs GPM
windows exactly as it did live.

Outcomes: ``{"v": value}``, ``{"e": nvml_return_code}``, or ``{"x": "message"}`` for an
exception that was not an NVML error; ``"s"`` adds the call's duration when it took 0.1 s or
more (a slow driver, for a bug report). GPM samples are host buffers: allocating and freeing
them is not recorded (a replay allocates its own), their contents are: ``nvmlGpmSampleGet``'s
outcome, and ``nvmlGpmMetricsGet``'s answers keyed by the GPU the later sample was taken on.

A replayed call with no recorded answer (a GPU whose call hung past the deadline, so nothing
was asked of it; or a function this recording never called) raises ``Unknown`` when the
function was recorded elsewhere (that GPU was not readable then) and ``NotSupported`` when it
never was (a rooftop newer than the recording asks for something new: the field is omitted).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rooftop.exporter.recording.codec import CodecError, decode_value, encode_value
from rooftop.exporter.recording.format import RecordingError
from rooftop.exporter.recording.tape import Player, Recorder
from rooftop.exporter.sources.nvml_api import (
    GpmMetricValue,
    MemoryInfo,
    NvmlBackend,
    NvmlErrorCode,
    PciInfo,
    Utilization,
    nvml_error,
    nvml_error_code,
)

CHANNEL = "nvml"
_T = TypeVar("_T")
SLOW_CALL_SECONDS = 0.1


@dataclass(frozen=True)
class _Handle:
    """A device handle named by a token; ``inner`` is the wrapped backend's handle."""

    token: str
    inner: Any = None


class _Sample:
    """A GPM sample: the wrapped backend's buffer, and the GPU it was last filled on."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.gpu: str | None = None


def _key(method: str, *parts: object) -> str:
    return "|".join([method, *(str(part) for part in parts)])


def _token(value: Any) -> str | None:
    return value.token if isinstance(value, _Handle) else None


class RecordingNvmlBackend:
    """Forwards every call to ``inner`` and records the answer in ``recorder``'s cycle."""

    def __init__(self, inner: NvmlBackend, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def _record(
        self, key: str, call: Any, *args: Any, token: str | None = None, record: bool = True
    ) -> Any:
        cycle = self._recorder.current()
        started = time.monotonic()
        outcome: dict[str, Any]
        try:
            value = call(*args)
        except Exception as error:
            code = nvml_error_code(error)
            outcome = {"e": code} if code is not None else {"x": f"{type(error).__name__}: {error}"}
            self._finish(cycle, key, outcome, started, record)
            raise
        if token is not None:
            value = _Handle(token, value)
        outcome = {"v": encode_value(value, _token)}
        self._finish(cycle, key, outcome, started, record)
        return value

    def _finish(
        self, cycle: Any, key: str, outcome: dict[str, Any], started: float, record: bool
    ) -> None:
        seconds = time.monotonic() - started
        if seconds >= SLOW_CALL_SECONDS:
            outcome["s"] = round(seconds, 3)
        if record:
            self._recorder.add(cycle, CHANNEL, key, outcome)

    def _device(self, method: str, handle: Any, *rest: Any, token: str | None = None) -> Any:
        if not isinstance(handle, _Handle):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        call = getattr(self._inner, method)
        return self._record(
            _key(method, handle.token, *rest), call, handle.inner, *rest, token=token
        )

    # -- system --

    def nvmlInit(self) -> None:
        self._record("nvmlInit", self._inner.nvmlInit)

    def nvmlShutdown(self) -> None:
        self._inner.nvmlShutdown()

    def nvmlDeviceGetCount(self) -> int:
        count: int = self._record("nvmlDeviceGetCount", self._inner.nvmlDeviceGetCount)
        return count

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return self._record(
            _key("nvmlDeviceGetHandleByIndex", index),
            self._inner.nvmlDeviceGetHandleByIndex,
            index,
            token=f"gpu{index}",
        )

    # -- per device --

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return str(self._device("nvmlDeviceGetUUID", handle))

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return str(self._device("nvmlDeviceGetName", handle))

    def nvmlDeviceGetPciInfo(self, handle: Any) -> PciInfo:
        info: PciInfo = self._device("nvmlDeviceGetPciInfo", handle)
        return info

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> MemoryInfo:
        info: MemoryInfo = self._device("nvmlDeviceGetMemoryInfo", handle)
        return info

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(self._device("nvmlDeviceGetMaxClockInfo", handle, clock_type))

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(self._device("nvmlDeviceGetClockInfo", handle, clock_type))

    def nvmlDeviceGetMemoryBusWidth(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetMemoryBusWidth", handle))

    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
        mode: tuple[int, int] = self._device("nvmlDeviceGetMigMode", handle)
        return mode

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Utilization:
        rates: Utilization = self._device("nvmlDeviceGetUtilizationRates", handle)
        return rates

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetPowerUsage", handle))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetEnforcedPowerLimit", handle))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetCurrentClocksEventReasons", handle))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[int]:
        pids: list[int] = self._device("nvmlDeviceGetComputeRunningProcesses", handle)
        return pids

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetMaxMigDeviceCount", handle))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        token = f"{_token(handle)}/mig{index}"
        return self._device("nvmlDeviceGetMigDeviceHandleByIndex", handle, index, token=token)

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetGpuInstanceId", handle))

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetComputeInstanceId", handle))

    # -- GPM --

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> bool:
        return bool(self._device("nvmlGpmQueryDeviceSupport", handle))

    def nvmlGpmSampleAlloc(self) -> Any:
        return _Sample(self._inner.nvmlGpmSampleAlloc())

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        if not isinstance(handle, _Handle) or not isinstance(sample, _Sample):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        # The sample's contents are opaque counters: the answer that matters is success or
        # the error, and the metrics computed from two samples (nvmlGpmMetricsGet, below).
        self._record(
            _key("nvmlGpmSampleGet", handle.token),
            _discard_result(self._inner.nvmlGpmSampleGet),
            handle.inner,
            sample.inner,
        )
        sample.gpu = handle.token
        return sample

    def nvmlGpmMetricsGet(
        self, sample1: Any, sample2: Any, metric_ids: Sequence[int]
    ) -> list[GpmMetricValue]:
        if not isinstance(sample1, _Sample) or not isinstance(sample2, _Sample):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        values: list[GpmMetricValue] = self._record(
            _key("nvmlGpmMetricsGet", sample2.gpu, ",".join(map(str, metric_ids))),
            self._inner.nvmlGpmMetricsGet,
            sample1.inner,
            sample2.inner,
            metric_ids,
        )
        return values

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        if isinstance(sample, _Sample):
            self._inner.nvmlGpmSampleFree(sample.inner)


class ReplayNvmlBackend:
    """The NVML interface answered from a recording (see the module doc for gaps)."""

    def __init__(self, player: Player) -> None:
        self._player = player
        self._recorded_methods = {
            key.split("|", 1)[0]
            for events in [
                player.recording.setup,
                *(c.get("events", {}) for c in player.recording.cycles),
            ]
            for key in events.get(CHANNEL, {})
        }

    def _answer(self, method: str, *parts: object) -> Any:
        key = _key(method, *parts)
        outcome = self._player.take(CHANNEL, key)
        if outcome is None:
            known = method in self._recorded_methods
            raise nvml_error(NvmlErrorCode.UNKNOWN if known else NvmlErrorCode.NOT_SUPPORTED)
        if not isinstance(outcome, dict):
            raise RecordingError(f"nvml {key}: recorded outcome {outcome!r} is not an object")
        if "e" in outcome:
            code = outcome["e"]
            if not isinstance(code, int):
                raise RecordingError(f"nvml {key}: recorded error code {code!r} is no integer")
            raise nvml_error(code)
        if "x" in outcome:
            raise RuntimeError(f"recorded failure of {method}: {outcome['x']}")
        try:
            return decode_value(outcome.get("v"), _Handle)
        except CodecError as error:
            raise RecordingError(f"nvml {key}: {error}") from None

    def _device(self, method: str, handle: Any, *rest: Any) -> Any:
        if not isinstance(handle, _Handle):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        return self._answer(method, handle.token, *rest)

    def nvmlInit(self) -> None:
        self._answer("nvmlInit")

    def nvmlShutdown(self) -> None:
        return None

    def nvmlDeviceGetCount(self) -> int:
        return int(self._answer("nvmlDeviceGetCount"))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return self._answer("nvmlDeviceGetHandleByIndex", index)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return str(self._device("nvmlDeviceGetUUID", handle))

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return str(self._device("nvmlDeviceGetName", handle))

    def nvmlDeviceGetPciInfo(self, handle: Any) -> PciInfo:
        return _typed(self._device("nvmlDeviceGetPciInfo", handle), PciInfo)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> MemoryInfo:
        return _typed(self._device("nvmlDeviceGetMemoryInfo", handle), MemoryInfo)

    def nvmlDeviceGetMaxClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(self._device("nvmlDeviceGetMaxClockInfo", handle, clock_type))

    def nvmlDeviceGetClockInfo(self, handle: Any, clock_type: int) -> int:
        return int(self._device("nvmlDeviceGetClockInfo", handle, clock_type))

    def nvmlDeviceGetMemoryBusWidth(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetMemoryBusWidth", handle))

    def nvmlDeviceGetMigMode(self, handle: Any) -> tuple[int, int]:
        mode = self._device("nvmlDeviceGetMigMode", handle)
        return int(mode[0]), int(mode[1])

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Utilization:
        return _typed(self._device("nvmlDeviceGetUtilizationRates", handle), Utilization)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetPowerUsage", handle))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetEnforcedPowerLimit", handle))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetCurrentClocksEventReasons", handle))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[int]:
        return [int(pid) for pid in self._device("nvmlDeviceGetComputeRunningProcesses", handle)]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetMaxMigDeviceCount", handle))

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any:
        return self._device("nvmlDeviceGetMigDeviceHandleByIndex", handle, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetGpuInstanceId", handle))

    def nvmlDeviceGetComputeInstanceId(self, handle: Any) -> int:
        return int(self._device("nvmlDeviceGetComputeInstanceId", handle))

    def nvmlGpmQueryDeviceSupport(self, handle: Any) -> bool:
        return bool(self._device("nvmlGpmQueryDeviceSupport", handle))

    def nvmlGpmSampleAlloc(self) -> Any:
        return _Sample()

    def nvmlGpmSampleGet(self, handle: Any, sample: Any) -> Any:
        if not isinstance(handle, _Handle) or not isinstance(sample, _Sample):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        self._answer("nvmlGpmSampleGet", handle.token)
        sample.gpu = handle.token
        return sample

    def nvmlGpmMetricsGet(
        self, sample1: Any, sample2: Any, metric_ids: Sequence[int]
    ) -> list[GpmMetricValue]:
        if not isinstance(sample1, _Sample) or not isinstance(sample2, _Sample):
            raise nvml_error(NvmlErrorCode.INVALID_ARGUMENT)
        values = self._answer("nvmlGpmMetricsGet", sample2.gpu, ",".join(map(str, metric_ids)))
        if not isinstance(values, list):
            raise RecordingError("nvml nvmlGpmMetricsGet: recorded answer is not a list")
        return [_typed(value, GpmMetricValue) for value in values]

    def nvmlGpmSampleFree(self, sample: Any) -> None:
        return None


def _discard_result(call: Any) -> Any:
    def run(*args: Any) -> None:
        call(*args)

    return run


def _typed(value: Any, cls: type[_T]) -> _T:
    if not isinstance(value, cls):
        raise RecordingError(f"recorded NVML answer {value!r} is not a {cls.__name__}")
    return value


def driver_facts(backend: object) -> dict[str, str]:
    """Driver and NVML library versions from a backend that offers them (the real one does)."""
    facts: dict[str, str] = {}
    for name, key in (
        ("nvmlSystemGetDriverVersion", "driver_version"),
        ("nvmlSystemGetNVMLVersion", "nvml_version"),
        ("nvmlSystemGetCudaDriverVersion", "cuda_driver_version"),
    ):
        call = getattr(backend, name, None)
        if call is None:
            continue
        try:
            facts[key] = str(call())
        except Exception as error:  # a fact for the header, never a reason to stop
            facts[key] = f"unavailable ({type(error).__name__})"
    return facts


__all__ = ["RecordingNvmlBackend", "ReplayNvmlBackend", "driver_facts"]
