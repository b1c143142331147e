"""Overhead of rooftop on the demo node: CPU per sampler cycle, /metrics latency, RSS.

For each (GPUs, engines) configuration, at the given sampling interval:

1. rooftop alone: ``_rooftop_harness.py`` (the ``serve --demo`` wiring) scrapes fake vLLM
   endpoints served by a separate process (``_demo_engines.py``) over loopback HTTP, so the
   process's CPU time is rooftop's own; the demo's per-cycle simulation step runs in rooftop's
   process (it drives the fake NVML backend) and is timed with ``thread_time`` and subtracted.
2. ``/metrics`` with 10 scrapers: all 10 at the same instant once a second (10 Prometheus
   servers scraping together), then 10 in a closed loop (saturation: each scrapes again as
   soon as it has its answer). Keep-alive and gzip, as Prometheus scrapes.
3. ``rooftop serve --demo`` as shipped (fake engines served from the same process), for the
   whole process's CPU.

Targets: at 1 s, <= 0.5 % of one core per (GPU + engine); /metrics p99 <= 5 ms at
8 + 8 with 10 parallel scrapers; RSS <= 60 MB.

Usage: .venv/bin/python benchmarks/overhead.py [--configs 1x1,1x8,8x1,8x8] [--window 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from _common import (
    PYTHON,
    Child,
    free_port,
    header,
    ms,
    rooftop_demo,
    scrape,
    table,
)

PER_UNIT_TARGET_PERCENT = 0.5
P99_TARGET_MS = 5.0
RSS_TARGET_MB = 60.0


@dataclass
class Row:
    gpus: int
    engines: int
    cycles: int
    process_ms_per_cycle: float
    simulation_ms_per_cycle: float
    engines_process_percent: float
    rss_mb: float
    threads: int
    burst_p50_ms: float
    burst_p99_ms: float
    burst_max_ms: float
    loop_p50_ms: float
    loop_p99_ms: float
    loop_per_second: float
    cpu_us_per_scrape: float
    body_bytes: int
    errors: int
    shipped_percent: float
    shipped_rss_mb: float

    def rooftop_ms_per_cycle(self) -> float:
        return self.process_ms_per_cycle - self.simulation_ms_per_cycle

    def rooftop_percent(self, interval: float) -> float:
        return self.rooftop_ms_per_cycle() / 1000 / interval * 100

    def per_unit_percent(self, interval: float) -> float:
        return self.rooftop_percent(interval) / (self.gpus + self.engines)


def measure(gpus: int, engines: int, interval: float, window: float) -> Row:
    engines_proc = Child(
        [
            PYTHON,
            "benchmarks/_demo_engines.py",
            f"--gpus={gpus}",
            f"--engines={engines}",
            f"--interval={interval}",
        ],
        stdin_pipe=True,
    )
    harness: Child | None = None
    try:
        urls = engines_proc.read_json_line()["urls"]
        assert isinstance(urls, list)
        port = free_port()
        harness = Child(
            [
                PYTHON,
                "benchmarks/_rooftop_harness.py",
                f"--gpus={gpus}",
                f"--interval={interval}",
                f"--port={port}",
                *(f"--engine-url={url}" for url in urls),
            ],
            stdin_pipe=True,
        )
        harness.read_json_line()
        time.sleep(max(3 * interval, 2.0))  # rates warm up; first-cycle model resolution done

        before = harness.ask("stats")
        cpu0, engines_cpu0, t0 = harness.cpu_seconds(), engines_proc.cpu_seconds(), time.time()
        time.sleep(window)
        after = harness.ask("stats")
        cpu1, engines_cpu1, t1 = harness.cpu_seconds(), engines_proc.cpu_seconds(), time.time()
        cycles = int(after["cycles"] - before["cycles"])
        idle_cpu_per_second = (cpu1 - cpu0) / (t1 - t0)
        simulation = after["simulation_cpu_seconds"] - before["simulation_cpu_seconds"]

        burst = scrape(port, 10, 10.0, period_seconds=1.0)
        cpu2, t2 = harness.cpu_seconds(), time.time()
        loop = scrape(port, 10, 5.0)
        cpu3, t3 = harness.cpu_seconds(), time.time()
        scrape_cpu = (cpu3 - cpu2) - idle_cpu_per_second * (t3 - t2)
        row_rss = harness.rss_bytes() / 1e6
        threads = harness.threads()
    finally:
        if harness is not None:
            harness.close()
        engines_proc.close()

    shipped = rooftop_demo(free_port(), gpus, engines, interval)
    try:
        time.sleep(max(3 * interval, 2.0))
        c0, s0 = shipped.cpu_seconds(), time.time()
        time.sleep(window)
        shipped_percent = (shipped.cpu_seconds() - c0) / (time.time() - s0) * 100
        shipped_rss = shipped.rss_bytes() / 1e6
    finally:
        shipped.close()

    return Row(
        gpus=gpus,
        engines=engines,
        cycles=cycles,
        process_ms_per_cycle=(cpu1 - cpu0) / cycles * 1000,
        simulation_ms_per_cycle=simulation / cycles * 1000,
        engines_process_percent=(engines_cpu1 - engines_cpu0) / (t1 - t0) * 100,
        rss_mb=row_rss,
        threads=threads,
        burst_p50_ms=ms(burst.percentile(50)),
        burst_p99_ms=ms(burst.percentile(99)),
        burst_max_ms=ms(max(burst.latencies_seconds, default=float("nan"))),
        loop_p50_ms=ms(loop.percentile(50)),
        loop_p99_ms=ms(loop.percentile(99)),
        loop_per_second=loop.per_second,
        cpu_us_per_scrape=scrape_cpu / max(1, len(loop.latencies_seconds)) * 1e6,
        body_bytes=loop.body_bytes,
        errors=burst.errors + loop.errors,
        shipped_percent=shipped_percent,
        shipped_rss_mb=shipped_rss,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", default="1x1,1x8,8x1,8x8", help="GPUSxENGINES, comma-separated"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="sampling interval, seconds")
    parser.add_argument("--window", type=float, default=15.0, help="CPU window, seconds")
    args = parser.parse_args()
    configs = [tuple(int(n) for n in item.split("x")) for item in args.configs.split(",")]
    header("rooftop overhead", "benchmarks/overhead.py " + " ".join(sys.argv[1:]))
    rows = []
    for gpus, engines in configs:
        print(f"measuring {gpus} GPU(s) + {engines} engine(s)…", file=sys.stderr, flush=True)
        rows.append(measure(gpus, engines, args.interval, args.window))
    interval = args.interval

    print(f"## CPU at a {interval:g} s interval (rooftop alone; fake engines in another process)\n")
    print(
        table(
            [
                "GPUs",
                "engines",
                "cycles",
                "process ms/cycle",
                "simulation ms/cycle",
                "rooftop ms/cycle",
                "rooftop % core",
                "% core per (GPU+engine)",
                "fake-engines process % core",
                "RSS MB",
                "threads",
            ],
            [
                (
                    r.gpus,
                    r.engines,
                    r.cycles,
                    r.process_ms_per_cycle,
                    r.simulation_ms_per_cycle,
                    r.rooftop_ms_per_cycle(),
                    r.rooftop_percent(interval),
                    r.per_unit_percent(interval),
                    r.engines_process_percent,
                    r.rss_mb,
                    r.threads,
                )
                for r in rows
            ],
        )
    )
    print("\n## /metrics with 10 scrapers (keep-alive, gzip)\n")
    print(
        table(
            [
                "GPUs",
                "engines",
                "gzip bytes",
                "10 at once, 1/s: p50 ms",
                "p99 ms",
                "max ms",
                "closed loop: p50 ms",
                "p99 ms",
                "scrapes/s",
                "CPU µs/scrape",
                "errors",
            ],
            [
                (
                    r.gpus,
                    r.engines,
                    r.body_bytes,
                    r.burst_p50_ms,
                    r.burst_p99_ms,
                    r.burst_max_ms,
                    r.loop_p50_ms,
                    r.loop_p99_ms,
                    r.loop_per_second,
                    r.cpu_us_per_scrape,
                    r.errors,
                )
                for r in rows
            ],
        )
    )
    print("\n## `rooftop serve --demo` as shipped (fake engines served in the same process)\n")
    print(
        table(
            ["GPUs", "engines", "process % core", "% core per (GPU+engine)", "RSS MB"],
            [
                (
                    r.gpus,
                    r.engines,
                    r.shipped_percent,
                    r.shipped_percent / (r.gpus + r.engines),
                    r.shipped_rss_mb,
                )
                for r in rows
            ],
        )
    )
    print("\n## Targets\n")
    worst_unit = max(r.per_unit_percent(interval) for r in rows)
    biggest = max(rows, key=lambda r: r.gpus + r.engines)
    rss = max(max(r.rss_mb, r.shipped_rss_mb) for r in rows)
    checks = [
        (
            f"CPU per (GPU+engine) at {interval:g} s",
            f"<= {PER_UNIT_TARGET_PERCENT} % core",
            f"{worst_unit:.3f} % (worst config)",
            worst_unit <= PER_UNIT_TARGET_PERCENT,
        ),
        (
            f"/metrics p99, {biggest.gpus}+{biggest.engines}, 10 parallel scrapers (closed loop)",
            f"<= {P99_TARGET_MS} ms",
            f"{biggest.loop_p99_ms:.2f} ms",
            biggest.loop_p99_ms <= P99_TARGET_MS,
        ),
        (
            f"/metrics p99, {biggest.gpus}+{biggest.engines}, 10 sent at the same instant, 1/s",
            f"<= {P99_TARGET_MS} ms",
            f"{biggest.burst_p99_ms:.2f} ms",
            biggest.burst_p99_ms <= P99_TARGET_MS,
        ),
        ("RSS", f"<= {RSS_TARGET_MB} MB", f"{rss:.1f} MB (largest)", rss <= RSS_TARGET_MB),
    ]
    print(
        table(
            ["target", "limit", "measured", "met"],
            [(a, b, c, "yes" if ok else "NO") for a, b, c, ok in checks],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
