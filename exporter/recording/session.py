"""A sampler wired for recording or for replay, and the loops that drive it.

Both build the same sources the daemon builds (``NvmlSource``, ``EngineSource``,
``DcgmSource``, ``EngineCpuStats``, ``PortGpuLocator``) and the same :class:`Sampler`; only the
boundaries differ: recording wraps the real ones (:mod:`.nvml`, :mod:`.fetch`, :mod:`.host`,
:class:`~.tape.Recorder` clocks), replay puts :class:`~.tape.Player`-backed stand-ins there.

Each cycle's record ends with what this rooftop published (:func:`published_summary`): the
verdict per target and the SHA-256 of the exposition with its timestamp series removed
(:func:`normalized_exposition`). A replay compares its own after each cycle and reports the
cycles that differ, so "same verdicts as the user saw" is checked, not assumed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from rooftop.exporter.collector import render_snapshot
from rooftop.exporter.pipeline.engines import PollDone
from rooftop.exporter.recording.fetch import public_url, recording_fetch, replay_fetch
from rooftop.exporter.recording.format import (
    FORMAT_VERSION,
    Recording,
    RecordingError,
    RecordingWriter,
    rooftop_version,
)
from rooftop.exporter.recording.host import (
    RecordingProcessProvider,
    RecordingProcessStats,
    RecordingProcessTable,
    ReplayProcessProvider,
    ReplayProcessStats,
    ReplayProcessTable,
)
from rooftop.exporter.recording.nvml import RecordingNvmlBackend, ReplayNvmlBackend, driver_facts
from rooftop.exporter.recording.tape import Player, Recorder
from rooftop.exporter.sampler import GpuLocator, GpuSource, ProcessStatsProvider, Sampler
from rooftop.exporter.settings import ConfigError, Settings, describe_validation_error
from rooftop.exporter.snapshot import Snapshot
from rooftop.exporter.sources.gpu_mapping import PortGpuLocator, PsutilProcessTable
from rooftop.exporter.sources.host import EngineCpuStats, PsutilProcessProvider
from rooftop.exporter.sources.http import Fetch, fetch_text
from rooftop.exporter.sources.nvml import (
    NvmlBackend,
    NvmlSource,
    NvmlUnavailableError,
    RealNvmlBackend,
)
from rooftop.exporter.wiring import dcgm_source, engine_source

log = logging.getLogger(__name__)

TIMESTAMP_FAMILIES: frozenset[str] = frozenset(
    {
        "rooftop_snapshot_timestamp_seconds",
        "rooftop_snapshot_age_seconds",
        "rooftop_sampler_cycle_seconds",
        "rooftop_source_duration_seconds",
        "rooftop_source_last_success_timestamp_seconds",
    }
)
"""Series whose values are times or durations of this run, not readings: left out of the
comparison of a replay with its recording."""
HostKind = Literal["psutil", "stats", "none"]


def normalized_exposition(text: str) -> str:
    """``text`` without the samples of :data:`TIMESTAMP_FAMILIES` (HELP/TYPE lines stay)."""
    kept = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in TIMESTAMP_FAMILIES:
                continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def target_key(gpu: str, uuid: str, engine: str, model: str) -> str:
    return f"gpu={gpu} uuid={uuid} engine={engine} model={model}"


def published_summary(snapshot: Snapshot) -> dict[str, Any]:
    """What a cycle published: verdict per target, and the digest of the exposition."""
    text = normalized_exposition(render_snapshot(snapshot).decode())
    return {
        "verdicts": {
            target_key(t.gpu, t.uuid, t.engine, t.model): (t.verdict.state if t.verdict else None)
            for t in snapshot.targets
        },
        "exposition_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


# --- settings in and out of a recording -------------------------------------------------------


def recorded_settings(settings: Settings) -> dict[str, Any]:
    """The settings as JSON, with every secret removed: URLs in :func:`public_url` form, no web
    config path (TLS keys, password hashes)."""
    data = settings.model_dump(mode="json")
    data["engines"] = [
        {**engine, "url": public_url(engine["url"])} for engine in data.get("engines", [])
    ]
    if data.get("dcgm_url"):
        data["dcgm_url"] = public_url(data["dcgm_url"])
    data["web_config_file"] = None
    return data


def settings_from_recording(
    recording: Recording, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """The recorded settings as this rooftop's :class:`Settings` (no environment, no file),
    with ``overrides`` (e.g. the listen address). Raises :class:`RecordingError` naming both
    versions when this rooftop cannot load them."""
    data = dict(recording.header.get("settings") or {})
    data.update(overrides or {})
    data["discover_engines"] = False  # the recorded engines are the engines
    try:
        return Settings.model_validate(data)
    except ValidationError as error:
        if overrides and all(p["loc"] and p["loc"][0] in overrides for p in error.errors()):
            raise ConfigError(describe_validation_error(error)) from None
        raise RecordingError(
            f"the recording was made by rooftop {recording.version} with settings this rooftop "
            f"{rooftop_version()} cannot load:\n  {describe_validation_error(error)}"
        ) from None


# --- wiring -----------------------------------------------------------------------------------


@dataclass
class _Boundaries:
    nvml_backend: NvmlBackend | None
    fetch: Fetch
    process_stats: ProcessStatsProvider | None
    locator: GpuLocator | None
    monotonic: Callable[[], float]
    wall: Callable[[], float]
    nvml_clock: Callable[[], float]
    dcgm_clock: Callable[[], float]
    answer_clock: Callable[[], float]
    """Read in each engine's poll thread (one thread per engine poll at a time): per thread."""
    poll_done: PollDone | None = None
    before_cycle: Callable[[float], None] | None = None


