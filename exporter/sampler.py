"""One thread, one fixed interval: run the pipeline's stages once per cycle and publish an
immutable :class:`~rooftop.exporter.snapshot.Snapshot`.

The cycle, in data-flow order (each stage is a module of :mod:`rooftop.exporter.pipeline`):

1. engines: discovery refresh, then every engine's poll starts in a worker pool;
2. gpus: NVML inline and dcgm-exporter beside it, merged, lost GPUs down, specs and peaks;
3. engines: the polls are collected and become views with windowed rates;
4. join: GPU × engine targets, operating point, verdict, hysteresis;
5. the snapshot is published (and handed to ``on_publish``, e.g. to render the exposition).

Scrapes only ever read the latest snapshot. A source that fails is marked down for the cycle
(``rooftop_source_up`` 0, its series absent) while every other source stays current; nothing a
failing source last said is presented as current.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

from rooftop.exporter.pipeline.engines import (
    EngineDiscovery,
    EngineFactory,
    EngineStage,
    GpuLocator,
    PollDone,
    ProcessStatsProvider,
)
from rooftop.exporter.pipeline.gpus import GpuSource, GpuSpecs, GpuStage
from rooftop.exporter.pipeline.join import JoinStage, verdict_thresholds
from rooftop.exporter.pipeline.status import SourceTimer
from rooftop.exporter.settings import Settings
from rooftop.exporter.snapshot import Snapshot, SourceStatus
from rooftop.exporter.version import VERSION
from rooftop.exporter.wiring import engine_source

log = logging.getLogger(__name__)

DCGM_CATCH_UP_SECONDS = 1.0
"""The dcgm-exporter read gets the engine timeout plus this before the cycle stops waiting."""
ENGINE_WAIT_FRACTION = 0.5
"""A cycle waits at most this share of the interval for engine polls, then publishes with
what has answered (a hung engine costs only its own freshness)."""


class Sampler:
    """Polls the sources every ``settings.interval_seconds`` and publishes snapshots.

    The engines are ``settings.engines`` (each source built once by ``engine_factory``,
    by default :func:`~rooftop.exporter.wiring.engine_source`) plus, with
    ``engine_discovery``, those discovered at run time.
    """

    def __init__(
        self,
        settings: Settings,
        gpu_source: GpuSource | None,
        *,
        engine_factory: EngineFactory | None = None,
        dcgm_source: GpuSource | None = None,
        process_stats: ProcessStatsProvider | None = None,
        gpu_locator: GpuLocator | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        before_cycle: Callable[[float], None] | None = None,
        engine_discovery: EngineDiscovery | None = None,
        on_publish: Callable[[Snapshot], None] | None = None,
        engine_answer_clock: Callable[[], float] | None = None,
        engine_poll_done: PollDone | None = None,
    ) -> None:
        """``engine_answer_clock`` (default ``monotonic``) times each engine's answer in its
        own poll thread; a recording passes a per-thread clock so replay reads it in order.
        ``engine_poll_done`` (default ``Future.done``) says whether a poll has answered: a
        recording records it and a replay answers it as recorded (see :data:`PollDone`)."""
        self._settings = settings
        self._monotonic = monotonic
        self._wall = wall_clock
        self._before_cycle = before_cycle
        self._on_publish = on_publish
        timer = SourceTimer(monotonic, wall_clock)
        specs = GpuSpecs(settings.gpu_model, settings.gpu_overrides)
        self._gpus = GpuStage(
            timer,
            specs,
            gpu_source,
            dcgm_source,
            settings.engine_timeout_seconds + DCGM_CATCH_UP_SECONDS,
        )
        self._join = JoinStage(
            verdict_thresholds(settings.verdict_hold_samples, settings.verdict_thresholds),
            specs,
            settings.default_context_tokens,
        )
        self._engines = EngineStage(
            timer,
            settings.engines,
            engine_factory or functools.partial(engine_source, settings),
            settings.rate_window_seconds,
            discovery=engine_discovery,
            discovery_interval_seconds=settings.discovery_interval_seconds,
            process_stats=process_stats,
            locator=gpu_locator,
            on_engine_gone=self._join.forget_engine,
            wait_seconds=settings.interval_seconds * ENGINE_WAIT_FRACTION,
            answer_clock=engine_answer_clock,
            poll_done=engine_poll_done,
        )
        self._latest: Snapshot | None = None
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_failure: str | None = None
        self._started_at = monotonic()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def latest(self) -> Snapshot | None:
        return self._latest

    def stale_after_seconds(self) -> float:
        """A snapshot older than this means the sampler is not doing its job: three intervals
        plus the longest a cycle may legitimately wait (engine timeout and catch-up)."""
        settings = self._settings
        return 3 * settings.interval_seconds + settings.engine_timeout_seconds + 2.0

    def health_problem(self) -> str | None:
        """Why ``/healthz`` should fail now, or ``None``: no snapshot yet after the stale
        limit, or the latest snapshot is older than :meth:`stale_after_seconds`."""
        limit = self.stale_after_seconds()
        now = self._monotonic()
        why = f"; last cycle failed: {self._last_failure}" if self._last_failure else ""
        latest = self._latest
        if latest is None:
            if now - self._started_at > limit:
                return f"no snapshot published {now - self._started_at:.1f} s after start{why}"
            return None
        age = now - latest.monotonic_seconds
        if age > limit:
            return f"snapshot is {age:.1f} s old (limit {limit:.1f} s){why}"
        return None

    def start(self) -> None:
        self._started_at = self._monotonic()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        self._engines.close()
        self._gpus.close()

    def _run(self) -> None:
        interval = self._settings.interval_seconds
        next_at = self._monotonic()
        while not self._stop.is_set():
            try:
                self.run_cycle()
                self._last_failure = None
            except Exception as exc:  # a bug in one cycle must not end the daemon
                if self._last_failure != repr(exc):
                    log.exception("sampler cycle failed; the previous snapshot stays published")
                self._last_failure = repr(exc)
            next_at += interval
            now = self._monotonic()
            if next_at < now:  # fell behind (a slow cycle): skip, never burst
                next_at = now + interval
            self._stop.wait(next_at - now)

    # -- one cycle -------------------------------------------------------------------------

    def run_cycle(self) -> Snapshot:
        started = self._monotonic()
        if self._before_cycle is not None:
            self._before_cycle(started)
        statuses: list[SourceStatus] = []
        self._engines.refresh(started, statuses)
        polls = self._engines.submit()
        dcgm = self._gpus.submit_dcgm()
        gpu_result = self._gpus.read(statuses, dcgm)
        readings = self._engines.collect(polls, statuses)
        now = self._monotonic()
        gpus = self._gpus.views(gpu_result)
        engines = self._engines.samples(readings, now, gpu_result)
        targets = self._join.targets(gpus, engines, now)
        self._sequence += 1
        snapshot = Snapshot(
            sequence=self._sequence,
            unix_seconds=self._wall(),
            monotonic_seconds=now,
            cycle_seconds=self._monotonic() - started,
            demo=self._settings.demo,
            gpus=tuple(gpus),
            engines=tuple(sample.view for sample in engines),
            targets=tuple(targets),
            sources=tuple(statuses),
            version=VERSION,
        )
        self._latest = snapshot
        if self._on_publish is not None:
            self._on_publish(snapshot)  # e.g. render the exposition here, not in a scrape
        return snapshot


__all__ = [
    "VERSION",
    "EngineDiscovery",
    "GpuLocator",
    "GpuSource",
    "ProcessStatsProvider",
    "Sampler",
]
