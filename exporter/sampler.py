"""One thread, one fixed interval: poll every source, derive rates, run the roofline core and the
verdict, and publish an immutable :class:`~rooftop.exporter.snapshot.Snapshot`.

Scrapes only ever read the latest snapshot. A source that fails is marked down for the cycle
(``rooftop_source_up`` 0, its series absent) while every other source stays current; nothing a
failing source last said is presented as current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from rooftop.classifiers.hardware import (
    GpuSpec,
    bandwidth_matches_catalog,
    identify_gpu,
    lookup_gpu,
    ridge_point_flops_per_byte,
    theoretical_bandwidth_bytes_per_second,
    with_overrides,
)
from rooftop.classifiers.models import ModelConfigError, kv_bytes_per_token
from rooftop.classifiers.operating_point import LiveWorkload, OperatingPoint, operating_point
from rooftop.classifiers.roofline import Roof
from rooftop.classifiers.verdict import (
    HysteresisState,
    Verdict,
    VerdictEvidence,
    VerdictThresholds,
    classify_held,
    published,
)
from rooftop.exporter.model_resolution import ResolvedModel, resolve_model
from rooftop.exporter.rates import RatioOfCounters, WindowedCounter, WindowedMean
from rooftop.exporter.settings import EngineConfig, Settings, redact_url
from rooftop.exporter.snapshot import EngineView, GpuView, Snapshot, SourceStatus, TargetView
from rooftop.exporter.sources.dcgm import merge_dcgm_activity
from rooftop.exporter.sources.engine import EngineSource, EngineSourceError
from rooftop.exporter.sources.engines.base import EngineReading
from rooftop.exporter.sources.gpu_mapping import resolve_configured_gpus
from rooftop.exporter.telemetry import (
    GpuIdentity,
    GpuReading,
    GpuSourceResult,
    ProcessCpu,
    TelemetryTier,
)

log = logging.getLogger(__name__)

VERSION = "0.1.0"
ENGINE_CATCH_UP_SECONDS = 1.0
"""Engine polls get their own timeout plus this before the sampler stops waiting."""
THROTTLE_REASONS = frozenset(
    {
        "sw_power_cap",
        "hw_slowdown",
        "hw_thermal_slowdown",
        "sw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }
)


class GpuSource(Protocol):
    """A GPU source: NVML (real or fake) or DCGM. ``read`` raises only when the whole source
    failed; a single GPU's failure is a reading with ``up`` False."""

    name: str

    def read(self) -> GpuSourceResult: ...


class ProcessStatsProvider(Protocol):
    """Engine process-tree CPU figures (psutil on a real node, the script on the demo)."""

    def stats(self, engine: str, pid: int | None) -> ProcessCpu | None: ...


class GpuLocator(Protocol):
    """Finds an engine's process and the GPUs it runs on, when the config does not say."""

    def locate(
        self, engine: EngineConfig, gpus: GpuSourceResult
    ) -> tuple[int | None, tuple[str, ...], str]:
        """``(pid, gpu uuids, how)``; ``how`` is ``discovered`` or the reason nothing was."""
        ...


class EngineDiscovery(Protocol):
    """Finds engines at run time (e.g. annotated pods on this Kubernetes node)."""

    name: str

    def engines(self) -> Sequence[EngineConfig]:
        """The engines that exist now; raises when discovery itself failed."""
        ...


