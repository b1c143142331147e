"""CPU use of an engine's process tree, from psutil: what node_exporter cannot say.

node_exporter already exports host CPU, memory, disk and network; what it cannot tell is
whether *the engine's* scheduler thread is saturated. A decode loop that launches kernels from
one Python thread is latency-bound once that thread sits at one full core, however idle the
host looks. So this module measures one process tree (root pid and its children):

* ``cpu_cores_used``: CPU seconds (user + system) the tree used per wall second, summed over its
  processes; 2.0 = two cores' worth;
* ``busiest_thread_ratio``: the same for the single busiest thread; 1.0 = one core saturated.

Both come from two reads a window apart (:class:`EngineProcessMonitor` keeps the previous one).
The psutil calls sit behind :class:`ProcessProvider` so tests can inject a fake tree and clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import psutil

from rooftop.exporter.sources.base import SourceKind
from rooftop.exporter.telemetry import ProcessCpu


class HostSourceError(RuntimeError):
    """The engine process could not be measured; the message says why."""


class EngineProcessGoneError(HostSourceError):
    """The engine's root process no longer exists (restarted, crashed, wrong pid)."""


@dataclass(frozen=True)
class TreeCpuTimes:
    """One read of a process tree's CPU times, seconds since each process/thread started."""

    root_pid: int
    taken_at: float
    """Monotonic seconds."""
    process_seconds: Mapping[int, float]
    """pid -> user + system CPU seconds (own threads only, not waited-for children)."""
    thread_seconds: Mapping[tuple[int, int], float]
    """(pid, thread id) -> user + system CPU seconds."""


@dataclass(frozen=True)
class EngineProcessStats:
    """CPU use of an engine's process tree over one window."""

    root_pid: int
    pids: tuple[int, ...]
    cpu_cores_used: float
    """CPU seconds per wall second over the window, all processes of the tree."""
    busiest_thread_ratio: float
    """CPU seconds per wall second of the busiest thread; 1.0 = one core saturated."""
    busiest_thread_id: int | None
    threads: int
    window_seconds: float


class ProcessProvider(Protocol):
    """The process facts the monitor needs; :class:`PsutilProcessProvider` in production."""

    def tree_pids(self, root_pid: int) -> list[int]:
        """``root_pid`` and all its descendants; raises :class:`EngineProcessGoneError`."""
        ...

    def cpu_seconds(self, pid: int) -> tuple[float, dict[int, float]] | None:
        """(process user+system seconds, {thread id: user+system seconds}); None if gone."""
        ...


class PsutilProcessProvider:
    def tree_pids(self, root_pid: int) -> list[int]:
        try:
            root = psutil.Process(root_pid)
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            raise EngineProcessGoneError(f"engine process {root_pid} no longer exists") from None
        except psutil.AccessDenied:
            raise HostSourceError(
                f"no permission to read engine process {root_pid} (run as the same user, or "
                "share the PID namespace with the engine)"
            ) from None
        return [root_pid, *(child.pid for child in children)]

    def cpu_seconds(self, pid: int) -> tuple[float, dict[int, float]] | None:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                threads = process.threads()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        except psutil.AccessDenied:
            raise HostSourceError(f"no permission to read CPU times of process {pid}") from None
        return (
            times.user + times.system,
            {thread.id: thread.user_time + thread.system_time for thread in threads},
        )


def read_tree_cpu_times(
    root_pid: int, provider: ProcessProvider, clock: Callable[[], float] = time.monotonic
) -> TreeCpuTimes:
    """One read of the tree's CPU times. Children that exit mid-read are left out."""
    pids = provider.tree_pids(root_pid)
    taken_at = clock()
    process_seconds: dict[int, float] = {}
    thread_seconds: dict[tuple[int, int], float] = {}
    for pid in pids:
        times = provider.cpu_seconds(pid)
        if times is None:
            if pid == root_pid:
                raise EngineProcessGoneError(f"engine process {root_pid} no longer exists")
            continue
        process_seconds[pid], threads = times
        for tid, seconds in threads.items():
            thread_seconds[(pid, tid)] = seconds
    return TreeCpuTimes(root_pid, taken_at, process_seconds, thread_seconds)


