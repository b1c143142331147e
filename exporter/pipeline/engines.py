"""Engine stage: one :class:`EngineTracker` per engine, built once, holding its config, its
source, its rate windows, its resolved model and its GPU mapping.

Each cycle the stage refreshes the engine set (when discovery is on), polls every engine in a
worker pool (a slow engine delays only itself, never piles up polls), and turns each answer
into an :class:`~rooftop.exporter.snapshot.EngineView` with window-averaged rates. The hand-off
to the join stage is :class:`EngineSample`: the view and the model the roofline needs, side by
side, so nothing downstream looks an engine up again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from rooftop.classifiers.model_catalog import UnknownModelError, lookup_model
from rooftop.classifiers.models import ModelArchitecture, ModelConfigError, kv_bytes_per_token
from rooftop.classifiers.prefix_cache import hit_ratio_from_counters, per_sequence_context_tokens
from rooftop.classifiers.speculative import Speculation, SpeculationError, live_speculation
from rooftop.exporter.histograms import WindowedHistogram
from rooftop.exporter.model_resolution import ResolvedModel, load_config_json, resolve_model
from rooftop.exporter.pipeline.status import SourceTimer, error_text
from rooftop.exporter.rates import RatioOfCounters, WindowedCounter, WindowedMean
from rooftop.exporter.settings import EngineConfig, redact_url
from rooftop.exporter.snapshot import EngineView, SourceStatus
from rooftop.exporter.sources.base import DiscoveredEngine, Source
from rooftop.exporter.sources.engine import EngineSource, EngineSourceError
from rooftop.exporter.sources.engines.base import EngineReading
from rooftop.exporter.sources.gpu_mapping import resolve_configured_gpus
from rooftop.exporter.sources.reading_checks import check_reading
from rooftop.exporter.telemetry import GpuSourceResult, ProcessCpu
from rooftop.exporter.totals import CounterTotal
from rooftop.exporter.worker_threads import KeyedWorkers

log = logging.getLogger(__name__)

ENGINE_CATCH_UP_SECONDS = 1.0
"""Engine polls get their own timeout plus this before the stage stops waiting (at most)."""
DEFAULT_WAIT_SECONDS = 0.5
"""How long a cycle waits for its engine polls (the sampler passes half its interval)."""

EngineFactory = Callable[[EngineConfig], EngineSource]
"""Builds the source for one engine config (serve wiring, or a test's recorded engine)."""


class ProcessStatsProvider(Protocol):
    """Engine process-tree CPU figures (psutil on a real node, the script on the demo)."""

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None: ...


class GpuLocator(Protocol):
    """Finds an engine's process and the GPUs it runs on, when the config does not say."""

    def locate(
        self, engine: str, url: str, gpus: GpuSourceResult
    ) -> tuple[int | None, tuple[str, ...], str]:
        """``(pid, gpu uuids, how)``; ``how`` is ``discovered`` or the reason nothing was."""
        ...


EngineDiscovery = Source[Sequence[DiscoveredEngine]]
"""Finds engines at run time (e.g. annotated pods on this Kubernetes node); ``poll`` returns
the engines that exist now and raises when discovery itself failed."""


def model_label(config: EngineConfig, reading: EngineReading | None) -> str | None:
    """The ``model`` label and the model the roofline resolves: the configured ``model``
    when set, else what the engine says it serves. A configured label never depends on the
    engine being up (series continuity in Prometheus)."""
    if config.model:
        return config.model
    return reading.model if reading is not None else None


@dataclass(frozen=True)
class EngineSample:
    """The engine stage's hand-off: one engine's view and its resolved model."""

    view: EngineView
    model: ResolvedModel | None
    draft_model: ModelArchitecture | None = None
    """The configured draft model (``speculative.method: draft_model``), resolved once."""


def configured_speculation(config: EngineConfig) -> Speculation | None:
    """The per-engine ``speculative`` setting as the classifier's :class:`Speculation`."""
    spec = config.speculative
    if spec is None:
        return None
    return Speculation(spec.method, spec.num_speculative_tokens, spec.acceptance)


def _draft_model(config: EngineConfig) -> ModelArchitecture | None:
    spec = config.speculative
    if spec is None or not spec.draft_model:
        return None
    try:
        if Path(spec.draft_model).exists():
            return load_config_json(spec.draft_model)
        return lookup_model(spec.draft_model)
    except (UnknownModelError, ModelConfigError, OSError, ValueError) as exc:
        log.warning("engine %s: draft model %s: %s", config.label, spec.draft_model, exc)
        return None


class TimedReading:
    """A poll's reading and when (monotonic) its answer was in: a late answer's rates are
    computed at the time it describes (an engine renders its counters as it answers), never
    at the cycle that picked it up."""

    def __init__(self, reading: EngineReading, at: float) -> None:
        self.reading = reading
        self.at = at


def start_poll(
    poll: Callable[[Callable[[], None]], EngineReading], engine: str, clock: Callable[[], float]
) -> Future[TimedReading]:
    """Run ``poll`` in its engine's daemon thread and return its future, its answer timed by
    ``clock`` when ``poll`` says its body is in (parsing, and waiting for the reading lane,
    come after the engine rendered its counters).

    One thread per engine (``poll``'s source: kept between cycles, see
    :mod:`~rooftop.exporter.worker_threads`), and at most one poll outstanding per engine:
    engines never queue behind each other (a shared pool of 16 let 36 hung engines starve 14
    healthy ones), and a hung poll never holds the interpreter at exit (daemon thread; a
    pool's workers are joined at exit)."""
    future: Future[TimedReading] = Future()
    future.set_running_or_notify_cancel()

    answered_at: list[float] = []

    def answered() -> None:
        answered_at.append(clock())

    def run() -> None:
        try:
            reading = poll(answered)
            future.set_result(TimedReading(reading, answered_at[-1] if answered_at else clock()))
        except BaseException as exc:  # handed to collect, which names it
            future.set_exception(exc)

    _POLL_THREADS.run(poll, f"engine-poll {engine}", run)
    return future


_POLL_THREADS: Final = KeyedWorkers()
"""The engines' poll threads, by source (a bound ``poll`` is keyed by its source): a source
rebuilt by a reload gets a thread of its own, never the old one's queue."""


PollDone = Callable[[str, str, "Future[TimedReading]"], bool]
"""``(engine, where, future) -> answered?``: whether a poll has answered, asked when a cycle
starts (``where`` = ``"submit"``) and when it stops waiting (``"collect"``). The one place where
real time decides what a cycle sees: a recording keeps each answer, a replay gives it back."""


def poll_is_done(engine: str, where: str, future: Future[TimedReading]) -> bool:
    return future.done()


def _restart_reason(future: Future[TimedReading] | None) -> str | None:
    """The restart reason of a finished poll that is being superseded, if it had one."""
    if future is None or future.exception() is not None:
        return None
    return future.result().reading.restart_reason


class EngineTracker:
    """Everything the sampler keeps about one engine between cycles."""

    def __init__(self, config: EngineConfig, source: EngineSource, window_seconds: float) -> None:
        self.config = config
        self.source = source
        # The same value as the engine= label of its other series: one name for one engine.
        self.status_name = source.name
        self._window = window_seconds
        self.generation = WindowedCounter(window_seconds)
        self.prompt = WindowedCounter(window_seconds)
        self.computed_prefill = WindowedCounter(window_seconds)
        self.flops = WindowedCounter(window_seconds)
        self.read_bytes = WindowedCounter(window_seconds)
        self.write_bytes = WindowedCounter(window_seconds)
        self.spec_drafts = WindowedCounter(window_seconds)
        self.spec_draft_tokens = WindowedCounter(window_seconds)
        self.spec_accepted = WindowedCounter(window_seconds)
        self._spec_seen = False
        self.prefix_queries = WindowedCounter(window_seconds)
        self.prefix_hits = WindowedCounter(window_seconds)
        self.draft_model = _draft_model(config)
        self.inter_token = RatioOfCounters(window_seconds)
        self.batch = WindowedMean(window_seconds)
        self.resident_tokens = WindowedMean(window_seconds)
        self.ttft = WindowedHistogram(window_seconds)
        self.itl_buckets = WindowedHistogram(window_seconds)
        self.decode_total = CounterTotal()
        self.prefill_total = CounterTotal()
        self.preemptions_total = CounterTotal()
        self.gpu_memory_bytes: float | None = None
        self.pending: Future[TimedReading] | None = None
        self.pending_since = 0.0
        self.answered_at = 0.0
        self.last_error: str | None = None
        self.late: Future[TimedReading] | None = None
        self.last_status: SourceStatus | None = None
        self.last_view: EngineView | None = None
        self.reuse_view = False
        self.rejected: tuple[str, ...] = ()
        self.model_key: str | None = config.model or None
        self.model: ResolvedModel | None = None
        self.pid: int | None = None
        self.gpus: tuple[str, ...] = ()
        self.mapping = "not yet mapped"

    @property
    def name(self) -> str:
        return self.source.name

    def reconfigure(self, config: EngineConfig) -> None:
        """Discovery saw this engine again with another config (e.g. its GPUs changed)."""
        self.config = config
        self.mapping = "not yet mapped"
        self.draft_model = _draft_model(config)

    def forget_rates(self) -> None:
        for counter in (
            self.generation,
            self.prompt,
            self.computed_prefill,
            self.flops,
            self.read_bytes,
            self.write_bytes,
            self.spec_drafts,
            self.spec_draft_tokens,
            self.spec_accepted,
            self.prefix_queries,
            self.prefix_hits,
            self.batch,
            self.resident_tokens,
            self.ttft,
            self.itl_buckets,
        ):
            counter.reset()
        self.inter_token = RatioOfCounters(self._window)
        for total in (self.decode_total, self.prefill_total, self.preemptions_total):
            total.forget()

    def update_model(self, reading: EngineReading) -> None:
        """Resolve the model again when its key changed; re-read formats otherwise."""
        key = model_label(self.config, reading)
        if key != self.model_key or (key and self.model is None):
            if self.model_key is not None and key != self.model_key:
                self.forget_rates()  # the engine now serves another model
            self.model_key = key
            self.model = resolve_model(key, self.config, reading) if key else None
            if self.model is not None and self.model.error is not None:
                # Once per model change: the roofline stays empty, verdicts go on without it.
                log.warning("engine %s: %s", self.name, self.model.error)
        elif key and self.model is not None and self.model.arch is not None:
            self.model = resolve_model(key, self.config, reading, cached=self.model)

    def down_view(self) -> EngineView:
        """Down: keep what is static (name, model label, mapping), drop every live figure and
        the rate history so a later rate never spans the outage."""
        self.forget_rates()
        return EngineView(
            name=self.name,
            url=self.config.url,
            up=False,
            family=None,
            version_family=None,
            model=self.model_key,
            model_resolved=self.model.resolved_id if self.model else None,
            weights=None,
            kv_dtype=None,
            tensor_parallel=max(1, len(self.gpus)),
            gpus=self.gpus,
            mapping=self.mapping,
        )

    def note_rejected(self, reading: EngineReading) -> None:
        """Log the values dropped at the source boundary once, when the set changes."""
        if reading.rejected != self.rejected:
            if reading.rejected:
                log.warning(
                    "engine %s: dropped impossible values: %s",
                    self.name,
                    "; ".join(reading.rejected),
                )
            else:
                log.info("engine %s: values valid again", self.name)
        self.rejected = reading.rejected

    def up_view(self, reading: EngineReading, now: float, cpu: ProcessCpu | None) -> EngineView:
        if reading.restart_reason is not None:
            log.info("engine %s: rate windows restart: %s", self.name, reading.restart_reason)
            self.forget_rates()
        self.note_rejected(reading)
        dropped = {entry.split(":", 1)[0] for entry in reading.rejected}

        def counter(window: WindowedCounter, field: str, value: float | None) -> float | None:
            # A dropped value keeps the window's history (the next good value continues it).
            return window.rate() if field in dropped else window.observe(now, value)

        decode = counter(
            self.generation, "generation_tokens_total", reading.generation_tokens_total
        )
        prompt = counter(self.prompt, "prompt_tokens_total", reading.prompt_tokens_total)
        computed = counter(
            self.computed_prefill,
            "prefill_computed_tokens_total",
            reading.prefill_computed_tokens_total,
        )
        prefill = computed if reading.prefill_computed_tokens_total is not None else prompt
        flops = counter(self.flops, "estimated_flops_total", reading.estimated_flops_total)
        read_bytes = counter(
            self.read_bytes, "estimated_read_bytes_total", reading.estimated_read_bytes_total
        )
        write_bytes = counter(
            self.write_bytes, "estimated_write_bytes_total", reading.estimated_write_bytes_total
        )
        engine_bytes = None if read_bytes is None else read_bytes + (write_bytes or 0.0)
        if "inter_token_latency_sum_count" in dropped:
            itl = None
        else:
            itl = self.inter_token.observe(now, reading.inter_token_latency_sum_count)
        computed_total = reading.prefill_computed_tokens_total
        prefill_total = self.prefill_total.observe(
            computed_total if computed_total is not None else reading.prompt_tokens_total
        )
        decode_total = self.decode_total.observe(reading.generation_tokens_total)
        preemptions = self.preemptions_total.observe(reading.preemptions_total)
        ttft = self.ttft.observe(now, reading.time_to_first_token_buckets)
        itl_quantiles = self.itl_buckets.observe(now, reading.inter_token_latency_buckets)
        speculation = self._speculation(reading, now, decode)
        queries = counter(
            self.prefix_queries, "prefix_cache_queries_total", reading.prefix_cache_queries_total
        )
        hits = counter(self.prefix_hits, "prefix_cache_hits_total", reading.prefix_cache_hits_total)
        try:
            hit_ratio = hit_ratio_from_counters(queries, hits)
        except ValueError:
            hit_ratio = None
        if hit_ratio is None:
            hit_ratio = reading.prefix_cache_hit_ratio
        resident_tokens = None
        if reading.kv_usage_ratio is not None and reading.kv_capacity_tokens is not None:
            resident_tokens = reading.kv_usage_ratio * reading.kv_capacity_tokens
        # Rates are window averages: the batch and KV they are set against must be too.
        mean_batch = self.batch.observe(now, reading.requests_running)
        mean_resident = self.resident_tokens.observe(now, resident_tokens)
        mean_context = None
        if mean_resident is not None and mean_batch:
            # A shared prefix is stored once but read by every sequence (prefix_cache module).
            mean_context = per_sequence_context_tokens(mean_resident, mean_batch, hit_ratio)
        model = self.model
        resident_bytes = None
        if resident_tokens is not None and model is not None and model.arch is not None:
            resident_bytes = resident_tokens * kv_bytes_per_token(model.arch, model.kv_dtype)
        return EngineView(
            name=self.name,
            url=self.config.url,
            up=True,
            family=reading.family,
            version_family=reading.version_family,
            model=self.model_key,
            model_resolved=model.resolved_id if model is not None else None,
            weights=model.weights if model is not None else None,
            kv_dtype=model.kv_dtype if model is not None else None,
            tensor_parallel=self.config.tensor_parallel or max(1, len(self.gpus)),
            gpus=self.gpus,
            mapping=self.mapping,
            prefill_tokens_per_second=prefill,
            decode_tokens_per_second=decode,
            requests_running=reading.requests_running,
            requests_running_mean=mean_batch,
            requests_waiting=reading.requests_waiting,
            kv_usage_ratio=reading.kv_usage_ratio,
            kv_capacity_tokens=reading.kv_capacity_tokens,
            kv_resident_tokens=resident_tokens,
            kv_resident_bytes=resident_bytes,
            mean_context_tokens=mean_context,
            engine_flops_per_second=flops,
            engine_read_bytes_per_second=read_bytes,
            engine_write_bytes_per_second=write_bytes,
            engine_bytes_per_second=engine_bytes,
            speculation=speculation,
            prefix_cache_hit_ratio=hit_ratio,
            prefill_includes_cached=reading.prefill_computed_tokens_total is None
            and reading.prompt_tokens_total is not None,
            inter_token_latency_seconds=itl,
            process_cpu_cores=cpu.cpu_cores if cpu else None,
            process_busiest_thread_ratio=cpu.busiest_thread_ratio if cpu else None,
            missing=reading.missing,
            prefill_tokens_total=(
                prefill_total
                if (computed_total is not None or reading.prompt_tokens_total is not None)
                else None
            ),
            decode_tokens_total=(
                decode_total if reading.generation_tokens_total is not None else None
            ),
            preemptions_total=preemptions if reading.preemptions_total is not None else None,
            time_to_first_token_quantiles={q: v for q, v in ttft.items() if v is not None},
            inter_token_latency_quantiles={q: v for q, v in itl_quantiles.items() if v is not None},
            gpu_memory_used_bytes=self.gpu_memory_bytes,
        )

    def _speculation(
        self, reading: EngineReading, now: float, decode: float | None
    ) -> Speculation | None:
        """This window's speculation: the engine's counters, its accept length, the setting."""
        if not self._spec_seen and reading.spec_drafts_total is not None:
            self._spec_seen = True
            before = self.generation.previous_sample_seconds()
            if before is not None:
                # First seen while the engine was already counting tokens: the families were
                # registered at the first draft (they count from 0 since the previous scrape),
                # so this window's first speculative tokens are not lost to a missing sample.
                self.spec_drafts.observe(before, 0.0)
                self.spec_draft_tokens.observe(before, 0.0)
                self.spec_accepted.observe(before, 0.0)
        drafts = self.spec_drafts.observe(now, reading.spec_drafts_total)
        draft_tokens = self.spec_draft_tokens.observe(now, reading.spec_draft_tokens_total)
        accepted = self.spec_accepted.observe(now, reading.spec_accepted_tokens_total)
        # Counters that appeared mid-window (an engine that exports its spec_decode families
        # once it first drafts) cover only part of the generation counter's window: spread
        # their increase over the whole window, so the speculative share of the window's
        # tokens compares like with like (k and alpha, ratios of these, are unchanged).
        spec_span = self.spec_drafts.span_seconds()
        whole_span = self.generation.span_seconds()
        if (
            drafts is not None
            and draft_tokens is not None
            and accepted is not None
            and 0 < spec_span < whole_span
        ):
            coverage = spec_span / whole_span
            drafts, draft_tokens, accepted = (
                drafts * coverage,
                draft_tokens * coverage,
                accepted * coverage,
            )
        try:
            return live_speculation(
                configured_speculation(self.config),
                drafts_per_second=drafts,
                draft_tokens_per_second=draft_tokens,
                accepted_tokens_per_second=accepted,
                accept_length=reading.spec_accept_length,
                decode_tokens_per_second=decode,
            )
        except SpeculationError as exc:  # odd counters: the setting, or nothing, stands
            log.debug("engine %s: speculative counters ignored: %s", self.name, exc)
            return configured_speculation(self.config)


class EngineStage:
    """The engines of this node: polled in parallel, tracked one :class:`EngineTracker` each."""

    def __init__(
        self,
        timer: SourceTimer,
        configs: Sequence[EngineConfig],
        factory: EngineFactory | None,
        window_seconds: float,
        *,
        discovery: EngineDiscovery | None = None,
        discovery_interval_seconds: float = 60.0,
        process_stats: ProcessStatsProvider | None = None,
        locator: GpuLocator | None = None,
        on_engine_gone: Callable[[str], None] | None = None,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        answer_clock: Callable[[], float] | None = None,
        poll_done: PollDone | None = None,
    ) -> None:
        if configs and factory is None:
            raise ValueError("engines are configured but no engine_factory builds their sources")
        self._timer = timer
        self._factory = factory
        self._window = window_seconds
        self._discovery = discovery if factory is not None else None
        self._discovery_interval = discovery_interval_seconds
        self._next_discovery = 0.0
        self._discovery_status: SourceStatus | None = None
        self._process_stats = process_stats
        self._locator = locator
        self._on_engine_gone = on_engine_gone
        self.trackers = [
            EngineTracker(config, factory(config), window_seconds)
            for config in configs
            if factory is not None
        ]
        self._wait_seconds = wait_seconds
        self._answer_clock = answer_clock if answer_clock is not None else timer.now
        self._poll_done = poll_done if poll_done is not None else poll_is_done

    def close(self) -> None:
        """Nothing to stop: polls run in daemon threads bounded by their own deadlines."""

    def refresh(self, now: float, statuses: list[SourceStatus]) -> None:
        """Run engine discovery when due: add new engines, drop vanished ones. A failed
        discovery keeps the engines already known."""
        if self._discovery is None or self._factory is None:
            return
        if now >= self._next_discovery:
            self._next_discovery = now + self._discovery_interval
            polled = self._timer.poll(self._discovery)
            if polled.reading is not None:
                self._apply(polled.reading, self._factory)
            self._discovery_status = polled.status
        if self._discovery_status is not None:
            statuses.append(self._discovery_status)

    def _apply(self, engines: Sequence[DiscoveredEngine], factory: EngineFactory) -> None:
        found: dict[str, EngineConfig] = {}
        for engine in engines:
            try:
                found[engine.url] = EngineConfig(url=engine.url, name=engine.name, gpus=engine.gpus)
            except ValueError as error:  # validated like a configured engine
                log.warning("discovered engine %s skipped: %s", engine.name, error)
        current = {tracker.config.url: tracker for tracker in self.trackers}
        kept = [tracker for url, tracker in current.items() if url in found]
        for url, tracker in current.items():
            if url not in found:
                log.info("engine %s is gone", tracker.name)
                if self._on_engine_gone is not None:
                    self._on_engine_gone(tracker.name)
        for url, config in found.items():
            if url not in current:
                log.info("discovered engine %s at %s", config.label, url)
                kept.append(EngineTracker(config, factory(config), self._window))
            elif current[url].config != config:
                current[url].reconfigure(config)
        self.trackers = kept

    def submit(self) -> dict[EngineTracker, Future[TimedReading]]:
        """Start this cycle's polls, each in its engine's thread. An engine whose previous poll is
        still out gets none (at most one outstanding poll per engine, so a hung engine holds
        one thread and never a place in anyone else's queue); a poll that answered after the
        last collect is kept as that engine's late answer."""
        futures: dict[EngineTracker, Future[TimedReading]] = {}
        for tracker in self.trackers:
            if tracker.pending is not None:
                if not self._poll_done(tracker.name, "submit", tracker.pending):
                    continue  # the previous poll is still out; do not pile up another
                tracker.late = tracker.pending  # answered after the last cycle stopped waiting
            tracker.pending = start_poll(tracker.source.poll, tracker.name, self._answer_clock)
            tracker.pending_since = self._timer.now()
            futures[tracker] = tracker.pending
        return futures

    def collect(
        self, futures: dict[EngineTracker, Future[TimedReading]], statuses: list[SourceStatus]
    ) -> dict[EngineTracker, EngineReading]:
        """Wait for this cycle's polls until :attr:`wait_seconds` have passed (real time), then
        take what has answered: a hung engine costs only its own freshness, never the cycle."""
        if futures:
            budget = min(
                self._wait_seconds,
                max(t.source.timeout_seconds for t in futures) + ENGINE_CATCH_UP_SECONDS,
            )
            wait(list(futures.values()), timeout=budget)
        readings: dict[EngineTracker, EngineReading] = {}
        now = self._timer.now()
        for tracker in self.trackers:
            started = now
            if tracker.pending is not None and self._poll_done(
                tracker.name, "collect", tracker.pending
            ):
                answered: Future[TimedReading] | None = tracker.pending
                started = tracker.pending_since
                tracker.pending = None
                restart = _restart_reason(tracker.late)  # a late answer superseded
            else:
                answered, restart = tracker.late, None
            tracker.late = None
            error: str | None = None
            if answered is not None:
                rejected: tuple[str, ...] = ()
                try:
                    timed = answered.result()
                    tracker.answered_at = timed.at
                    reading = check_reading(timed.reading)
                    if restart is not None and reading.restart_reason is None:
                        # The superseded answer saw the identity change: keep its verdict.
                        reading = dataclasses.replace(reading, restart_reason=restart)
                    readings[tracker] = reading
                    rejected = reading.rejected
                except EngineSourceError as exc:
                    error = redact_url(str(exc))
                except Exception as exc:  # an adapter bug is that engine's problem alone
                    error = error_text(exc)
                tracker.last_error = error
                status = self._timer.status(tracker.status_name, "engine", started, error)
                if rejected:
                    status = dataclasses.replace(status, rejected=rejected)
                tracker.last_status = status if error is None else None
            else:
                waited = now - tracker.pending_since
                timeout = tracker.source.timeout_seconds
                previous = tracker.last_status
                if previous is not None and waited < timeout:
                    # Still within its deadline: the engine keeps its last answer one more
                    # cycle (its last_success does not advance); no flapping on slow engines.
                    statuses.append(previous)
                    tracker.reuse_view = True
                    continue
                error = f"no answer within {timeout} s (its poll is still out)"
                if tracker.last_error is not None:  # the last answer said why: keep saying it
                    error = f"{tracker.last_error} (the next poll is still out)"
                status = self._timer.status(tracker.status_name, "engine", now, error)
                tracker.last_status = None
            statuses.append(status)
            self._timer.log_change(f"engine {tracker.name}", error)
        return readings

    def samples(
        self, readings: dict[EngineTracker, EngineReading], now: float, gpus: GpuSourceResult
    ) -> list[EngineSample]:
        out = []
        for tracker in self.trackers:
            reading = readings.get(tracker)
            if tracker.reuse_view and tracker.last_view is not None:
                tracker.reuse_view = False
                out.append(EngineSample(tracker.last_view, tracker.model, tracker.draft_model))
                continue
            tracker.reuse_view = False
            if reading is None:
                view = tracker.down_view()
            else:
                tracker.update_model(reading)
                self._map_gpus(tracker, gpus)
                cpu = None
                if self._process_stats is not None:
                    cpu = self._process_stats.stats(tracker.name, tracker.pid)
                tracker.gpu_memory_bytes = self._gpu_memory(tracker, gpus)
                # Rates at the time the answer was read (a late one was read cycles ago).
                view = tracker.up_view(reading, min(now, tracker.answered_at), cpu)
            tracker.last_view = view if view.up else None
            out.append(EngineSample(view, tracker.model, tracker.draft_model))
        return out

    def _gpu_memory(self, tracker: EngineTracker, gpus: GpuSourceResult) -> float | None:
        """GPU memory of the engine's process tree on its GPUs; ``None`` when its process is
        unknown or NVML gives no per-process figure (never guessed from other processes)."""
        # Optional: a provider that cannot list process trees (a recording) attributes none.
        tree_pids: Callable[[int], tuple[int, ...]] | None = getattr(
            self._process_stats, "tree_pids", None
        )
        if tracker.pid is None or tree_pids is None or not tracker.gpus:
            return None
        pids = set(tree_pids(tracker.pid))
        figures = [
            used
            for reading in gpus.readings
            if reading.uuid in tracker.gpus and reading.up
            for pid, used in reading.process_memory_bytes
            if pid in pids
        ]
        return float(sum(figures)) if figures else None

    def _map_gpus(self, tracker: EngineTracker, gpus: GpuSourceResult) -> None:
        config = tracker.config
        if config.gpus is not None:
            tracker.pid = config.pid
            try:
                tracker.gpus = resolve_configured_gpus(tracker.name, config.gpus, gpus.identities)
                tracker.mapping = "config"
            except ValueError as exc:  # e.g. index 3 on a node with two GPUs
                tracker.gpus = ()
                tracker.mapping = str(exc)
                self._timer.log_change(f"engine {tracker.name} GPUs", str(exc))
            return
        if tracker.mapping == "discovered" and tracker.gpus:
            return
        if self._locator is None:
            tracker.mapping = "no GPUs configured and discovery is off"
            return
        pid, found, how = self._locator.locate(tracker.name, config.url, gpus)
        tracker.pid = config.pid or pid
        tracker.gpus = found
        tracker.mapping = how