@dataclass
class _EngineState:
    config: EngineConfig
    source: EngineSource
    window_seconds: float
    generation: WindowedCounter = field(init=False)
    prompt: WindowedCounter = field(init=False)
    computed_prefill: WindowedCounter = field(init=False)
    flops: WindowedCounter = field(init=False)
    read_bytes: WindowedCounter = field(init=False)
    inter_token: RatioOfCounters = field(init=False)
    batch: WindowedMean = field(init=False)
    resident_tokens: WindowedMean = field(init=False)
    last_success_unix: float | None = None
    pending: Future[EngineReading] | None = None
    model_key: str | None = None
    model: ResolvedModel | None = None
    pid: int | None = None
    gpus: tuple[str, ...] = ()
    mapping: str = "not yet mapped"

    def __post_init__(self) -> None:
        window = self.window_seconds
        self.generation = WindowedCounter(window)
        self.prompt = WindowedCounter(window)
        self.computed_prefill = WindowedCounter(window)
        self.flops = WindowedCounter(window)
        self.read_bytes = WindowedCounter(window)
        self.inter_token = RatioOfCounters(window)
        self.batch = WindowedMean(window)
        self.resident_tokens = WindowedMean(window)

    def forget_rates(self) -> None:
        for counter in (
            self.generation,
            self.prompt,
            self.computed_prefill,
            self.flops,
            self.read_bytes,
            self.batch,
            self.resident_tokens,
        ):
            counter.reset()
        self.inter_token = RatioOfCounters(self.window_seconds)


