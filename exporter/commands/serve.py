"""``rooftop serve``: the exporter daemon (``--demo`` for the simulated node)."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.memory import limit_malloc_arenas
from rooftop.exporter.pipeline.engines import EngineDiscovery, GpuLocator, ProcessStatsProvider
from rooftop.exporter.pipeline.gpus import GpuSource
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.server import (
    ExporterHTTPServer,
    make_handler,
    serve_in_thread,
)
from rooftop.exporter.settings import (
    DEFAULT_PORT,
    ConfigError,
    EngineConfig,
    Settings,
    listen_host_port,
    load_settings,
)
from rooftop.exporter.snapshot import Snapshot
from rooftop.exporter.sources.gpu_mapping import PortGpuLocator
from rooftop.exporter.sources.host import EngineCpuStats
from rooftop.exporter.sources.local_engines import LocalEngineDiscovery
from rooftop.exporter.sources.nvml import NvmlBackend, NvmlSource, NvmlUnavailableError
from rooftop.exporter.sources.nvml_start import START_RETRY_SECONDS, RetryingNvmlSource
from rooftop.exporter.web.history import SnapshotHistory
from rooftop.exporter.web.landing import landing_page
from rooftop.exporter.webconfig import WebConfig, load_web_config
from rooftop.exporter.wiring import dcgm_source, engine_source, kubernetes_discovery

log = logging.getLogger("rooftop")

SCRAPE_GIL_SWITCH_SECONDS = 0.00025
"""GIL switch interval while serving. A scrape needs the GIL a few times (accept, read, write);
each time a CPU-bound thread (an engine parse) holds it, the scrape waits up to one interval.
Ten scrapes at once with eight ~0.5 MB engines: p99 7.2-8.5 ms at 1 ms, 4.7-5.8 ms at 0.25 ms,
no gain at 0.1 ms (two rounds each, interleaved; taking engine parses one at a time behind a
lock did not help). Measured with benchmarks/side_by_side.py's harness."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the exporter: poll GPUs and engines, serve /metrics",
        description="Poll local GPUs (NVML, or a dcgm-exporter) and LLM engines' /metrics, "
        "classify each GPU's bottleneck live and serve it to Prometheus. Every flag can also "
        "be set as ROOFTOP_<FIELD> in the environment or in the --config YAML file.",
    )
    parser.add_argument(
        "--web.listen-address",
        dest="listen_address",
        metavar="ADDR",
        help=f"address to listen on (default :{DEFAULT_PORT})",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML settings file")
    parser.add_argument(
        "--engine",
        dest="engines",
        action="append",
        metavar="[NAME=]URL",
        help=(
            "an engine's metrics URL, e.g. http://127.0.0.1:8000/metrics, optionally named: "
            "prefill=http://127.0.0.1:8000/metrics (repeatable)"
        ),
    )
    parser.add_argument(
        "--interval",
        dest="interval_seconds",
        type=float,
        metavar="SECONDS",
        help="sampling interval (default 1)",
    )
    parser.add_argument(
        "--dcgm-url",
        dest="dcgm_url",
        metavar="URL",
        help="a dcgm-exporter /metrics URL (profiling tier for GPUs without GPM)",
    )
    parser.add_argument(
        "--gpu-model",
        dest="gpu_model",
        metavar="ID",
        help="catalog id of the GPU, for engines whose GPUs cannot be seen",
    )
    parser.add_argument(
        "--no-nvml",
        dest="nvml",
        action="store_const",
        const=False,
        help="do not read local GPUs through NVML",
    )
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="FILE",
        help="exporter-toolkit web config: TLS and basic auth",
    )
    parser.add_argument(
        "--demo",
        action="store_const",
        const=True,
        help="run against the built-in simulated node (no GPU needed)",
    )
    parser.add_argument("--demo-gpus", dest="demo_gpus", type=int, metavar="N")
    parser.add_argument("--demo-engines", dest="demo_engines", type=int, metavar="N")
    parser.add_argument(
        "--demo-cycle-seconds",
        dest="demo_cycle_seconds",
        type=float,
        metavar="SECONDS",
        help="length of the demo's load cycle (default 120)",
    )
    parser.add_argument(
        "--demo-gpu", dest="demo_gpu", metavar="ID", help="catalog id of the demo's GPUs"
    )
    parser.add_argument(
        "--demo-model", dest="demo_model", metavar="ID", help="catalog model the demo serves"
    )
    parser.add_argument(
        "--demo-offset-seconds",
        dest="demo_offset_seconds",
        type=float,
        metavar="SECONDS",
        help="where in its load cycle the demo starts (default 0)",
    )
    parser.add_argument("--demo-seed", dest="demo_seed", type=int, metavar="N")
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="serve a recording made by `rooftop record` instead of reading sources",
    )
    parser.add_argument(
        "--replay-speed",
        dest="replay_speed",
        type=float,
        default=1.0,
        metavar="X",
        help="1 replays at the recorded pace (default), 2 twice as fast, 0 as fast as possible",
    )
    parser.add_argument(
        "--replay-exit",
        dest="replay_exit",
        action="store_true",
        help="exit when the recording ends (default: keep serving its last snapshot)",
    )
    # Test hook (the validation script's dry run): a fake NVML backend driven by a JSON file.
    parser.add_argument("--fake-nvml", dest="fake_nvml", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.set_defaults(func=run)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "listen_address",
        "engines",
        "interval_seconds",
        "dcgm_url",
        "gpu_model",
        "nvml",
        "web_config_file",
        "demo",
        "demo_gpus",
        "demo_engines",
        "demo_cycle_seconds",
        "demo_gpu",
        "demo_model",
        "demo_offset_seconds",
        "demo_seed",
    )
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.replay is not None:
        return replay(args)
    try:
        settings = load_settings(_flags(args), args.config)
        web_config = load_web_config(settings.web_config_file) if settings.web_config_file else None
        if web_config is not None:
            web_config.ssl_context()  # fail at start, not at the first scrape
        from rooftop.exporter.commands.record import fake_nvml_backend

        backend = fake_nvml_backend(getattr(args, "fake_nvml", None))
    except ConfigError as error:
        print(f"rooftop: {error}", file=sys.stderr)
        return 2

    def reload() -> Settings:
        return load_settings(_flags(args), args.config)

    try:
        return serve(settings, web_config, nvml_backend=backend, reload=reload)
    except ConfigError as error:
        print(f"rooftop: {error}", file=sys.stderr)
        return 2


