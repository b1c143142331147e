"""GPU identities and per-cycle telemetry through NVML (``nvidia-ml-py``).

This module and :mod:`~rooftop.exporter.sources.nvml_api` (NVML's error codes, types,
backend protocol and tables) are the only ones that import :mod:`pynvml`. Everything it hands out is
in base units (hertz, watts, bytes, bytes per second, ratios 0-1) with ``None`` for anything
that could not be read; never NaN, never a sentinel number.

Two seams keep it testable without a GPU:

* the *backend*: an object with the pynvml function names used here. :class:`RealNvmlBackend`
  is a thin layer over pynvml that turns ctypes structs into small frozen types;
  ``exporter.demo.nvml_fake.FakeNvmlBackend`` implements the same methods and raises the
  same pynvml exception classes, built through :func:`nvml_error`;
* the *clock* used for timestamps and GPM windows.

Every backend call for a GPU goes through one function,
:meth:`~rooftop.exporter.sources.nvml_calls.GpuCalls.get`, which sorts
NVML errors with :func:`classify_nvml_error`: ``NotSupported``/``FunctionNotFound`` omit the
field, ``NoPermission`` and other "no data now" codes omit it with a note, and ``GpuIsLost``,
``Unknown`` and driver errors mark that GPU down while the other GPUs go on. Per-GPU reads run
in daemon worker threads under a deadline, so a GPU whose driver call hangs is reported down
without stalling the other GPUs or the caller.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pynvml

from rooftop.classifiers.verdict import Tier
from rooftop.exporter.sources.base import SourceKind
from rooftop.exporter.sources.nvml_api import (
    CLOCK_EVENT_REASONS,
    CLOCK_MEM,
    CLOCK_SM,
    ECC_CORRECTED,
    ECC_UNCORRECTED,
    ECC_VOLATILE,
    GPM_ACTIVITY_FIELDS,
    GPM_METRICS,
    GPM_MIN_WINDOW_SECONDS,
    MAX_XID_EVENTS_PER_CYCLE,
    MIG_MODE_ENABLED,
    MILLIJOULES_PER_JOULE,
    MILLIWATTS_PER_WATT,
    NVML_SUCCESS,
    TEMPERATURE_GPU,
    XID_EVENT_TYPE,
    ComputeProcess,
    ErrorAction,
    GpmMetric,
    GpmMetricValue,
    MemoryInfo,
    NvmlBackend,
    NvmlErrorCode,
    NvmlReadError,
    NvmlUnavailableError,
    PciInfo,
    RealNvmlBackend,
    Utilization,
    classify_nvml_error,
    clock_event_reason_names,
    init_failure_message,
    nvml_error,
    nvml_error_code,
)
from rooftop.exporter.sources.nvml_calls import (
    SYSTEM,
    GpuCalls,
    GpuDown,
    GpuState,
    Job,
    convert_gpm_value,
    mhz_to_hz,
    percent_to_ratio,
    run_job,
)
from rooftop.exporter.telemetry import (
    GpuIdentity,
    GpuReading,
    GpuSourceResult,
    MigInstance,
)
from rooftop.exporter.worker_threads import KeyedWorkers

log = logging.getLogger(__name__)


class NvmlSource:
    """GPUs through NVML: :meth:`start` once, then :meth:`poll` once per sampler cycle.

    ``call_deadline_seconds`` bounds each cycle's per-GPU reads (they run concurrently); a GPU
    still inside a driver call after it is reported down, and is not read again until that call
    returns. ``gpm_max_window_seconds``: a GPM window longer than this (e.g. after a stall)
    reseeds instead of reporting a stale average.
    """

    name = "nvml"
    kind: SourceKind = "gpu"

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
        self._states: dict[int, GpuState] = {}
        self._device_count = 0
        self._undiscovered: dict[int, str] = {}
        self._jobs: dict[int, Job] = {}
        self._threads = KeyedWorkers()
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
        outcome = self._run_jobs({SYSTEM: lambda job: backend.nvmlInit()}, self._init_deadline)
        result = outcome[SYSTEM]
        if isinstance(result, Job) and result.exception is not None:
            raise NvmlUnavailableError(init_failure_message(result.exception)) from (
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
            self._forget(state)
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
            {SYSTEM: lambda job: backend.nvmlDeviceGetCount()}, self._deadline
        )[SYSTEM]
        count = self._system_result(count_outcome, "nvmlDeviceGetCount")
        if not isinstance(count, int):
            raise NvmlUnavailableError(f"NVML could not count GPUs: {count}")
        for state in self._states.values():
            self._forget(state)
        self._states = {}
        self._undiscovered = {}
        self._device_count = count
        self._discover_indices(range(self._device_count), notes=[])
        return self.identities

    def _discover_indices(self, indices: Iterable[int], notes: list[str]) -> None:
        backend = self._require_backend()
        work: dict[int, Callable[[Job], object]] = {}
        for index in indices:
            work[index] = self._discovery_work(backend, index, notes)
        for index, outcome in self._run_jobs(work, self._deadline).items():
            if isinstance(outcome, str):
                self._undiscovered[index] = outcome
            elif outcome.exception is not None:
                self._undiscovered[index] = str(outcome.exception)
                if not isinstance(outcome.exception, GpuDown):
                    raise NvmlReadError(
                        f"reading GPU {index} failed: {outcome.exception!r}"
                    ) from outcome.exception
            elif isinstance(outcome.result, GpuState):
                self._states[index] = outcome.result
                self._undiscovered.pop(index, None)
            else:
                self._undiscovered[index] = str(outcome.result)

    def _discovery_work(
        self, backend: NvmlBackend, index: int, notes: list[str]
    ) -> Callable[[Job], object]:
        def work(job: Job) -> object:
            calls = GpuCalls(backend, job, f"gpu {index}", notes, self._warned_functions)
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
                max_sm_clock_hz=mhz_to_hz(max_sm),
                max_memory_clock_hz=mhz_to_hz(max_mem),
                # Unified-memory parts (GB10) report a bus width of 0.
                memory_bus_width_bits=int(bus_width) if bus_width else None,
                mig_mode_enabled=(mig_mode[0] == MIG_MODE_ENABLED) if mig_mode else None,
            )
            return GpuState(
                identity=identity, handle=handle, gpm_supported=bool(gpm), xid_events=xid_events
            )

        return work

    # -- reading --

    def poll(self) -> GpuSourceResult:
        """One cycle: every known GPU read concurrently, each within the deadline."""
        backend = self._require_backend()
        notes: list[str] = []
        now = self._clock()
        if self._needs_reinit:
            reinit = self._run_jobs({SYSTEM: lambda job: backend.nvmlInit()}, self._deadline)
            problem = self._system_result(reinit[SYSTEM], "nvmlInit")
            if isinstance(problem, str):
                return self._all_down(f"NVML re-initialisation failed: {problem}", now)
            self._needs_reinit = False
            self._device_count = -1  # force rediscovery below
        count_outcome = self._run_jobs(
            {SYSTEM: lambda job: backend.nvmlDeviceGetCount()}, self._deadline
        )[SYSTEM]
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
                self._forget(state)
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
        self, backend: NvmlBackend, state: GpuState, notes: list[str]
    ) -> Callable[[Job], object]:
        def work(job: Job) -> object:
            identity = state.identity
            local_notes: list[str] = []
            calls = GpuCalls(
                backend,
                job,
                f"gpu {identity.index} ({identity.uuid})",
                local_notes,
                self._warned_functions,
            )
            now = self._clock()
            try:
                reading = self._read_gpu(state, calls, now, local_notes)
            except GpuDown as down:
                self._drop_gpm(state)
                reading = self._down(state, str(down), now)
            notes.extend(local_notes)
            return reading

        return work

    def _read_gpu(
        self, state: GpuState, calls: GpuCalls, now: float, notes: list[str]
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

        tier: Tier = "none"
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
            kernel_busy_ratio=percent_to_ratio(utilization.gpu_percent) if utilization else None,
            memory_controller_busy_ratio=(
                percent_to_ratio(utilization.memory_percent) if utilization else None
            ),
            sm_clock_hz=mhz_to_hz(sm_clock),
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
        self, state: GpuState, calls: GpuCalls, now: float, notes: list[str]
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
        values: Sequence[GpmMetricValue], calls: GpuCalls, notes: list[str], label: str
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
                except GpuDown:
                    # The sample as a whole succeeded; one metric's code does not down the GPU.
                    notes.append(
                        f"{label}: GPM metric {metric.metric_id} returned NVML error "
                        f"{value.nvml_return} (omitted)"
                    )
            elif math.isfinite(value.value):
                converted = convert_gpm_value(metric, value.value, notes, label)
            out[metric.reading_field] = converted
        return out

    def _read_mig(self, state: GpuState, calls: GpuCalls) -> tuple[MigInstance, ...]:
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
        self, work: Mapping[int, Callable[[Job], object]], deadline_seconds: float
    ) -> dict[int, Job | str]:
        """Run each job in its key's daemon thread (kept between cycles:
        :mod:`~rooftop.exporter.worker_threads`); a job past the deadline comes back as a
        reason. A key whose previous job is still running (hung in the driver) is not given
        another.
        """
        outcomes: dict[int, Job | str] = {}
        running: dict[int, Job] = {}
        for key, fn in work.items():
            previous = self._jobs.get(key)
            if previous is not None and not previous.finished.is_set():
                outcomes[key] = (
                    f"still hung in {previous.current_call or 'an NVML call'} "
                    f"for {time.monotonic() - previous.started:.1f} s"
                )
                continue
            job = Job(started=time.monotonic())
            self._jobs[key] = job
            running[key] = job
            self._threads.run(key, f"nvml-{key}", functools.partial(run_job, job, fn))
        end = time.monotonic() + deadline_seconds
        for key, job in running.items():
            if job.finished.wait(max(0.0, end - time.monotonic())):
                outcomes[key] = job
            else:
                outcomes[key] = (
                    f"no answer within {deadline_seconds:g} s "
                    f"(hung in {job.current_call or 'an NVML call'})"
                )
        return outcomes

    @staticmethod
    def _system_result(outcome: Job | str, call: str) -> object:
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
    def _down(state: GpuState, reason: str, now: float) -> GpuReading:
        return GpuReading(
            uuid=state.identity.uuid,
            index=state.identity.index,
            up=False,
            tier="none",
            timestamp=now,
            mig_supported=state.identity.mig_mode_enabled is not None,
            error=reason,
        )

    def _drain_xid_events(self, state: GpuState, calls: GpuCalls) -> None:
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

    def _forget(self, state: GpuState) -> None:
        """A GPU rediscovered or the source closed: free its GPM sample and event set."""
        self._drop_gpm(state)
        if state.xid_events is not None:
            self._free_events(state.xid_events)
            state.xid_events = None

    def _drop_gpm(self, state: GpuState) -> None:
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
            raise RuntimeError("NvmlSource.start() must be called before discover() or poll()")
        return self._backend


__all__ = [
    "CLOCK_EVENT_REASONS",
    "CLOCK_MEM",
    "CLOCK_SM",
    "ECC_UNCORRECTED",
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