class Sampler:
    """Polls the sources every ``settings.interval_seconds`` and publishes snapshots."""

    def __init__(
        self,
        settings: Settings,
        gpu_source: GpuSource | None,
        engines: Sequence[EngineSource],
        *,
        dcgm_source: GpuSource | None = None,
        process_stats: ProcessStatsProvider | None = None,
        gpu_locator: GpuLocator | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        before_cycle: Callable[[float], None] | None = None,
        engine_discovery: EngineDiscovery | None = None,
        engine_factory: Callable[[EngineConfig], EngineSource] | None = None,
        on_publish: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self._settings = settings
        self._gpu_source = gpu_source
        self._dcgm_source = dcgm_source
        self._process_stats = process_stats
        self._locator = gpu_locator
        self._monotonic = monotonic
        self._wall = wall_clock
        self._before_cycle = before_cycle
        self._on_publish = on_publish
        self._discovery = engine_discovery
        self._engine_factory = engine_factory
        self._next_discovery = 0.0
        self._discovery_status: SourceStatus | None = None
        configs = {config.url: config for config in settings.engines}
        self._engines = [
            _EngineState(
                configs.get(source.url, EngineConfig(url=source.url, name=source.name)),
                source,
                settings.rate_window_seconds,
            )
            for source in engines
        ]
        overrides: dict[str, Any] = dict(settings.verdict_thresholds)
        self._thresholds = replace(
            VerdictThresholds(hold_samples=settings.verdict_hold_samples), **overrides
        )
        self._hysteresis: dict[tuple[str, str], HysteresisState] = {}
        self._known_gpus: dict[str, GpuIdentity] = {}
        self._last_success: dict[str, float] = {}
        self._last_error: dict[str, str | None] = {}
        self._dcgm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dcgm")
        self._dcgm_pending: Future[GpuSourceResult] | None = None
        self._spec_cache: dict[str, GpuSpec | None] = {}
        self._latest: Snapshot | None = None
        self._sequence = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        pool_size = 16 if engine_discovery is not None else max(1, min(16, len(self._engines)))
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="engine-poll")

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def latest(self) -> Snapshot | None:
        return self._latest

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_seconds)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._dcgm_pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        interval = self._settings.interval_seconds
        next_at = self._monotonic()
        while not self._stop.is_set():
            try:
                self.run_cycle()
            except Exception:  # a bug in one cycle must not end the daemon
                log.exception("sampler cycle failed; the previous snapshot stays published")
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
        self._refresh_engines(started, statuses)
        futures = self._submit_engine_polls()
        dcgm_future = self._submit_dcgm_read()
        gpu_result = self._read_gpus(statuses, dcgm_future)
        engine_readings = self._collect_engine_polls(futures, statuses)
        now = self._monotonic()
        gpu_views = self._gpu_views(gpu_result)
        engine_views = [
            self._engine_view(state, engine_readings.get(state.source.name), now, gpu_result)
            for state in self._engines
        ]
        targets = self._targets(gpu_views, engine_views)
        self._sequence += 1
        snapshot = Snapshot(
            sequence=self._sequence,
            unix_seconds=self._wall(),
            monotonic_seconds=now,
            cycle_seconds=self._monotonic() - started,
            demo=self._settings.demo,
            gpus=tuple(gpu_views),
            engines=tuple(engine_views),
            targets=tuple(targets),
            sources=tuple(statuses),
            version=VERSION,
        )
        self._latest = snapshot
        if self._on_publish is not None:
            self._on_publish(snapshot)  # e.g. render the exposition here, not in a scrape
        return snapshot

    def _status(self, source: str, kind: str, started: float, error: str | None) -> SourceStatus:
        if error is None:
            self._last_success[source] = self._wall()
        return SourceStatus(
            source=source,
            kind=kind,
            up=error is None,
            duration_seconds=self._monotonic() - started,
            last_success_unix_seconds=self._last_success.get(source),
            error=error,
        )

    def _refresh_engines(self, now: float, statuses: list[SourceStatus]) -> None:
        """Run engine discovery when due: add new engines, drop vanished ones. A failed
        discovery keeps the engines already known."""
        if self._discovery is None or self._engine_factory is None:
            return
        if now >= self._next_discovery:
            self._next_discovery = now + self._settings.discovery_interval_seconds
            error = None
            try:
                found = {config.url: config for config in self._discovery.engines()}
            except Exception as exc:
                error = redact_url(f"{type(exc).__name__}: {exc}")
                log.warning("engine discovery (%s) failed: %s", self._discovery.name, error)
            if error is None:
                current = {state.config.url: state for state in self._engines}
                kept = [state for url, state in current.items() if url in found]
                for state in current.values():
                    if state.config.url not in found:
                        log.info("engine %s is gone", state.source.name)
                        for key in [k for k in self._hysteresis if k[1] == state.source.name]:
                            del self._hysteresis[key]
                for url, config in found.items():
                    if url not in current:
                        log.info("discovered engine %s at %s", config.label, url)
                        kept.append(
                            _EngineState(
                                config,
                                self._engine_factory(config),
                                self._settings.rate_window_seconds,
                            )
                        )
                    elif current[url].config != config:
                        current[url].config = config  # e.g. its GPUs changed
                        current[url].mapping = "not yet mapped"
                self._engines = kept
            self._discovery_status = self._status(self._discovery.name, "discovery", now, error)
        if self._discovery_status is not None:
            statuses.append(self._discovery_status)

    # -- GPUs ------------------------------------------------------------------------------

    def _log_change(self, source: str, error: str | None) -> None:
        """Log a source going down (or its error changing) and coming back, once each."""
        previous = self._last_error.get(source)
        if error != previous:
            if error is not None:
                log.warning("%s down: %s", source, error)
            else:
                log.info("%s is back", source)
        self._last_error[source] = error

    def _submit_dcgm_read(self) -> Future[GpuSourceResult] | None:
        """The dcgm-exporter fetch runs beside the cycle, so a slow one cannot stall it."""
        if self._dcgm_source is None:
            return None
        if self._dcgm_pending is not None and not self._dcgm_pending.done():
            return None
        self._dcgm_pending = self._dcgm_pool.submit(self._dcgm_source.read)
        return self._dcgm_pending

    def _read_gpus(
        self, statuses: list[SourceStatus], dcgm_future: Future[GpuSourceResult] | None = None
    ) -> GpuSourceResult:
        identities: tuple[GpuIdentity, ...] = ()
        readings: tuple[GpuReading, ...] = ()
        if self._gpu_source is not None:
            started = self._monotonic()
            try:
                result = self._gpu_source.read()
                identities, readings = result.identities, result.readings
                error = None
                if readings and not any(reading.up for reading in readings):
                    # Nothing readable (driver unloaded, re-init failing): the source is down.
                    error = "; ".join(result.errors) or "no GPU could be read"
            except Exception as exc:  # the whole source failed: every GPU is down
                error = redact_url(f"{type(exc).__name__}: {exc}")
            self._log_change(self._gpu_source.name, error)
            statuses.append(self._status(self._gpu_source.name, "gpu", started, error))
        if self._dcgm_source is not None and dcgm_future is not None:
            started = self._monotonic()
            deadline = self._settings.engine_timeout_seconds + ENGINE_CATCH_UP_SECONDS
            try:
                merged = merge_dcgm_activity(
                    GpuSourceResult(identities, readings), dcgm_future.result(timeout=deadline)
                )
                identities, readings = merged.identities, merged.readings
                error = None
            except FutureTimeout:
                error = f"no answer within {deadline:g} s"
            except Exception as exc:
                error = redact_url(f"{type(exc).__name__}: {exc}")
            self._log_change(self._dcgm_source.name, error)
            statuses.append(self._status(self._dcgm_source.name, "gpu", started, error))
        elif self._dcgm_source is not None:
            error = "previous read still has no answer"
            self._log_change(self._dcgm_source.name, error)
            statuses.append(self._status(self._dcgm_source.name, "gpu", self._monotonic(), error))
        for identity in identities:
            self._known_gpus[identity.uuid] = identity
        # A GPU known before and missing now is reported down, never silently dropped.
        seen = {reading.uuid for reading in readings}
        lost = tuple(
            GpuReading(
                uuid=identity.uuid,
                index=identity.index,
                up=False,
                tier="none",
                timestamp=self._monotonic(),
                error="not reported by any GPU source this cycle",
            )
            for uuid, identity in self._known_gpus.items()
            if uuid not in seen
        )
        return GpuSourceResult(tuple(self._known_gpus.values()), readings + lost)

    def _spec_for(self, identity: GpuIdentity) -> GpuSpec | None:
        if identity.uuid in self._spec_cache:
            return self._spec_cache[identity.uuid]
        spec = identify_gpu(identity.name, identity.pci_device_id)
        if spec is None and self._settings.gpu_model:
            spec = lookup_gpu(self._settings.gpu_model)
        if spec is not None:
            spec = self._overridden(spec, identity.uuid)
        self._spec_cache[identity.uuid] = spec
        return spec

    def _overridden(self, spec: GpuSpec, uuid: str = "") -> GpuSpec:
        override = self._settings.gpu_overrides.get(uuid) or self._settings.gpu_overrides.get(
            spec.id
        )
        if override is None:
            return spec
        return with_overrides(
            spec,
            peak_flops_per_second=override.peak_flops_per_second,
            memory_bandwidth_bytes_per_second=override.memory_bandwidth_bytes_per_second,
            note=override.note,
        )

    def _gpu_views(self, result: GpuSourceResult) -> list[GpuView]:
        readings = {reading.uuid: reading for reading in result.readings}
        views = []
        for identity in sorted(result.identities, key=lambda i: (i.index, i.uuid)):
            reading = readings.get(identity.uuid)
            spec = self._spec_for(identity)
            up = reading is not None and reading.up
            tier: TelemetryTier = reading.tier if reading is not None and up else "none"
            peaks = dict(spec.peak_flops_per_second) if spec is not None else {}
            bandwidth = spec.memory_bandwidth_bytes_per_second if spec is not None else None
            compute_dtype = "bf16" if "bf16" in peaks else next(iter(peaks), "bf16")
            ridge = None
            if bandwidth and compute_dtype in peaks:
                ridge = ridge_point_flops_per_byte(peaks[compute_dtype], bandwidth)
            nvml_bandwidth = None
            if identity.max_memory_clock_hz and identity.memory_bus_width_bits:
                nvml_bandwidth = theoretical_bandwidth_bytes_per_second(
                    identity.max_memory_clock_hz, identity.memory_bus_width_bits
                )
                if spec is not None and not bandwidth_matches_catalog(spec, nvml_bandwidth):
                    self._log_change(
                        f"GPU {identity.uuid} bandwidth",
                        f"NVML's clock x bus width gives {nvml_bandwidth / 1e12:.2f} TB/s, the "
                        f"catalog's {spec.id} {bandwidth / 1e12 if bandwidth else 0:.2f} TB/s: "
                        "a different SKU, or set gpu_overrides",
                    )
            dram = None
            if up and reading is not None and reading.dram_active_ratio is not None and bandwidth:
                dram = reading.dram_active_ratio * bandwidth
            views.append(
                GpuView(
                    identity=identity,
                    catalog_id=spec.id if spec is not None else None,
                    up=up,
                    tier=tier,
                    reading=reading,
                    peak_flops_per_second=peaks,
                    peak_bandwidth_bytes_per_second=bandwidth,
                    nvml_bandwidth_bytes_per_second=nvml_bandwidth,
                    compute_dtype=compute_dtype,
                    ridge_point_flops_per_byte=ridge,
                    dram_bandwidth_bytes_per_second=dram,
                    mig_supported=reading.mig_supported if reading is not None else None,
                    mig_instances=len(reading.mig_instances) if reading is not None else 0,
                )
            )
        return views

    # -- engines ---------------------------------------------------------------------------

    def _submit_engine_polls(self) -> dict[str, Future[EngineReading]]:
        futures: dict[str, Future[EngineReading]] = {}
        for state in self._engines:
            if state.pending is not None and not state.pending.done():
                continue  # the previous poll is still out; do not pile up another
            state.pending = self._pool.submit(state.source.poll)
            futures[state.source.name] = state.pending
        return futures

    def _collect_engine_polls(
        self, futures: dict[str, Future[EngineReading]], statuses: list[SourceStatus]
    ) -> dict[str, EngineReading]:
        readings: dict[str, EngineReading] = {}
        started = self._monotonic()
        for state in self._engines:
            name = state.source.name
            future = futures.get(name)
            error: str | None = None
            if future is None:
                error = "previous poll still has no answer"
            else:
                remaining = (
                    started
                    + state.source.timeout_seconds
                    + ENGINE_CATCH_UP_SECONDS
                    - self._monotonic()
                )
                try:
                    readings[name] = future.result(timeout=max(0.0, remaining))
                except FutureTimeout:
                    error = f"no answer within {state.source.timeout_seconds} s"
                except EngineSourceError as exc:
                    error = redact_url(str(exc))
                except Exception as exc:  # an adapter bug is that engine's problem alone
                    error = redact_url(f"{type(exc).__name__}: {exc}")
            statuses.append(self._status(redact_url(state.source.url), "engine", started, error))
            self._log_change(f"engine {name}", error)
        return readings

    def _engine_view(
        self,
        state: _EngineState,
        reading: EngineReading | None,
        now: float,
        gpus: GpuSourceResult,
    ) -> EngineView:
        config = state.config
        if reading is None:
            # Down: keep what is static (name, mapping), drop every live figure and the rate
            # history so a later rate never spans the outage.
            state.forget_rates()
            return EngineView(
                name=state.source.name,
                url=config.url,
                up=False,
                family=None,
                version_family=None,
                model=state.model_key,
                model_resolved=state.model.resolved_id if state.model else None,
                weights=None,
                kv_dtype=None,
                tensor_parallel=max(1, len(state.gpus)),
                gpus=state.gpus,
                mapping=state.mapping,
            )
        model_key = config.model or reading.model
        if model_key != state.model_key:
            if state.model_key is not None:
                state.forget_rates()  # the engine now serves another model
            state.model_key = model_key
            state.model = resolve_model(model_key, config, reading) if model_key else None
            if state.model is not None and state.model.error is not None:
                # Once per model change: the roofline stays empty, verdicts go on without it.
                log.warning("engine %s: %s", state.source.name, state.model.error)
        elif model_key and state.model is not None and state.model.arch is not None:
            state.model = resolve_model(model_key, config, reading, cached=state.model)
        self._map_gpus(state, gpus)

        decode = state.generation.observe(now, reading.generation_tokens_total)
        prompt = state.prompt.observe(now, reading.prompt_tokens_total)
        computed = state.computed_prefill.observe(now, reading.prefill_computed_tokens_total)
        prefill = computed if reading.prefill_computed_tokens_total is not None else prompt
        flops = state.flops.observe(now, reading.estimated_flops_total)
        read_bytes = state.read_bytes.observe(now, reading.estimated_read_bytes_total)
        itl = state.inter_token.observe(now, reading.inter_token_latency_sum_count)

        resident_tokens = None
        if reading.kv_usage_ratio is not None and reading.kv_capacity_tokens is not None:
            resident_tokens = reading.kv_usage_ratio * reading.kv_capacity_tokens
        # Rates are window averages: the batch and KV they are set against must be too.
        mean_batch = state.batch.observe(now, reading.requests_running)
        mean_resident = state.resident_tokens.observe(now, resident_tokens)
        mean_context = None
        if mean_resident is not None and mean_batch:
            mean_context = mean_resident / mean_batch
        model = state.model
        resident_bytes = None
        if resident_tokens is not None and model is not None and model.arch is not None:
            resident_bytes = resident_tokens * kv_bytes_per_token(model.arch, model.kv_dtype)
        stats = None
        if self._process_stats is not None:
            stats = self._process_stats.stats(state.source.name, state.pid)
        return EngineView(
            name=state.source.name,
            url=config.url,
            up=True,
            family=reading.family,
            version_family=reading.version_family,
            model=reading.model or config.model,
            model_resolved=model.resolved_id if model is not None else None,
            weights=model.weights if model is not None else None,
            kv_dtype=model.kv_dtype if model is not None else None,
            tensor_parallel=config.tensor_parallel or max(1, len(state.gpus)),
            gpus=state.gpus,
            mapping=state.mapping,
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
            inter_token_latency_seconds=itl,
            process_cpu_cores=stats.cpu_cores if stats else None,
            process_busiest_thread_ratio=stats.busiest_thread_ratio if stats else None,
            missing=reading.missing,
        )

    def _map_gpus(self, state: _EngineState, gpus: GpuSourceResult) -> None:
        config = state.config
        if config.gpus is not None:
            state.pid = config.pid
            try:
                state.gpus = resolve_configured_gpus(
                    state.source.name, config.gpus, gpus.identities
                )
                state.mapping = "config"
            except ValueError as exc:  # e.g. index 3 on a node with two GPUs
                state.gpus = ()
                state.mapping = str(exc)
                self._log_change(f"engine {state.source.name} GPUs", str(exc))
            return
        if state.mapping == "discovered" and state.gpus:
            return
        if self._locator is None:
            state.mapping = "no GPUs configured and discovery is off"
            return
        pid, found, how = self._locator.locate(config, gpus)
        state.pid = config.pid or pid
        state.gpus = found
        state.mapping = how

    # -- roofline and verdict per target ---------------------------------------------------

    def _targets(self, gpus: list[GpuView], engines: list[EngineView]) -> list[TargetView]:
        by_uuid = {view.identity.uuid: view for view in gpus}
        claimed: set[str] = set()
        targets: list[TargetView] = []
        for engine in engines:
            engine_gpus = [by_uuid[uuid] for uuid in engine.gpus if uuid in by_uuid]
            if engine_gpus:
                for gpu in engine_gpus:
                    claimed.add(gpu.identity.uuid)
                    targets.append(self._target(gpu, engine))
            elif engine.up:
                targets.append(self._target(None, engine))
        for gpu in gpus:
            if gpu.identity.uuid not in claimed:
                targets.append(self._target(gpu, None))
        return targets

    def _engine_only_spec(self) -> GpuSpec | None:
        key = self._settings.gpu_model
        if not key:
            return None
        if key not in self._spec_cache:
            self._spec_cache[key] = self._overridden(lookup_gpu(key))
        return self._spec_cache[key]

    def _target(self, gpu: GpuView | None, engine: EngineView | None) -> TargetView:
        gpu_label = str(gpu.identity.index) if gpu is not None else ""
        uuid = gpu.identity.uuid if gpu is not None else ""
        engine_label = engine.name if engine is not None else ""
        model_label = (engine.model or "") if engine is not None else ""
        key = (uuid, engine_label)
        peak_flops = peak_bandwidth = None
        if gpu is not None:
            peak_flops = gpu.peak_flops_per_second.get(gpu.compute_dtype)
            peak_bandwidth = gpu.peak_bandwidth_bytes_per_second
        else:
            spec = self._engine_only_spec()
            if spec is not None:
                peak_flops = spec.peak_flops_per_second.get("bf16")
                peak_bandwidth = spec.memory_bandwidth_bytes_per_second
        point = self._operating_point(gpu, engine, peak_flops, peak_bandwidth)
        reading = gpu.reading if gpu is not None and gpu.up else None
        verdict = self._verdict(key, gpu, reading, engine, point, peak_flops, peak_bandwidth)
        ridge = None
        if peak_flops and peak_bandwidth:
            ridge = ridge_point_flops_per_byte(peak_flops, peak_bandwidth)
        return TargetView(
            gpu=gpu_label,
            uuid=uuid,
            engine=engine_label,
            model=model_label,
            peak_flops_per_second=peak_flops,
            peak_bandwidth_bytes_per_second=peak_bandwidth,
            ridge_point_flops_per_byte=ridge,
            point=point,
            verdict=verdict,
        )

    def _operating_point(
        self,
        gpu: GpuView | None,
        engine: EngineView | None,
        peak_flops: float | None,
        peak_bandwidth: float | None,
    ) -> OperatingPoint | None:
        if engine is None or not engine.up or not peak_flops or not peak_bandwidth:
            return None
        state = next(s for s in self._engines if s.source.name == engine.name)
        model = state.model
        if model is None or model.arch is None:
            return None
        context = engine.mean_context_tokens
        try:
            return operating_point(
                LiveWorkload(
                    model=model.arch,
                    roof=Roof(peak_flops, peak_bandwidth),
                    weights=model.weights,
                    kv_dtype=model.kv_dtype,
                    tensor_parallel=engine.tensor_parallel,
                    batch=engine.requests_running_mean,
                    context_tokens=round(context)
                    if context is not None
                    else self._settings.default_context_tokens,
                    decode_tokens_per_second=engine.decode_tokens_per_second,
                    prefill_tokens_per_second=engine.prefill_tokens_per_second,
                    dram_bytes_per_second=gpu.dram_bandwidth_bytes_per_second if gpu else None,
                )
            )
        except (ValueError, ModelConfigError) as exc:
            log.warning("roofline for %s failed: %s", engine.name, exc)
            return None

    def _verdict(
        self,
        key: tuple[str, str],
        gpu: GpuView | None,
        reading: GpuReading | None,
        engine: EngineView | None,
        point: OperatingPoint | None,
        peak_flops: float | None,
        peak_bandwidth: float | None,
    ) -> Verdict | None:
        if gpu is not None and not gpu.up and (engine is None or not engine.up):
            self._hysteresis.pop(key, None)
            return None  # nothing is known about this GPU this cycle
        tier: TelemetryTier = reading.tier if reading is not None else "none"
        hardware = reading is not None and tier in ("gpm", "dcgm")
        evidence = VerdictEvidence(
            tier=tier,
            dram_active_ratio=reading.dram_active_ratio if hardware and reading else None,
            sm_active_ratio=reading.sm_active_ratio if hardware and reading else None,
            tensor_active_ratio=reading.tensor_active_ratio if hardware and reading else None,
            kernel_busy_ratio=reading.kernel_busy_ratio if reading is not None else None,
            decode_tokens_per_second=engine.decode_tokens_per_second if engine else None,
            prefill_tokens_per_second=engine.prefill_tokens_per_second if engine else None,
            batch_size=engine.requests_running_mean if engine else None,
            model_bandwidth_utilization_ratio=(
                point.model_bandwidth_utilization_ratio if point else None
            ),
            model_flops_utilization_ratio=point.model_flops_utilization_ratio if point else None,
            arithmetic_intensity_flops_per_byte=(
                point.workload_arithmetic_intensity if point else None
            ),
            ridge_point_flops_per_byte=(
                ridge_point_flops_per_byte(peak_flops, peak_bandwidth)
                if peak_flops and peak_bandwidth
                else None
            ),
            host_busiest_thread_ratio=engine.process_busiest_thread_ratio if engine else None,
            throttled=bool(
                reading is not None and THROTTLE_REASONS & set(reading.clock_event_reasons)
            ),
        )
        state = classify_held(
            self._hysteresis.get(key, HysteresisState()), evidence, self._thresholds
        )
        self._hysteresis[key] = state
        return published(state)


__all__ = ["EngineDiscovery", "GpuLocator", "GpuSource", "ProcessStatsProvider", "Sampler"]
