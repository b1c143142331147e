"""Host readings at their boundaries: the engine process tree's CPU times (psutil, through
:class:`~rooftop.exporter.sources.host.ProcessProvider`) and the listening-socket lookups that
map an engine to its process (:class:`~rooftop.exporter.sources.gpu_mapping.ProcessTable`).

Outcomes: ``{"v": value}``, ``{"gone": message}`` (the process no longer exists) or
``{"denied": message}`` (no permission), replayed as the same exception classes. CPU times are
``[process_seconds, [[thread_id, seconds], ...]]`` (JSON keys cannot be integers).
"""

from __future__ import annotations

from typing import Any

from rooftop.exporter.recording.format import RecordingError
from rooftop.exporter.recording.tape import Player, Recorder
from rooftop.exporter.sources.gpu_mapping import ListenerLookup, ProcessTable
from rooftop.exporter.sources.host import (
    EngineProcessGoneError,
    HostSourceError,
    ProcessProvider,
)
from rooftop.exporter.telemetry import ProcessCpu

CHANNEL = "host"


def _failure(error: HostSourceError) -> dict[str, str]:
    key = "gone" if isinstance(error, EngineProcessGoneError) else "denied"
    return {key: str(error)}


def _raise(outcome: dict[str, Any]) -> None:
    if "gone" in outcome:
        raise EngineProcessGoneError(str(outcome["gone"]))
    if "denied" in outcome:
        raise HostSourceError(str(outcome["denied"]))


class RecordingProcessProvider:
    """Forwards to ``inner`` (psutil) and records each answer."""

    def __init__(self, inner: ProcessProvider, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def tree_pids(self, root_pid: int) -> list[int]:
        cycle, key = self._recorder.current(), f"tree_pids|{root_pid}"
        try:
            pids = self._inner.tree_pids(root_pid)
        except HostSourceError as error:
            self._recorder.add(cycle, CHANNEL, key, _failure(error))
            raise
        self._recorder.add(cycle, CHANNEL, key, {"v": list(pids)})
        return pids

    def cpu_seconds(self, pid: int) -> tuple[float, dict[int, float]] | None:
        cycle, key = self._recorder.current(), f"cpu_seconds|{pid}"
        try:
            times = self._inner.cpu_seconds(pid)
        except HostSourceError as error:
            self._recorder.add(cycle, CHANNEL, key, _failure(error))
            raise
        value = None if times is None else [times[0], [[t, s] for t, s in times[1].items()]]
        self._recorder.add(cycle, CHANNEL, key, {"v": value})
        return times


class ReplayProcessProvider:
    """The process provider answered from a recording; a gap is a vanished process."""

    def __init__(self, player: Player) -> None:
        self._player = player

    def tree_pids(self, root_pid: int) -> list[int]:
        outcome = _take(self._player, f"tree_pids|{root_pid}")
        if outcome is None:
            raise EngineProcessGoneError(f"engine process {root_pid} was not read in this cycle")
        _raise(outcome)
        value = outcome.get("v")
        if not isinstance(value, list) or not all(isinstance(p, int) for p in value):
            raise RecordingError(f"host tree_pids|{root_pid}: recorded value is not a pid list")
        return list(value)

    def cpu_seconds(self, pid: int) -> tuple[float, dict[int, float]] | None:
        outcome = _take(self._player, f"cpu_seconds|{pid}")
        if outcome is None:
            return None
        _raise(outcome)
        value = outcome.get("v")
        if value is None:
            return None
        try:
            seconds, threads = value
            return float(seconds), {int(t): float(s) for t, s in threads}
        except (TypeError, ValueError):
            raise RecordingError(f"host cpu_seconds|{pid}: malformed value {value!r}") from None


class RecordingProcessTable:
    """Forwards listening-socket and process-tree lookups to ``inner`` and records them."""

    def __init__(self, inner: ProcessTable, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def listening_pids(self, port: int) -> ListenerLookup:
        cycle = self._recorder.current()
        lookup = self._inner.listening_pids(port)
        self._recorder.add(
            cycle,
            CHANNEL,
            f"listening_pids|{port}",
            {"v": {"pids": list(lookup.pids), "note": lookup.note}},
        )
        return lookup

    def tree_pids(self, pid: int) -> list[int]:
        cycle = self._recorder.current()
        pids = self._inner.tree_pids(pid)
        self._recorder.add(cycle, CHANNEL, f"table_tree_pids|{pid}", {"v": list(pids)})
        return pids


class ReplayProcessTable:
    """Listening-socket lookups answered from a recording."""

    def __init__(self, player: Player) -> None:
        self._player = player

    def listening_pids(self, port: int) -> ListenerLookup:
        outcome = _take(self._player, f"listening_pids|{port}")
        if outcome is None:
            return ListenerLookup(
                (), f"port {port} was not looked up in this cycle of the recording"
            )
        value = outcome.get("v")
        if not isinstance(value, dict):
            raise RecordingError(f"host listening_pids|{port}: malformed value {value!r}")
        note = value.get("note")
        return ListenerLookup(
            tuple(int(p) for p in value.get("pids", [])), str(note) if note is not None else None
        )

    def tree_pids(self, pid: int) -> list[int]:
        outcome = _take(self._player, f"table_tree_pids|{pid}")
        if outcome is None:
            return [pid]
        value = outcome.get("v")
        if not isinstance(value, list):
            raise RecordingError(f"host table_tree_pids|{pid}: malformed value {value!r}")
        return [int(p) for p in value]


def _take(player: Player, key: str) -> dict[str, Any] | None:
    outcome = player.take(CHANNEL, key)
    if outcome is not None and not isinstance(outcome, dict):
        raise RecordingError(f"host {key}: recorded outcome {outcome!r} is not an object")
    return outcome


class RecordingProcessStats:
    """For a stats provider that is not psutil (the demo node's scripted engines): records
    each engine's figures as returned."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None:
        cycle = self._recorder.current()
        figures = self._inner.stats(engine, pid)
        value = None if figures is None else [figures.cpu_cores, figures.busiest_thread_ratio]
        self._recorder.add(cycle, CHANNEL, f"stats|{engine}|{pid}", {"v": value})
        result: ProcessCpu | None = figures
        return result


class ReplayProcessStats:
    """Engine process figures answered from a recording made by :class:`RecordingProcessStats`."""

    def __init__(self, player: Player) -> None:
        self._player = player

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None:
        outcome = _take(self._player, f"stats|{engine}|{pid}")
        value = outcome.get("v") if outcome is not None else None
        if value is None:
            return None
        try:
            cores, busiest = value
            return ProcessCpu(float(cores), float(busiest))
        except (TypeError, ValueError):
            raise RecordingError(f"host stats|{engine}: malformed value {value!r}") from None


__all__ = [
    "RecordingProcessProvider",
    "RecordingProcessStats",
    "RecordingProcessTable",
    "ReplayProcessProvider",
    "ReplayProcessStats",
    "ReplayProcessTable",
]
