"""Which GPUs serve which engine.

Explicit configuration (GPU UUIDs or indexes per engine) always wins. Without it the mapping
is discovered: the process listening on the engine's TCP port and its descendants are matched
against NVML's running compute PIDs per GPU (``nvmlDeviceGetComputeRunningProcesses``). The
number of GPUs matched is the engine's parallel degree.

Discovery fails quietly in containers: NVML reports host-namespace PIDs, and the engine may
live in another PID or network namespace. Then the result says so in ``reason`` and leaves
the engine unmapped, so the operator knows to configure it.

:func:`match_engine_gpus` is pure (plain data in, :class:`EngineGpuMapping` out); the psutil
look-ups are in :class:`PsutilProcessTable`, injected into :func:`discover_engine_gpus`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import psutil

from rooftop.exporter.telemetry import GpuIdentity, GpuSourceResult

MappingMethod = Literal["config", "discovered", "unmapped"]


@dataclass(frozen=True)
class EngineGpuMapping:
    engine: str
    gpu_uuids: tuple[str, ...]
    """In GPU index order; empty when unmapped."""
    method: MappingMethod
    reason: str
    """One sentence: how the mapping was made, or why it could not be."""
    engine_pids: tuple[int, ...] = ()

    @property
    def tensor_parallel_degree(self) -> int | None:
        """GPUs serving this engine (tensor x pipeline parallel of one replica); None if unknown."""
        return len(self.gpu_uuids) or None


@dataclass(frozen=True)
class ListenerLookup:
    """Who listens on a TCP port, as far as this process can see."""

    pids: tuple[int, ...]
    note: str | None = None
    """Why ``pids`` is empty, when it is."""


def resolve_configured_gpus(
    engine: str, configured: Sequence[str | int], gpus: Sequence[GpuIdentity]
) -> tuple[str, ...]:
    """Configured entries (``"GPU-…"``/``"MIG-…"`` UUIDs, or indexes) as UUIDs in index order
    (UUIDs of GPUs not seen here keep their configured order, after the known ones).

    Raises ``ValueError`` naming the entry when it matches no known GPU, or when an index is
    given but no GPU list is known (UUIDs are accepted as given then).
    """
    by_index = {gpu.index: gpu.uuid for gpu in gpus}
    known = set(by_index.values())
    resolved: list[str] = []
    for entry in configured:
        text = str(entry).strip()
        if text.isdigit():
            if int(text) not in by_index:
                found = ", ".join(str(i) for i in sorted(by_index)) or "none"
                raise ValueError(
                    f"engine {engine!r}: configured GPU index {text} is not a GPU found here "
                    f"(indexes: {found})"
                )
            uuid = by_index[int(text)]
        elif text.startswith(("GPU-", "MIG-")):
            if gpus and text not in known:
                raise ValueError(
                    f"engine {engine!r}: configured GPU {text} is not among the GPUs found "
                    f"here: {', '.join(sorted(known))}"
                )
            uuid = text
        else:
            raise ValueError(
                f"engine {engine!r}: configured GPU {entry!r} is neither an index nor a "
                "GPU-/MIG- UUID (as `nvidia-smi -L` prints them)"
            )
        if uuid not in resolved:
            resolved.append(uuid)
    order = {gpu.uuid: gpu.index for gpu in gpus}
    return tuple(sorted(resolved, key=lambda u: order.get(u, 1 << 30)))


def match_engine_gpus(
    engine: str,
    *,
    gpus: Sequence[GpuIdentity],
    gpu_compute_pids: Mapping[str, Sequence[int]],
    engine_pids: Sequence[int] | None,
    configured: Sequence[str | int] | None = None,
    port: int | None = None,
    listener_note: str | None = None,
) -> EngineGpuMapping:
    """Map one engine to its GPUs from plain data.

    ``gpu_compute_pids``: GPU UUID -> NVML's compute PIDs on it. ``engine_pids``: the engine's
    process tree as found from its listening port, or None when no listener was found
    (``listener_note`` says why). ``configured`` wins whenever given and non-empty.
    """
    if configured:
        uuids = resolve_configured_gpus(engine, configured, gpus)
        return EngineGpuMapping(
            engine, uuids, "config", f"configured: {len(uuids)} GPU(s)", tuple(engine_pids or ())
        )
    where = f"port {port}" if port is not None else "its port"
    if engine_pids is None or not engine_pids:
        why = listener_note or "it may run in another PID or network namespace (container)"
        return EngineGpuMapping(
            engine,
            (),
            "unmapped",
            f"no process found listening on {where}: {why}; set this engine's GPUs in the config",
        )
    tree = set(engine_pids)
    order = sorted(gpus, key=lambda gpu: gpu.index)
    matched = tuple(
        gpu.uuid for gpu in order if tree.intersection(gpu_compute_pids.get(gpu.uuid, ()))
    )
    pids = tuple(sorted(tree))
    if matched:
        return EngineGpuMapping(
            engine,
            matched,
            "discovered",
            f"processes {_pid_list(pids)} listening on {where} (and children) hold compute "
            f"contexts on {len(matched)} GPU(s)",
            pids,
        )
    visible = sorted({pid for found in gpu_compute_pids.values() for pid in found})
    if not visible:
        reason = (
            "NVML lists no compute processes on any GPU (the engine has not initialised CUDA "
            "yet, or no permission to list processes)"
        )
    else:
        reason = (
            f"none of NVML's compute PIDs ({_pid_list(tuple(visible))}) is in the engine's "
            f"process tree ({_pid_list(pids)}): NVML reports host-namespace PIDs, which do not "
            "match inside a container without hostPID"
        )
    return EngineGpuMapping(
        engine, (), "unmapped", f"{reason}; set this engine's GPUs in the config", pids
    )


def _pid_list(pids: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(str(p) for p in pids[:limit])
    return shown + (f" and {len(pids) - limit} more" if len(pids) > limit else "")


class ProcessTable(Protocol):
    def listening_pids(self, port: int) -> ListenerLookup: ...
    def tree_pids(self, pid: int) -> list[int]: ...


class PsutilProcessTable:
    """Listening sockets and process trees as psutil sees them from this PID namespace."""

    def listening_pids(self, port: int) -> ListenerLookup:
        pids: set[int] = set()
        hidden = False
        try:
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    if conn.pid:
                        pids.add(conn.pid)
                    else:
                        hidden = True
        except psutil.AccessDenied:
            pids |= self._scan_processes(port)
        if pids:
            return ListenerLookup(tuple(sorted(pids)))
        if hidden:
            return ListenerLookup(
                (),
                f"a socket listens on port {port} but its process is not visible from here "
                "(another user, or another PID namespace)",
            )
        return ListenerLookup(
            (),
            f"nothing listens on TCP port {port} in this network namespace (engine in a "
            "container or on another host?)",
        )

    @staticmethod
    def _scan_processes(port: int) -> set[int]:
        pids: set[int] = set()
        for process in psutil.process_iter():
            try:
                for conn in process.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                        pids.add(process.pid)
            except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
        return pids

    def tree_pids(self, pid: int) -> list[int]:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return [pid]
        return [pid, *(child.pid for child in children)]


def discover_engine_gpus(
    engine: str,
    port: int | None,
    *,
    gpus: Sequence[GpuIdentity],
    gpu_compute_pids: Mapping[str, Sequence[int]],
    configured: Sequence[str | int] | None = None,
    table: ProcessTable | None = None,
) -> EngineGpuMapping:
    """Config if given; else the engine's listening process tree against NVML's compute PIDs."""
    if configured:
        return match_engine_gpus(
            engine,
            gpus=gpus,
            gpu_compute_pids=gpu_compute_pids,
            engine_pids=None,
            configured=configured,
            port=port,
        )
    if port is None:
        return match_engine_gpus(
            engine,
            gpus=gpus,
            gpu_compute_pids=gpu_compute_pids,
            engine_pids=None,
            listener_note="the engine URL has no port to look for",
        )
    table = table or PsutilProcessTable()
    lookup = table.listening_pids(port)
    tree: set[int] = set()
    for pid in lookup.pids:
        tree.update(table.tree_pids(pid))
    return match_engine_gpus(
        engine,
        gpus=gpus,
        gpu_compute_pids=gpu_compute_pids,
        engine_pids=sorted(tree) if tree else None,
        port=port,
        listener_note=lookup.note,
    )


class PortGpuLocator:
    """The sampler's locator: an engine's GPUs from its listening port, retried at most every
    ``retry_seconds`` while unmapped (listing sockets is not free)."""

    def __init__(
        self,
        table: ProcessTable | None = None,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table or PsutilProcessTable()
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._last_try: dict[str, tuple[float, tuple[int | None, tuple[str, ...], str]]] = {}

    def locate(
        self, engine: str, url: str, gpus: GpuSourceResult
    ) -> tuple[int | None, tuple[str, ...], str]:
        """``(pid, gpu uuids, how)`` for the engine named ``engine`` serving at ``url``;
        ``how`` is ``discovered`` or the reason nothing was."""
        if not gpus.identities:
            return None, (), "no GPU visible to rooftop (no NVML, no dcgm-exporter)"
        now = self._clock()
        previous = self._last_try.get(url)
        if previous is not None and now - previous[0] < self._retry_seconds:
            return previous[1]
        compute_pids = {reading.uuid: reading.compute_pids for reading in gpus.readings}
        mapping = discover_engine_gpus(
            engine,
            urlsplit(url).port,
            gpus=gpus.identities,
            gpu_compute_pids=compute_pids,
            table=self._table,
        )
        pid = mapping.engine_pids[0] if mapping.engine_pids else None
        how = "discovered" if mapping.method == "discovered" else mapping.reason
        result = (pid, mapping.gpu_uuids, how)
        self._last_try[url] = (now, result)
        return result
