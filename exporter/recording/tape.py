"""The per-cycle tape: :class:`Recorder` collects what the boundaries answered, :class:`Player`
hands the answers back in the same order.

Every answer belongs to the cycle in which its call *started* (a call that outlives its cycle
is still that cycle's answer). An answer that arrives after its cycle was written goes into the
next record written, under ``late`` with its cycle's number, and replay hands it back in its
own cycle; only one that arrives after the recording was closed is lost (counted in
``late_events``; its call replays as a gap, the boundary's "no answer"). A key names one
sequence of calls that happen in order (one GPU's calls of one NVML function, one URL's
fetches, one thread's clock reads), so concurrent threads replay deterministically.

Whether an engine's poll had answered when a cycle stopped waiting for it is decided by real
time, so it is recorded too (:data:`POLL_CHANNEL`): a replay treats the replayed poll, which
answers at once, as the recorded cycle found it.

Clocks are tapes too: each read of a recorded clock is kept, and replay returns the same
values in the same order per (stream, thread). A replay that reads a clock more often than the
recording did gets the last value again (time stands still until the next recorded value), so
a rooftop whose cycle reads the clock once more still replays.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from rooftop.exporter.recording.codec import TextDeltas
from rooftop.exporter.recording.format import Recording, RecordingError, RecordingWriter

ClockKind = Literal["monotonic", "wall"]
HTTP_CHANNEL = "http"
CLOCK_CHANNEL = "clock"
POLL_CHANNEL = "engine-poll"
"""Whether each engine's poll had answered when the cycle asked (``engine@submit`` and
``engine@collect``): real time decided it, so a replay answers it as recorded."""
REPLAY_ANSWER_SECONDS = 30.0
"""How long a replay waits for a replayed poll (it answers from the tape at once)."""


@dataclass
class _Cycle:
    number: int | None
    """None for start-up (the ``setup`` record)."""
    events: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    anchors: dict[str, float] = field(default_factory=dict)
    closed: bool = False


Events = dict[str, dict[str, list[Any]]]


def _clock_key(stream: str, per_thread: bool) -> str:
    return f"{stream}@{threading.current_thread().name}" if per_thread else stream


class Recorder:
    """Collects each cycle's answers and writes the cycle when it ends."""

    def __init__(
        self,
        writer: RecordingWriter,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._writer = writer
        self._lock = threading.Lock()
        self._current = _Cycle(None, anchors={"monotonic": monotonic(), "wall": wall()})
        self._deltas = TextDeltas()
        self._cycles = 0
        self._late: dict[int, Events] = {}
        """Answers of written cycles, by cycle number, for the next record."""
        self._closed = False
        self._call = threading.local()
        self.late_events = 0
        """Answers that came in after the recording was closed: lost."""

    def current(self) -> _Cycle:
        """The cycle a call starting now belongs to (pass it back to :meth:`add`)."""
        return self._current

    def call_started(self) -> _Cycle:
        """:meth:`current`, remembered as this thread's call: a ``call_clock`` read after it in
        this thread belongs to the same cycle (an engine's answer time, read after its fetch)."""
        self._call.cycle = cycle = self._current
        return cycle

    def add(self, cycle: _Cycle, channel: str, key: str, outcome: Any) -> None:
        with self._lock:
            if not cycle.closed:
                events = cycle.events
            elif cycle.number is not None and not self._closed:
                events = self._late.setdefault(cycle.number, {})
            else:
                self.late_events += 1
                return
            events.setdefault(channel, {}).setdefault(key, []).append(outcome)

    def clock(
        self,
        stream: str,
        source: Callable[[], float],
        *,
        per_thread: bool = False,
        call_clock: bool = False,
    ) -> Callable[[], float]:
        """``source``, with every value it returns recorded under ``stream``; with
        ``call_clock``, in the cycle of this thread's last :meth:`call_started`."""

        def read() -> float:
            cycle = self._current
            if call_clock:
                cycle = getattr(self._call, "cycle", None) or cycle
            value = source()
            self.add(cycle, CLOCK_CHANNEL, _clock_key(stream, per_thread), value)
            return value

        return read

    def poll_done(self, engine: str, where: str, future: Future[Any]) -> bool:
        """:data:`~rooftop.exporter.pipeline.engines.PollDone`: ``future.done()``, recorded."""
        cycle = self._current
        answered = future.done()
        self.add(cycle, POLL_CHANNEL, f"{engine}@{where}", answered)
        return answered

    def write_header(self, header: Mapping[str, Any]) -> None:
        self._writer.write({"kind": "header", **header})

    def begin_cycle(self, monotonic: float, wall: float) -> None:
        """Close the previous cycle (or start-up) and open cycle ``n``; anchors are the cycle's
        start on both clocks, used when a replay reads a clock the recording did not."""
        with self._lock:
            previous = self._current
            self._current = _Cycle(self._cycles, anchors={"monotonic": monotonic, "wall": wall})
            self._cycles += 1
        if previous.number is None:
            self._write(previous, {"kind": "setup"})

    def end_cycle(self, published: Mapping[str, Any]) -> None:
        cycle = self._current
        self._write(cycle, {"kind": "cycle", "n": cycle.number, "published": dict(published)})

    @property
    def setup_anchors(self) -> dict[str, float]:
        """Start-up's clock anchors (the header carries them as ``at``)."""
        return dict(self._current.anchors) if self._current.number is None else {}

    def close(self) -> None:
        if self._current.number is None and not self._current.closed:
            self._write(self._current, {"kind": "setup"})
        with self._lock:
            self._closed = True
            self.late_events += sum(
                len(outcomes)
                for events in self._late.values()
                for keys in events.values()
                for outcomes in keys.values()
            )
            self._late = {}
        self._writer.write({"kind": "end", "cycles": self._cycles, "late_events": self.late_events})
        self._writer.close()

    def _write(self, cycle: _Cycle, record: dict[str, Any]) -> None:
        with self._lock:
            cycle.closed = True
            events = {channel: dict(keys) for channel, keys in cycle.events.items()}
            late, self._late = self._late, {}
        record["events"] = self._encoded(events)
        if late:
            record["late"] = {str(number): self._encoded(e) for number, e in sorted(late.items())}
        if cycle.anchors:
            record["at"] = cycle.anchors
        self._writer.write(record)

    def _encoded(self, events: Events) -> Events:
        for key, outcomes in events.get(HTTP_CHANNEL, {}).items():
            events[HTTP_CHANNEL][key] = [
                self._deltas.encode(key, o["text"]) if "text" in o else o for o in outcomes
            ]
        return events


class Player:
    """Serves a recording's answers cycle by cycle; :meth:`enter` selects the cycle."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        deltas = TextDeltas()
        self._setup = self._decoded(recording.setup, deltas, "setup")
        self._cycles: list[Events] = []
        for i, cycle in enumerate(recording.cycles):  # in file order: text deltas chain so
            self._cycles.append(self._decoded(cycle.get("events", {}), deltas, f"cycle {i}"))
            late = cycle.get("late") or {}
            for number, events in late.items() if isinstance(late, dict) else ():
                answers = self._decoded(events, deltas, f"cycle {i} (late answers)")
                if not number.isdigit() or int(number) >= i:
                    raise RecordingError(f"cycle {i}: late answers of cycle {number!r}")
                own = self._cycles[int(number)]  # an answer replays in the cycle it began in
                for channel, keys in answers.items():
                    for key, outcomes in keys.items():
                        own.setdefault(channel, {}).setdefault(key, []).extend(outcomes)
        self._lock = threading.Lock()
        self._queues: dict[str, dict[str, deque[Any]]] = {}
        self._anchors: dict[str, float] = {}
        self._last_clock: dict[str, float] = {}
        self._cycle_clock: dict[str, float] = {}
        self.index: int | None = None
        self.gaps = 0
        """Calls that found no recorded answer (a replay that asks more than was recorded)."""
        self.enter_setup()

    @staticmethod
    def _decoded(events: Mapping[str, Any], deltas: TextDeltas, where: str) -> Events:
        out = {channel: {k: list(v) for k, v in keys.items()} for channel, keys in events.items()}
        for key, outcomes in out.get(HTTP_CHANNEL, {}).items():
            decoded = []
            for outcome in outcomes:
                if isinstance(outcome, dict) and ("delta" in outcome or "text" in outcome):
                    try:
                        outcome = {"text": deltas.decode(key, outcome)}
                    except ValueError as error:
                        raise RecordingError(f"{where}: {error}") from None
                decoded.append(outcome)
            out[HTTP_CHANNEL][key] = decoded
        return out

    @property
    def cycles(self) -> int:
        return len(self._cycles)

    def enter_setup(self) -> None:
        anchors = self.recording.header.get("at", {})
        self._load(self._setup, anchors if isinstance(anchors, dict) else {})
        self.index = None

    def enter(self, index: int) -> None:
        record = self.recording.cycles[index]
        anchors = record.get("at", {})
        self._load(self._cycles[index], anchors if isinstance(anchors, dict) else {})
        self.index = index

    def anchor(self, index: int, kind: ClockKind) -> float | None:
        anchors = self.recording.cycles[index].get("at", {})
        value = anchors.get(kind) if isinstance(anchors, dict) else None
        return float(value) if isinstance(value, int | float) else None

    def _load(
        self, events: Mapping[str, Mapping[str, list[Any]]], anchors: Mapping[str, Any]
    ) -> None:
        with self._lock:
            self._queues = {
                channel: {key: deque(outcomes) for key, outcomes in keys.items()}
                for channel, keys in events.items()
            }
            self._anchors = {k: float(v) for k, v in anchors.items() if isinstance(v, int | float)}
            self._cycle_clock = {}

    def take(self, channel: str, key: str, *, gap: bool = True) -> Any | None:
        """The next recorded answer for ``key`` in this cycle, or None (a gap, counted in
        :attr:`gaps` unless ``gap`` is false: an answer older recordings did not keep)."""
        with self._lock:
            queue = self._queues.get(channel, {}).get(key)
            if not queue:
                self.gaps += gap
                return None
            return queue.popleft()

    def poll_done(self, engine: str, where: str, future: Future[Any]) -> bool:
        """Whether the recorded cycle found this poll answered. The replayed poll is waited
        for first (it answers from the tape at once), so that it reads this cycle's answers
        and clocks, as the recorded one did, even where the cycle then treats it as still out
        (it answered late in the recording). Without a record (an older recording): as now."""
        wait([future], timeout=REPLAY_ANSWER_SECONDS)
        recorded = self.take(POLL_CHANNEL, f"{engine}@{where}", gap=False)
        return future.done() if not isinstance(recorded, bool) else recorded and future.done()

    def clock(
        self, stream: str, kind: ClockKind, *, per_thread: bool = False
    ) -> Callable[[], float]:
        """A clock that returns ``stream``'s recorded values in order (see the module doc)."""

        def read() -> float:
            key = _clock_key(stream, per_thread)
            with self._lock:
                queue = self._queues.get(CLOCK_CHANNEL, {}).get(key)
                if queue:
                    value = queue.popleft()
                    if not isinstance(value, int | float):
                        raise RecordingError(f"clock {key}: recorded value {value!r} is no number")
                    self._last_clock[key] = self._cycle_clock[key] = float(value)
                    return float(value)
                # Exhausted: this cycle's last value, else the cycle's start, else the last seen.
                for fallback in (self._cycle_clock.get(key), self._anchors.get(kind)):
                    if fallback is not None:
                        return fallback
                last = self._last_clock.get(key)
                if last is not None:
                    return last
                return time.monotonic() if kind == "monotonic" else time.time()

        return read


__all__ = ["CLOCK_CHANNEL", "HTTP_CHANNEL", "POLL_CHANNEL", "ClockKind", "Player", "Recorder"]