@dataclass
class Wiring:
    sampler: Sampler
    nvml: NvmlSource | None
    nvml_error: str | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.sampler.stop()
        if self.nvml is not None:
            self.nvml.close()
        for closer in self.closers:
            closer()


def _wire(
    settings: Settings,
    boundaries: _Boundaries,
    on_publish: Callable[[Snapshot], None] | None,
) -> Wiring:
    gpu_source: GpuSource | None = None
    nvml: NvmlSource | None = None
    nvml_error = None
    if boundaries.nvml_backend is not None:
        nvml = NvmlSource(
            boundaries.nvml_backend,
            settings.gpu_call_deadline_seconds,
            clock=boundaries.nvml_clock,
        )
        try:
            nvml.start()
            gpu_source = nvml
        except NvmlUnavailableError as error:
            log.warning("NVML unavailable, continuing without local GPUs: %s", error)
            nvml, nvml_error = None, str(error)
    sampler = Sampler(
        settings,
        gpu_source,
        engine_factory=functools.partial(engine_source, settings, fetch=boundaries.fetch),
        dcgm_source=dcgm_source(settings, boundaries.fetch, boundaries.dcgm_clock),
        process_stats=boundaries.process_stats,
        gpu_locator=boundaries.locator,
        monotonic=boundaries.monotonic,
        wall_clock=boundaries.wall,
        before_cycle=boundaries.before_cycle,
        on_publish=on_publish,
        engine_answer_clock=boundaries.answer_clock,
        engine_poll_done=boundaries.poll_done,
    )
    return Wiring(sampler, nvml, nvml_error)


# --- recording --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSummary:
    path: Path
    cycles: int
    late_events: int
    bytes_written: int