def engine_process_stats(before: TreeCpuTimes, after: TreeCpuTimes) -> EngineProcessStats:
    """CPU use between two reads of the same tree.

    ``cpu_cores_used = Σ_pid (cpu_after - cpu_before) / window``; a process or thread that
    appeared during the window counts all its CPU time (it started inside the window); one that
    vanished counts nothing (its last seconds are unknowable). Negative deltas (a pid reused by
    a new process) count as the new process's whole time.
    """
    if after.root_pid != before.root_pid:
        raise ValueError(f"reads of different trees: {before.root_pid} and {after.root_pid}")
    window = after.taken_at - before.taken_at
    if window <= 0:
        raise ValueError(f"the second read must be later than the first (window {window} s)")
    cores = sum(
        _delta(before.process_seconds.get(pid), seconds)
        for pid, seconds in after.process_seconds.items()
    )
    busiest_id: int | None = None
    busiest = 0.0
    for key, seconds in after.thread_seconds.items():
        used = _delta(before.thread_seconds.get(key), seconds)
        if busiest_id is None or used > busiest:
            busiest_id, busiest = key[1], used
    return EngineProcessStats(
        root_pid=after.root_pid,
        pids=tuple(sorted(after.process_seconds)),
        cpu_cores_used=cores / window,
        busiest_thread_ratio=busiest / window,
        busiest_thread_id=busiest_id,
        threads=len(after.thread_seconds),
        window_seconds=window,
    )


def _delta(before: float | None, after: float) -> float:
    if before is None or after < before:
        return after
    return after - before


class EngineProcessMonitor:
    """Measures one engine process tree each time :meth:`poll` is called: a
    :class:`~rooftop.exporter.sources.base.Source` of kind ``host``.

    The first call only primes and returns None; each later call returns the stats since the
    previous call. Raises :class:`EngineProcessGoneError` when the root process is gone (then
    primes afresh on the next call, so a restarted engine given a new pid via
    :meth:`retarget` is picked up).
    """

    kind: SourceKind = "host"

    def __init__(
        self,
        root_pid: int,
        provider: ProcessProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "host",
    ) -> None:
        if root_pid <= 0:
            raise ValueError(f"root_pid must be a positive process id, got {root_pid}")
        self.name = name
        self.root_pid = root_pid
        self._provider: ProcessProvider = provider or PsutilProcessProvider()
        self._clock = clock
        self._previous: TreeCpuTimes | None = None

    def retarget(self, root_pid: int) -> None:
        if root_pid != self.root_pid:
            self.root_pid = root_pid
            self._previous = None

    def poll(self) -> EngineProcessStats | None:
        try:
            current = read_tree_cpu_times(self.root_pid, self._provider, self._clock)
        except HostSourceError:
            self._previous = None
            raise
        previous, self._previous = self._previous, current
        if previous is None or current.taken_at <= previous.taken_at:
            return None
        return engine_process_stats(previous, current)


class EngineCpuStats:
    """The sampler's process-stats provider: one :class:`EngineProcessMonitor` per engine,
    retargeted when the engine's pid changes; a vanished process gives no figures."""

    def __init__(
        self, provider: ProcessProvider | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._provider = provider
        self._clock = clock
        self._monitors: dict[str, EngineProcessMonitor] = {}

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None:
        if pid is None:
            self._monitors.pop(engine, None)
            return None
        monitor = self._monitors.get(engine)
        if monitor is None:
            monitor = self._monitors[engine] = EngineProcessMonitor(
                pid, self._provider, self._clock, name=f"host {engine}"
            )
        monitor.retarget(pid)
        try:
            sample = monitor.poll()
        except HostSourceError:
            return None
        if sample is None:
            return None
        return ProcessCpu(sample.cpu_cores_used, sample.busiest_thread_ratio)
