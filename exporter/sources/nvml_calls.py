"""NVML calls under a deadline, for :class:`~rooftop.exporter.sources.nvml.NvmlSource`.

Every backend call for a GPU goes through :meth:`GpuCalls.get`, the one place NVML errors are
sorted (:func:`~rooftop.exporter.sources.nvml_api.classify_nvml_error`); each unit of work on
one GPU is a :class:`Job` run in a daemon thread (:func:`run_job`), so a hung driver call marks
only that GPU down. Also the unit conversions of raw NVML values.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from rooftop.classifiers.hardware import BYTES_PER_MIB
from rooftop.exporter.sources.nvml_api import (
    HERTZ_PER_MEGAHERTZ,
    PERCENT_PER_RATIO,
    ErrorAction,
    GpmMetric,
    NvmlBackend,
    NvmlErrorCode,
    classify_nvml_error,
)
from rooftop.exporter.telemetry import GpuIdentity

log = logging.getLogger("rooftop.exporter.sources.nvml")


class GpuDown(Exception):
    """Raised inside a per-GPU read when the GPU cannot be read at all."""


@dataclass
class Job:
    """One unit of work on one GPU (or the system, key -1) in its key's daemon thread."""

    started: float
    finished: threading.Event = field(default_factory=threading.Event)
    """Set once the work returned or raised (a job still unfinished is hung in NVML)."""
    current_call: str | None = None
    result: object = None
    exception: BaseException | None = None


@dataclass
class GpuState:
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


SYSTEM = -1


class GpuCalls:
    """Backend calls for one GPU in one job: the single place NVML errors are sorted."""

    def __init__(
        self,
        backend: NvmlBackend,
        job: Job,
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

        Raises :class:`GpuDown` when the error means the GPU cannot be read at all.
        ``absent_codes`` are codes that, for this call, just mean "nothing there" (e.g.
        ``NotFound`` for an empty MIG slot).
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
        raise GpuDown(f"{name}: {text} (NVML error {code})")


def run_job(job: Job, fn: Callable[[Job], object]) -> None:
    try:
        job.result = fn(job)
    except BaseException as error:  # handed to the caller, which decides
        job.exception = error
    finally:
        job.finished.set()


def mhz_to_hz(mhz: object) -> float | None:
    if mhz is None or not isinstance(mhz, int | float) or mhz <= 0:
        return None
    return float(mhz) * HERTZ_PER_MEGAHERTZ


def percent_to_ratio(percent: float) -> float | None:
    if not math.isfinite(percent) or percent < 0:
        return None
    return min(percent, PERCENT_PER_RATIO) / PERCENT_PER_RATIO


def convert_gpm_value(
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