class RecordSession:
    """Runs the pipeline on the real (or given) sources and records what they read.

    ``nvml_backend``: the backend to wrap (default the real library when ``settings.nvml``);
    ``demo``: a started :class:`~rooftop.exporter.demo.node.DemoNode` whose GPUs, engines and
    process figures are recorded instead.
    """

    def __init__(
        self,
        settings: Settings,
        out: str | Path,
        *,
        nvml_backend: NvmlBackend | None = None,
        demo: Any = None,
        on_publish: Callable[[Snapshot], None] | None = None,
    ) -> None:
        if settings.kubernetes_node_name:
            raise ConfigError(
                "rooftop record does not follow Kubernetes engine discovery: pass the engines "
                "to record with --engine URL"
            )
        self.path = Path(out)
        self._writer = RecordingWriter(self.path)
        self._recorder = recorder = Recorder(self._writer)
        self._on_publish = on_publish
        host: HostKind
        inner_backend: NvmlBackend | None = nvml_backend
        before_cycle = None
        if demo is not None:
            inner_backend = demo.backend
            process_stats: ProcessStatsProvider | None = RecordingProcessStats(demo, recorder)
            locator: GpuLocator | None = None
            before_cycle = demo.advance
            host = "stats"
        else:
            if inner_backend is None and settings.nvml:
                inner_backend = RealNvmlBackend()
            process_stats = EngineCpuStats(
                RecordingProcessProvider(PsutilProcessProvider(), recorder),
                recorder.clock("host", time.monotonic),
            )
            locator = PortGpuLocator(
                RecordingProcessTable(PsutilProcessTable(), recorder),
                clock=recorder.clock("locator", time.monotonic),
            )
            host = "psutil"
        boundaries = _Boundaries(
            nvml_backend=(
                RecordingNvmlBackend(inner_backend, recorder) if inner_backend is not None else None
            ),
            fetch=recording_fetch(fetch_text, recorder),
            process_stats=process_stats,
            locator=locator,
            monotonic=recorder.clock("monotonic", time.monotonic),
            wall=recorder.clock("wall", time.time),
            nvml_clock=recorder.clock("nvml", time.monotonic, per_thread=True),
            dcgm_clock=recorder.clock("dcgm", time.monotonic),
            answer_clock=recorder.clock(
                "engine-answer", time.monotonic, per_thread=True, call_clock=True
            ),
            poll_done=recorder.poll_done,
            before_cycle=before_cycle,
        )
        self._wiring = _wire(settings, boundaries, None)
        self._settings = settings
        self._cycles = 0
        identities = self._wiring.nvml.identities if self._wiring.nvml is not None else ()
        recorder.write_header(
            {
                "format": FORMAT_VERSION,
                "rooftop_version": rooftop_version(),
                "created_unix_seconds": time.time(),
                "at": recorder.setup_anchors,
                "settings": recorded_settings(settings),
                "host": host,
                "nvml": {
                    "available": self._wiring.nvml is not None,
                    "error": self._wiring.nvml_error,
                    **(driver_facts(inner_backend) if self._wiring.nvml is not None else {}),
                    "gpus": [dataclasses.asdict(identity) for identity in identities],
                },
            }
        )

    @property
    def sampler(self) -> Sampler:
        return self._wiring.sampler

    def cycle(self) -> Snapshot:
        """One recorded cycle."""
        self._recorder.begin_cycle(time.monotonic(), time.time())
        snapshot = self._wiring.sampler.run_cycle()
        self._recorder.end_cycle(published_summary(snapshot))
        self._cycles += 1
        if self._on_publish is not None:
            self._on_publish(snapshot)
        return snapshot

    def run(self, seconds: float | None, stop: threading.Event | None = None) -> RecordSummary:
        """Record cycles every ``interval_seconds`` for ``seconds`` (None: until ``stop``)."""
        stop = stop or threading.Event()
        interval = self._settings.interval_seconds
        started = time.monotonic()
        next_at = started
        try:
            while not stop.is_set():
                if seconds is not None and time.monotonic() - started >= seconds:
                    break
                try:
                    self.cycle()
                except Exception:  # as the daemon: a bug in one cycle must not end the run
                    log.exception("recorded cycle failed")
                next_at += interval
                now = time.monotonic()
                if next_at < now:
                    next_at = now + interval
                stop.wait(next_at - now)
        finally:
            summary = self.close()
        return summary

    def close(self) -> RecordSummary:
        self._wiring.close()
        self._recorder.close()
        return RecordSummary(
            self.path, self._cycles, self._recorder.late_events, self.path.stat().st_size
        )


# --- replay -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleDifference:
    cycle: int
    what: str
    """``verdict <target>: recorded X, replayed Y`` or ``exposition``."""


@dataclass
class ReplaySummary:
    cycles: int = 0
    differences: list[CycleDifference] = field(default_factory=list)
    verdicts: dict[str, list[str | None]] = field(default_factory=dict)
    """Target key -> the published verdict of each replayed cycle."""
    gaps: int = 0

    @property
    def reproduced(self) -> bool:
        """Every cycle's verdicts and exposition (timestamps aside) as recorded."""
        return not self.differences

    @property
    def verdicts_reproduced(self) -> bool:
        """Every cycle's verdicts as recorded. A rooftop of another version that adds a metric
        changes the exposition but must not change a verdict without saying so."""
        return not any(d.what.startswith("verdict ") for d in self.differences)


