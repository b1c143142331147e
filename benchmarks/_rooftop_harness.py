"""rooftop's own pipeline, wired as ``rooftop serve --demo`` wires it, with two differences
that let the overhead benchmark separate rooftop's cost from the simulation's:

* the fake vLLM endpoints are served by another process (``_demo_engines.py``); rooftop
  scrapes them over real loopback HTTP exactly as it scrapes a real engine;
* the demo's per-cycle simulation step (``DemoNode.advance``: scripted load, fake GPM
  counters) is timed with ``time.thread_time`` so it can be subtracted.

Protocol: one JSON line ``{"ready": true}`` on stdout once the first snapshot is published;
then each line on stdin is answered with one JSON line of cumulative counters
(``cycles``, ``simulation_cpu_seconds``, ``sampler_thread_cpu_seconds``) and the last
cycle's wall time (``cycle_seconds_last``).
Stdin closing ends the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.commands.serve import SCRAPE_GIL_SWITCH_SECONDS
from rooftop.exporter.demo.node import DemoNode
from rooftop.exporter.sampler import Sampler
from rooftop.exporter.server import ExporterHTTPServer, make_handler, serve_in_thread
from rooftop.exporter.settings import EngineConfig, load_settings
from rooftop.exporter.sources.nvml import NvmlSource


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cycle-seconds", type=float, default=120.0)
    parser.add_argument("--engine-url", action="append", default=[])
    parser.add_argument(
        "--whole-bodies", action="store_true", help="engines[].name_filter off: every body whole"
    )
    args = parser.parse_args()
    try:
        from rooftop.exporter.memory import limit_malloc_arenas
    except ImportError:  # an older checkout (benchmarks/side_by_side.py "before")
        pass
    else:
        limit_malloc_arenas()  # as `rooftop serve` does

    settings = load_settings(
        {
            "demo": True,
            "interval_seconds": args.interval,
            "listen_address": f"127.0.0.1:{args.port}",
            "demo_gpus": args.gpus,
            "demo_engines": max(1, len(args.engine_url)),
        }
    )
    node = DemoNode(gpus=args.gpus, engines=len(args.engine_url), cycle_seconds=args.cycle_seconds)
    filtering = {"name_filter": False} if args.whole_bodies else {}  # older checkouts: none
    engines = tuple(
        EngineConfig(url=url, name=node.engine_name(i), gpus=(node.engine_gpu(i),), **filtering)
        for i, url in enumerate(args.engine_url)
    )
    settings = settings.model_copy(update={"engines": engines})
    nvml = NvmlSource(node.backend, settings.gpu_call_deadline_seconds)
    nvml.start()
    counters = {"simulation_cpu_seconds": 0.0, "sampler_thread_cpu_seconds": 0.0}

    def before_cycle(now: float) -> None:
        # Runs on the sampler thread at the start of each cycle: its thread CPU time so far is
        # the sampler thread's total up to this cycle.
        started = time.thread_time()
        counters["sampler_thread_cpu_seconds"] = started
        node.advance(now)
        counters["simulation_cpu_seconds"] += time.thread_time() - started

    sys.setswitchinterval(SCRAPE_GIL_SWITCH_SECONDS)  # as `rooftop serve` does
    cache = ExpositionCache(lambda: sampler.latest, time.time, monotonic=time.monotonic)
    sampler = Sampler(
        settings,
        nvml,
        process_stats=node,
        before_cycle=before_cycle,
        on_publish=cache.prepare,
    )
    server = ExporterHTTPServer(
        ("127.0.0.1", args.port),
        make_handler(cache, lambda: sampler.latest, None),
        settings.max_concurrent_scrapes,
    )
    sampler.start()
    serve_in_thread(server)
    while sampler.latest is None:
        time.sleep(0.01)
    print(json.dumps({"ready": True}), flush=True)
    for _line in sys.stdin:
        snapshot = sampler.latest
        assert snapshot is not None
        reply = {"cycles": snapshot.sequence, "cycle_seconds_last": snapshot.cycle_seconds}
        print(json.dumps({**reply, **counters}), flush=True)
    server.shutdown()
    server.server_close()
    sampler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