def replay(args: argparse.Namespace) -> int:
    """``serve --replay FILE``: the pipeline on a recording, served on /metrics.

    The recorded settings are used (this machine's environment and config file are not read),
    except the listen address and web config, which are this machine's."""
    from rooftop.exporter.recording.format import RecordingError, read_recording
    from rooftop.exporter.recording.session import ReplaySession

    speed = args.replay_speed
    if not (speed >= 0 and speed != float("inf")):
        print(f"rooftop: --replay-speed must be a number >= 0, got {speed}", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {}
    if args.listen_address:
        overrides["listen_address"] = args.listen_address
    try:
        web_config = load_web_config(args.web_config_file) if args.web_config_file else None
        if web_config is not None:
            web_config.ssl_context()
        recording = read_recording(args.replay)
        published_at = [time.monotonic(), 0.0]
        history = SnapshotHistory()

        def on_publish(snapshot: Snapshot) -> None:
            published_at[:] = [time.monotonic(), snapshot.monotonic_seconds]
            cache.prepare(snapshot)
            history.record(snapshot)

        # The age of a replayed snapshot: its recorded time plus the real time since replayed.
        cache = ExpositionCache(
            lambda: session.sampler.latest,
            time.time,
            monotonic=lambda: published_at[1] + time.monotonic() - published_at[0],
        )
        session = ReplaySession(recording, overrides, on_publish=on_publish)
    except (ConfigError, RecordingError) as error:
        print(f"rooftop: {error}", file=sys.stderr)
        return 2
    settings = session.settings
    host, port = listen_host_port(settings.listen_address)
    handler = make_handler(
        cache,
        lambda: session.sampler.latest,
        web_config,
        landing=lambda: landing_page(session.sampler.latest, history.entries()),
    )
    ssl_context = web_config.ssl_context() if web_config is not None else None
    try:
        server = ExporterHTTPServer(
            (host or "0.0.0.0", port), handler, settings.max_concurrent_scrapes, ssl_context
        )
    except OSError as error:
        print(
            f"rooftop: cannot listen on {settings.listen_address}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    serve_in_thread(server)
    log.info(
        "replaying %s (%d cycles recorded by rooftop %s) on %s://%s:%d/metrics at %s",
        args.replay,
        len(recording.cycles),
        recording.version,
        "https" if ssl_context else "http",
        host or "localhost",
        server.server_address[1],
        "full speed" if speed == 0 else f"{speed:g}x the recorded pace",
    )
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    summary = session.run(speed, stop)
    if summary.reproduced:
        log.info("replay finished: %d cycles, verdicts and exposition as recorded", summary.cycles)
    elif summary.verdicts_reproduced:
        log.info(
            "replay finished: %d cycles, verdicts as recorded; this rooftop publishes other "
            "series than rooftop %s did",
            summary.cycles,
            recording.version,
        )
    else:
        first = next(d for d in summary.differences if d.what.startswith("verdict "))
        log.warning(
            "replay finished: %d cycles, verdicts differ from the recording, first: cycle %d %s",
            summary.cycles,
            first.cycle,
            first.what,
        )
    if not args.replay_exit:
        stop.wait()
    server.shutdown()
    server.server_close()
    session.close()
    return 0 if summary.verdicts_reproduced else 1


def discover_local_engines(settings: Settings) -> list[EngineConfig]:
    """The engines answering on the usual localhost ports now (one probe of each; ``serve``
    itself probes again every discovery interval through :class:`LocalEngineDiscovery`)."""
    discovery = LocalEngineDiscovery(settings.discover_ports, settings.engine_max_body_bytes)
    return [EngineConfig(url=engine.url, name=engine.name) for engine in discovery.poll()]


def serve(
    settings: Settings,
    web_config: WebConfig | None,
    nvml_backend: NvmlBackend | None = None,
    reload: Callable[[], Settings] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (exit 0 within :data:`EXIT_BUDGET_SECONDS`, whatever clients
    do). SIGHUP reloads the configuration through ``reload`` (validated first; a bad one is
    logged and the running one kept)."""
    limit_malloc_arenas()  # before any worker thread allocates (exporter/memory.py)
    gpu_source: GpuSource | None = None
    process_stats: ProcessStatsProvider | None = None
    locator: GpuLocator | None = None
    before_cycle = None
    demo = None
    if settings.demo:
        from rooftop.exporter.demo.node import DemoConfigError, DemoNode

        try:
            demo = DemoNode(
                gpus=settings.demo_gpus,
                engines=settings.demo_engines,
                cycle_seconds=settings.demo_cycle_seconds,
                seed=settings.demo_seed,
                gpu_id=settings.demo_gpu,
                model_id=settings.demo_model,
                offset_seconds=settings.demo_offset_seconds,
            )
        except DemoConfigError as error:
            raise ConfigError(str(error)) from None
        demo.start()
        demo_engines = [
            EngineConfig(
                url=url,
                name=demo.engine_name(i),
                gpus=(demo.engine_gpu(i),),
                pid=demo.engine_pid(i),
            )
            for i, url in enumerate(demo.engine_urls())
        ]
        settings = settings.model_copy(update={"engines": tuple(demo_engines)})
        nvml = NvmlSource(demo.backend, settings.gpu_call_deadline_seconds)
        nvml.start()
        gpu_source = nvml
        process_stats = demo
        before_cycle = demo.advance
        log.info(
            "demo node: %d simulated %s, %d simulated vLLM engine(s) serving %s at %s",
            settings.demo_gpus,
            demo.gpu_spec.name,
            settings.demo_engines,
            demo.model.name,
            ", ".join(demo.engine_urls()),
        )
    else:
        if settings.nvml or nvml_backend is not None:
            # Down, with its reason, rather than absent: rooftop_source_up{source="nvml"} 0.
            retrying = RetryingNvmlSource(
                NvmlSource(nvml_backend, settings.gpu_call_deadline_seconds)
            )
            try:
                retrying.start()
            except NvmlUnavailableError as error:
                log.warning(
                    'NVML unavailable (retried every %g s; rooftop_source_up{source="nvml"} '
                    "is 0 meanwhile): %s",
                    START_RETRY_SECONDS,
                    error,
                )
            gpu_source = retrying
        process_stats = EngineCpuStats()
        locator = PortGpuLocator()
    kubernetes = bool(settings.kubernetes_node_name) and not settings.demo

    def discovery_for(current: Settings) -> EngineDiscovery | None:
        if kubernetes:
            return kubernetes_discovery(current)
        if not current.engines and not current.demo and current.discover_engines:
            # Probed again every discovery interval: an engine still loading is found once it
            # answers (source="localhost" kind="discovery" reports the probing itself).
            return LocalEngineDiscovery(current.discover_ports, current.engine_max_body_bytes)
        return None

    if not kubernetes and discovery_for(settings) is not None:
        log.info(
            "no engine configured: probing localhost ports %s every %g s (or pass --engine URL)",
            ", ".join(map(str, settings.discover_ports)),
            settings.discovery_interval_seconds,
        )
    # Scrapes are tiny (cached bytes); the sampler's cycle is long. With CPython's default 5 ms
    # GIL switch interval a scrape could wait that long behind a cycle; a short interval bounds
    # the wait (see SCRAPE_GIL_SWITCH_SECONDS).
    sys.setswitchinterval(SCRAPE_GIL_SWITCH_SECONDS)
    cache = ExpositionCache(lambda: sampler.latest, time.time, monotonic=time.monotonic)
    history = SnapshotHistory()

    def published(snapshot: Snapshot) -> None:
        cache.prepare(snapshot)
        history.record(snapshot)

    def build(current: Settings) -> Sampler:
        return Sampler(
            current,
            gpu_source,
            engine_factory=functools.partial(engine_source, current),
            dcgm_source=dcgm_source(current),
            process_stats=process_stats,
            gpu_locator=locator,
            before_cycle=before_cycle,
            engine_discovery=discovery_for(current),
            on_publish=published,
        )

    sampler = build(settings)
    host, port = listen_host_port(settings.listen_address)
    handler = make_handler(
        cache,
        lambda: sampler.latest,
        web_config,
        landing=lambda: landing_page(sampler.latest, history.entries()),
        health=lambda: sampler.health_problem(),
    )
    ssl_context = web_config.ssl_context() if web_config is not None else None
    try:
        server = ExporterHTTPServer(
            (host or "0.0.0.0", port), handler, settings.max_concurrent_scrapes, ssl_context
        )
    except OSError as error:
        print(
            f"rooftop: cannot listen on {settings.listen_address}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    signals: list[int] = []

    def _signal(signum: int, frame: Any) -> None:
        signals.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _signal)
    sampler.start()
    serve_in_thread(server)
    scheme = "https" if ssl_context else "http"
    shown = host or "localhost"
    log.info(
        "listening on %s://%s:%d/metrics%s",
        scheme,
        shown,
        server.server_address[1],
        " (demo node: simulated data)" if settings.demo else "",
    )
    while True:
        # The handler only appends to a list: taking a lock in a signal handler (Event.set)
        # deadlocks when the signal lands while the main thread holds that lock.
        while not signals:
            time.sleep(SIGNAL_POLL_SECONDS)
        if any(signum != signal.SIGHUP for signum in signals):
            break
        signals.clear()
        if reload is None or demo is not None:
            log.warning("SIGHUP: configuration reload is not available here; ignored")
            continue
        try:
            fresh = reload()
        except ConfigError as error:
            log.error("SIGHUP: new configuration refused, keeping the running one: %s", error)
            continue
        if fresh.listen_address != settings.listen_address or (
            fresh.web_config_file != settings.web_config_file
        ):
            log.warning("SIGHUP: listen address and web config change only on restart")
        if not fresh.engines and fresh.discover_engines and not kubernetes:
            fresh = fresh.model_copy(update={"engines": tuple(discover_local_engines(fresh))})
        old_sampler, sampler = sampler, build(fresh)
        old_sampler.stop(timeout_seconds=0.5)
        sampler.start()
        settings = fresh
        log.info("SIGHUP: configuration reloaded (%d engine(s))", len(fresh.engines))
    log.info("shutting down")
    # Whatever the clients do (keep-alive, idle open connections), exit within the budget.
    watchdog = threading.Timer(EXIT_BUDGET_SECONDS, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    server.shutdown()
    server.close_connections()
    server.server_close()
    sampler.stop(timeout_seconds=0.3)
    if demo is not None:
        demo.stop()
    logging.shutdown()
    return 0


SIGNAL_POLL_SECONDS = 0.05
"""How often the main thread looks at the signals that arrived (a sleep a signal also ends)."""
EXIT_BUDGET_SECONDS = 0.9
"""After SIGTERM/SIGINT the process is gone within this (Kubernetes and systemd need not
SIGKILL it): connections are cut, then anything still holding on is abandoned."""


def _exit_now() -> None:
    log.warning("shutdown took over %.1f s; exiting now", EXIT_BUDGET_SECONDS)
    logging.shutdown()
    os._exit(0)