def differences(
    cycle: int, recorded: Mapping[str, Any], replayed: Mapping[str, Any]
) -> list[CycleDifference]:
    out = []
    theirs = recorded.get("verdicts") or {}
    ours = replayed.get("verdicts") or {}
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key, "absent") != ours.get(key, "absent"):
            out.append(
                CycleDifference(
                    cycle,
                    f"verdict {key}: recorded {theirs.get(key, 'absent')}, "
                    f"replayed {ours.get(key, 'absent')}",
                )
            )
    if recorded.get("exposition_sha256") and recorded.get("exposition_sha256") != replayed.get(
        "exposition_sha256"
    ):
        out.append(CycleDifference(cycle, "exposition differs (timestamps aside)"))
    return out


class ReplaySession:
    """The pipeline on a recording. ``overrides`` change settings (e.g. ``listen_address``)."""

    def __init__(
        self,
        recording: Recording,
        overrides: Mapping[str, Any] | None = None,
        on_publish: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self.recording = recording
        if recording.version != rooftop_version():
            log.warning(
                "replaying a recording made by rooftop %s with rooftop %s: verdicts may differ "
                "where the pipeline changed between them",
                recording.version,
                rooftop_version(),
            )
        self.settings = settings_from_recording(recording, overrides)
        self.player = player = Player(recording)
        host = recording.header.get("host", "none")
        process_stats: ProcessStatsProvider | None = None
        locator: GpuLocator | None = None
        if host == "psutil":
            process_stats = EngineCpuStats(
                ReplayProcessProvider(player), player.clock("host", "monotonic")
            )
            locator = PortGpuLocator(
                ReplayProcessTable(player), clock=player.clock("locator", "monotonic")
            )
        elif host == "stats":
            process_stats = ReplayProcessStats(player)
        nvml_facts = recording.header.get("nvml") or {}
        backend = ReplayNvmlBackend(player) if nvml_facts.get("available") else None
        boundaries = _Boundaries(
            nvml_backend=backend,
            fetch=replay_fetch(player),
            process_stats=process_stats,
            locator=locator,
            monotonic=player.clock("monotonic", "monotonic"),
            wall=player.clock("wall", "wall"),
            nvml_clock=player.clock("nvml", "monotonic", per_thread=True),
            dcgm_clock=player.clock("dcgm", "monotonic"),
            answer_clock=player.clock("engine-answer", "monotonic", per_thread=True),
            poll_done=player.poll_done,
        )
        player.enter_setup()
        self._wiring = _wire(self.settings, boundaries, on_publish)
        self.summary = ReplaySummary()
        self.last: Snapshot | None = None

    @property
    def sampler(self) -> Sampler:
        return self._wiring.sampler

    def cycle(self, index: int) -> Snapshot:
        """Replay recorded cycle ``index`` (cycles must be replayed in order)."""
        self.player.enter(index)
        snapshot = self._wiring.sampler.run_cycle()
        ours = published_summary(snapshot)
        recorded = self.recording.cycles[index].get("published") or {}
        self.summary.differences.extend(differences(index, recorded, ours))
        for key, state in ours["verdicts"].items():
            self.summary.verdicts.setdefault(key, [None] * self.summary.cycles).append(state)
        self.summary.cycles += 1
        for states in self.summary.verdicts.values():
            states.extend([None] * (self.summary.cycles - len(states)))
        self.summary.gaps = self.player.gaps
        self.last = snapshot
        return snapshot

    def run(self, speed: float = 0.0, stop: threading.Event | None = None) -> ReplaySummary:
        """Every cycle in order; ``speed`` 1 waits as the recording did, 2 twice as fast, 0 not
        at all."""
        stop = stop or threading.Event()
        started = time.monotonic()
        first = self.player.anchor(0, "monotonic") if self.player.cycles else None
        for index in range(self.player.cycles):
            if stop.is_set():
                break
            at = self.player.anchor(index, "monotonic")
            if speed > 0 and at is not None and first is not None:
                stop.wait(max(0.0, (at - first) / speed - (time.monotonic() - started)))
            self.cycle(index)
        return self.summary

    def close(self) -> None:
        self._wiring.close()


def replay_file(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ReplaySession:
    from rooftop.exporter.recording.format import read_recording

    return ReplaySession(read_recording(path), overrides)


__all__ = [
    "TIMESTAMP_FAMILIES",
    "CycleDifference",
    "RecordSession",
    "RecordSummary",
    "ReplaySession",
    "ReplaySummary",
    "normalized_exposition",
    "published_summary",
    "recorded_settings",
    "replay_file",
    "settings_from_recording",
]
