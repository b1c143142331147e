"""``rooftop record``: write what the sources read into one replayable file.

Runs the same pipeline as ``rooftop serve`` (same settings, flags and environment) and records,
cycle by cycle, every answer of its boundaries: NVML calls per GPU (with the driver and GPU
identity in the header), engine and dcgm-exporter expositions as received, the engine process
readings, and the clocks. Secrets never go in: URLs lose their ``user:password@`` and query
values, auth headers are not recorded, the web config is not read. ``rooftop serve --replay
FILE`` and ``rooftop probe --replay FILE`` replay it; attach it to a bug report.

Exit codes: 0 recorded; 1 the file could not be written; 2 bad input.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rooftop.exporter.settings import ConfigError, EngineConfig, Settings, load_settings

if TYPE_CHECKING:
    from rooftop.exporter.sources.nvml import NvmlBackend

log = logging.getLogger("rooftop")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record what the sources read into a file that serve/probe --replay can replay",
        description="Poll GPUs and engines as `rooftop serve` does and write every raw reading "
        "(NVML/GPM per GPU, engine and dcgm-exporter expositions, host readings, clocks) into "
        "one gzip JSON-lines file. No secrets are recorded.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="e.g. run.jsonl.gz")
    parser.add_argument(
        "--seconds",
        type=float,
        metavar="N",
        help="stop after N seconds (default: until interrupted)",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML settings file")
    parser.add_argument(
        "--engine",
        dest="engines",
        action="append",
        metavar="URL",
        help="an engine's metrics URL (repeatable); default: engines found on localhost",
    )
    parser.add_argument(
        "--interval",
        dest="interval_seconds",
        type=float,
        metavar="SECONDS",
        help="sampling interval (default 1)",
    )
    parser.add_argument("--dcgm-url", dest="dcgm_url", metavar="URL")
    parser.add_argument("--gpu-model", dest="gpu_model", metavar="ID")
    parser.add_argument("--no-nvml", dest="nvml", action="store_const", const=False)
    parser.add_argument(
        "--demo",
        action="store_const",
        const=True,
        help="record the built-in simulated node (no GPU needed)",
    )
    # Test hook (the validation script's dry run): a fake NVML backend driven by a JSON file.
    parser.add_argument("--fake-nvml", dest="fake_nvml", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    parser.set_defaults(func=run)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    names = ("engines", "interval_seconds", "dcgm_url", "gpu_model", "nvml", "demo")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def fake_nvml_backend(path: Path | None) -> NvmlBackend | None:
    """The scripted fake backend for ``--fake-nvml FILE`` (tests and dry runs only)."""
    if path is None:
        return None
    from rooftop.exporter.demo.scripted_nvml import ScriptedFakeNvmlBackend

    try:
        return ScriptedFakeNvmlBackend(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--fake-nvml {path}: {error}") from None


def _with_local_engines(settings: Settings) -> Settings:
    if settings.engines or settings.demo or not settings.discover_engines:
        return settings
    from rooftop.exporter.commands.serve import discover_local_engines

    configs = tuple(discover_local_engines(settings))
    if not configs:
        log.warning("no engine configured and none answered on localhost; recording GPUs only")
    return settings.model_copy(update={"engines": configs})


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.seconds is not None and not args.seconds > 0:
        print(f"rooftop record: --seconds must be > 0, got {args.seconds}", file=sys.stderr)
        return 2
    # Imported here, not at the top: every `rooftop` command builds this parser, and the
    # pipeline is not needed to print `rooftop top` (start-up time).
    from rooftop.exporter.recording.session import RecordSession

    demo = None
    try:
        settings = load_settings(_flags(args), args.config)
        backend = fake_nvml_backend(args.fake_nvml)
        if settings.demo:
            from rooftop.exporter.demo.node import DemoNode

            demo = DemoNode(
                gpus=settings.demo_gpus,
                engines=settings.demo_engines,
                cycle_seconds=settings.demo_cycle_seconds,
                seed=settings.demo_seed,
            )
            demo.start()
            engines = tuple(
                EngineConfig(url=url, name=demo.engine_name(i), gpus=(demo.engine_gpu(i),))
                for i, url in enumerate(demo.engine_urls())
            )
            settings = settings.model_copy(update={"engines": engines})
        settings = _with_local_engines(settings)
        session = RecordSession(settings, args.out, nvml_backend=backend, demo=demo)
    except ConfigError as error:
        print(f"rooftop record: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"rooftop record: cannot write {args.out}: {error.strerror}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info(
        "recording %d engine(s)%s to %s%s",
        len(settings.engines),
        " and NVML GPUs" if settings.nvml or backend is not None else "",
        args.out,
        f" for {args.seconds:g} s" if args.seconds else " until interrupted",
    )
    try:
        summary = session.run(args.seconds, stop)
    finally:
        if demo is not None:
            demo.stop()
    log.info(
        "recorded %d cycle(s), %d bytes, to %s%s",
        summary.cycles,
        summary.bytes_written,
        summary.path,
        f" ({summary.late_events} late answer(s) left out)" if summary.late_events else "",
    )
    return 0
