"""Issue 15 side by side, in one run: rooftop now against rooftop before (a checkout of an
older commit) and against a plain prometheus_client exporter, printed as ratios.

1. Parse + extract per engine poll (benchmarks/parse.py's table).
2. Sampler CPU per (GPU + engine) at a 1 s interval, 8 GPUs (the demo's fake NVML) + 8 engines
   each serving the ~500 kB vLLM V1 body (4 models x 3 LoRA adapters, 4,160 samples) from
   another process (``_static_engines.py``); steady RSS of the exporter.
3. ``/metrics`` p50/p99 with 1, 10 and 50 closed-loop scrapers and with 10 scrapes sent at the
   same instant once a second, against ``start_http_server`` serving as many series
   (``_plain_exporter.py``); keep-alive and gzip, the same client for every target.
4. Start-up: spawn to the first HTTP 200 on ``/metrics`` (``rooftop serve --demo`` 8+8, and the
   plain exporter).

Before and now alternate round by round (``--rounds``), so load from other work on the machine
falls on both; each figure is the median over rounds.

Setup for "before": ``git worktree add --detach /tmp/rooftop-before <commit>``; that tree is
put first on PYTHONPATH for its runs (its ``rooftop/`` folder links its own sources).

Usage: .venv/bin/python benchmarks/side_by_side.py [--before /tmp/rooftop-before] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Final

import parse as parse_benchmark
from _common import PYTHON, Child, free_port, header, ms, scrape, table

TARGETS = {
    "cpu_per_unit_percent": 0.5,
    "p99_ms": 5.0,
    "startup_seconds": 1.5,
    "rss_mb": 60.0,
}


def _env(tree: Path | None) -> dict[str, str] | None:
    return None if tree is None else {"PYTHONPATH": str(tree)}


def _harness(tree: Path | None) -> str:
    root = tree if tree is not None else Path(__file__).resolve().parent.parent
    return str(root / "benchmarks" / "_rooftop_harness.py")


def sampler_and_scrapes(
    tree: Path | None,
    gpus: int,
    engines: int,
    size: str,
    window: float,
    harness_args: tuple[str, ...] = (),
) -> dict[str, float]:
    """CPU per cycle, RSS, scrape latencies of the harness (rooftop's serve wiring);
    ``harness_args``: more options for benchmarks/_rooftop_harness.py."""
    fakes = Child(
        [PYTHON, "benchmarks/_static_engines.py", f"--engines={engines}", f"--size={size}"],
        stdin_pipe=True,
    )
    harness: Child | None = None
    try:
        urls = fakes.read_json_line()["urls"]
        assert isinstance(urls, list)
        port = free_port()
        harness = Child(
            [
                PYTHON,
                _harness(tree),
                f"--gpus={gpus}",
                "--interval=1",
                f"--port={port}",
                *(f"--engine-url={u}" for u in urls),
                *harness_args,
            ],
            stdin_pipe=True,
            env=_env(tree),
        )
        harness.read_json_line()
        time.sleep(3.0)
        before = harness.ask("stats")
        cpu0, t0 = harness.cpu_seconds(), time.time()
        time.sleep(window)
        after = harness.ask("stats")
        cpu1 = harness.cpu_seconds()
        cycles = max(1, int(after["cycles"] - before["cycles"]))
        simulation = after["simulation_cpu_seconds"] - before["simulation_cpu_seconds"]
        rooftop_cpu = (cpu1 - cpu0) - simulation
        out = {
            "cycles": float(cycles),
            "ms_per_cycle": rooftop_cpu / cycles * 1000,
            # Per unit (a GPU or an engine), as benchmarks/overhead.py counts; and per pair (one
            # GPU with the engine on it), the stricter reading of "per (GPU + engine)".
            "cpu_per_unit_percent": rooftop_cpu / (time.time() - t0) * 100 / (gpus + engines),
            "cpu_per_pair_percent": rooftop_cpu / (time.time() - t0) * 100 / max(gpus, engines),
            "rss_mb": harness.rss_bytes() / 1e6,
            "peak_rss_mb": harness.peak_rss_bytes() / 1e6,
            "series": float(series_count(port)),
        }
        out.update(scrape_figures(port))
        return out
    finally:
        if harness is not None:
            harness.close()
        fakes.close()


def scrape_figures(port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    burst = scrape(port, 10, 10.0, period_seconds=1.0)
    out["burst_p50_ms"] = ms(burst.percentile(50))
    out["burst_p99_ms"] = ms(burst.percentile(99))
    out["body_bytes"] = float(burst.body_bytes)
    errors = burst.errors
    for scrapers in (1, 10, 50):
        result = scrape(port, scrapers, 4.0)
        out[f"loop{scrapers}_p50_ms"] = ms(result.percentile(50))
        out[f"loop{scrapers}_p99_ms"] = ms(result.percentile(99))
        errors += result.errors
    out["errors"] = float(errors)
    return out


def series_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def plain_exporter(series: int) -> dict[str, float]:
    port = free_port()
    child = Child(
        [PYTHON, "benchmarks/_plain_exporter.py", f"--port={port}", f"--series={series}"],
        stdin_pipe=True,
    )
    try:
        child.read_json_line()
        time.sleep(1.5)
        out = scrape_figures(port)
        out["rss_mb"] = child.rss_bytes() / 1e6
        out["series"] = float(series_count(port))
        return out
    finally:
        child.close()


def startup_seconds(argv: list[str], port: int, env: dict[str, str] | None) -> float:
    started = time.perf_counter()
    child = Child(argv, stdin_pipe=True, env=env)
    try:
        while time.perf_counter() - started < 30:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"{argv} gave no 200 within 30 s: {child.stderr_tail()}")
    finally:
        child.close()


def rooftop_startup(tree: Path | None) -> float:
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "rooftop.exporter",
        "serve",
        "--demo",
        "--demo-gpus=8",
        "--demo-engines=8",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log-level=warning",
    ]
    return startup_seconds(argv, port, _env(tree))


def plain_startup(series: int) -> float:
    port = free_port()
    argv = [PYTHON, "benchmarks/_plain_exporter.py", f"--port={port}", f"--series={series}"]
    return startup_seconds(argv, port, None)


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


WHOLE: Final = "now, whole bodies"
"""Today's code with ``engines[].name_filter`` off: every poll downloads and parses the whole
body (what "now" did before polls asked for only the series read)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, default=Path("/tmp/rooftop-before"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--size", default="4x3-lora", help="engine body (expositions.SIZES)")
    parser.add_argument("--parse-rounds", type=int, default=15)
    parser.add_argument("--skip-parse", action="store_true")
    args = parser.parse_args()
    before_tree: Path | None = args.before if args.before.is_dir() else None
    header("issue 15 side by side", "benchmarks/side_by_side.py " + " ".join(sys.argv[1:]))
    if before_tree is None:
        print(f"(no {args.before}: 'before' columns left out)\n")

    if not args.skip_parse:
        print("## Parse + extract per engine poll\n", flush=True)
        sys.argv = ["parse.py", f"--rounds={args.parse_rounds}", "--big-rounds=3"]
        parse_benchmark.main()
        print()

    trees: dict[str, Path | None] = {"now": None, WHOLE: None}
    if before_tree is not None:
        trees["before"] = before_tree
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    starts: dict[str, list[float]] = {name: [] for name in trees if name != WHOLE}
    starts["plain"] = []
    for round_number in range(args.rounds):
        order = list(trees) if round_number % 2 == 0 else list(reversed(trees))
        for name in order:
            print(f"round {round_number + 1}: {name}…", file=sys.stderr, flush=True)
            extra = ("--whole-bodies",) if name == WHOLE else ()
            runs[name].append(sampler_and_scrapes(trees[name], 8, 8, args.size, args.window, extra))
            if name != WHOLE:  # the same start-up as "now"
                starts[name].append(rooftop_startup(trees[name]))
    series = int(_median(runs["now"], "series"))
    plain_runs = []
    for _ in range(args.rounds):
        plain_runs.append(plain_exporter(series))
        starts["plain"].append(plain_startup(series))

    columns = [*trees, "plain"]
    results = {**runs, "plain": plain_runs}

    def value(name: str, key: str) -> float:
        rows = results[name]
        return _median(rows, key) if rows and key in rows[0] else float("nan")

    print(f"## 8 GPUs + 8 engines ({args.size} vLLM body each) at 1 s: sampler CPU and RSS\n")
    cpu_rows = []
    for name in trees:
        cpu_rows.append(
            (
                name,
                value(name, "cycles"),
                value(name, "ms_per_cycle"),
                value(name, "cpu_per_unit_percent"),
                value(name, "cpu_per_pair_percent"),
                value(name, "rss_mb"),
                value(name, "peak_rss_mb"),
                value(name, "ms_per_cycle") / value("now", "ms_per_cycle"),
            )
        )
    print(
        table(
            [
                "rooftop",
                "cycles",
                "CPU ms/cycle",
                "% core per GPU or engine",
                "% core per GPU+engine pair",
                "RSS MB",
                "peak RSS MB",
                "/ now",
            ],
            cpu_rows,
        )
    )
    print(
        f"\n## /metrics latency, ms (plain: start_http_server with {series} series, rooftop's "
        "count at 8+8)\n"
    )
    keys = [
        ("burst_p50_ms", "10 at once 1/s p50"),
        ("burst_p99_ms", "p99"),
        ("loop1_p50_ms", "1 scraper p50"),
        ("loop1_p99_ms", "p99"),
        ("loop10_p50_ms", "10 p50"),
        ("loop10_p99_ms", "p99"),
        ("loop50_p50_ms", "50 p50"),
        ("loop50_p99_ms", "p99"),
        ("errors", "errors"),
    ]
    print(
        table(
            ["exporter", "gzip bytes", *(label for _, label in keys)],
            [(c, value(c, "body_bytes"), *(value(c, k) for k, _ in keys)) for c in columns],
        )
    )
    print("\nratios to the plain exporter (same client, same run):\n")
    print(
        table(
            ["exporter", *(label for _, label in keys[:-1])],
            [(c, *(value(c, k) / value("plain", k) for k, _ in keys[:-1])) for c in trees],
        )
    )
    print("\n## Start-up: spawn to first 200 on /metrics, s (median)\n")
    print(
        table(
            ["exporter", "seconds", "/ plain"],
            [
                (
                    c,
                    statistics.median(starts[c]),
                    statistics.median(starts[c]) / statistics.median(starts["plain"]),
                )
                for c in columns
                if c in starts
            ],
        )
    )
    print("\n## Targets (issue 15)\n")
    checks = [
        (
            "sampler CPU per GPU or large engine at 1 s",
            f"<= {TARGETS['cpu_per_unit_percent']} % core",
            value("now", "cpu_per_unit_percent"),
            value("now", "cpu_per_unit_percent") <= TARGETS["cpu_per_unit_percent"],
        ),
        (
            "sampler CPU per GPU + large engine pair at 1 s",
            f"<= {TARGETS['cpu_per_unit_percent']} % core",
            value("now", "cpu_per_pair_percent"),
            value("now", "cpu_per_pair_percent") <= TARGETS["cpu_per_unit_percent"],
        ),
        (
            "/metrics p99, 8+8, 10 scrapers in a closed loop",
            f"<= {TARGETS['p99_ms']} ms",
            value("now", "loop10_p99_ms"),
            value("now", "loop10_p99_ms") <= TARGETS["p99_ms"],
        ),
        (
            "/metrics p99, 8+8, 10 at the same instant 1/s",
            f"<= {TARGETS['p99_ms']} ms",
            value("now", "burst_p99_ms"),
            value("now", "burst_p99_ms") <= TARGETS["p99_ms"],
        ),
        (
            "start-up to first 200",
            f"<= {TARGETS['startup_seconds']} s",
            statistics.median(starts["now"]),
            statistics.median(starts["now"]) <= TARGETS["startup_seconds"],
        ),
        (
            "RSS between cycles, 8+8 large engines",
            f"<= {TARGETS['rss_mb']} MB",
            value("now", "rss_mb"),
            value("now", "rss_mb") <= TARGETS["rss_mb"],
        ),
        (
            "peak RSS, 8+8 large engines",
            f"<= {TARGETS['rss_mb']} MB",
            value("now", "peak_rss_mb"),
            value("now", "peak_rss_mb") <= TARGETS["rss_mb"],
        ),
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
