"""Soak: ``rooftop serve --demo`` at a short interval, scraped continuously; RSS and threads.

The default, 8 GPUs + 8 engines at 0.1 s for 1800 cycles, is the sampling work of 30 minutes at
the default 1 s interval in 3 minutes of wall time. Two scrapers (keep-alive, gzip) scrape
back to back with a 20 ms pause and a third fetches the plain text every 50 ms to count
snapshots. RSS is printed every ``--every`` cycles; growth is measured from the first
checkpoint after warm-up (allocator arenas and caches fill in the first seconds) and from the
start. Targets: RSS growth < 5 MB, no thread leak.

Usage: .venv/bin/python benchmarks/soak.py [--gpus 8 --engines 8 --interval 0.1 --cycles 1800]
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
import urllib.request

from _common import ScrapeResult, free_port, header, ms, rooftop_demo, scrape, table

GROWTH_TARGET_MB = 5.0
_TIMESTAMP = re.compile(rb"^rooftop_snapshot_timestamp_seconds (\S+)$", re.MULTILINE)
_CYCLE = re.compile(rb"^rooftop_sampler_cycle_seconds (\S+)$", re.MULTILINE)


class SnapshotWatcher(threading.Thread):
    """Fetches /metrics every 50 ms and counts distinct snapshots (a lower bound on cycles)."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.stop = stop
        self.snapshots: set[bytes] = set()
        self.longest_cycle_seconds = 0.0
        self.errors = 0

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    body = response.read()
            except OSError:
                self.errors += 1
                continue
            stamp = _TIMESTAMP.search(body)
            cycle = _CYCLE.search(body)
            if stamp:
                self.snapshots.add(stamp.group(1))
            if cycle:
                self.longest_cycle_seconds = max(self.longest_cycle_seconds, float(cycle.group(1)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--engines", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--cycles", type=int, default=1800)
    parser.add_argument("--every", type=int, default=150, help="print RSS every N cycles")
    parser.add_argument("--warmup-cycles", type=int, default=100)
    args = parser.parse_args()
    header("rooftop soak", "benchmarks/soak.py " + " ".join(sys.argv[1:]))
    port = free_port()
    child = rooftop_demo(port, args.gpus, args.engines, args.interval)
    stop = threading.Event()
    watcher = SnapshotWatcher(port, stop)
    results: list[ScrapeResult] = []
    duration = args.cycles * args.interval
    try:
        start_rss, start_threads = child.rss_bytes(), child.threads()
        started = time.monotonic()
        watcher.start()
        scraper = threading.Thread(
            target=lambda: results.append(scrape(port, 2, duration, pause_seconds=0.02)),
            daemon=True,
        )
        scraper.start()
        rows: list[tuple[object, ...]] = [(0, 0.0, start_rss / 1e6, start_threads, 0)]
        checkpoint = args.every
        warm_rss: float | None = None
        warm_threads = start_threads
        peak_threads = start_threads
        while checkpoint <= args.cycles:
            time.sleep(max(0.0, started + checkpoint * args.interval - time.monotonic()))
            rss, threads = child.rss_bytes() / 1e6, child.threads()
            peak_threads = max(peak_threads, threads)
            if warm_rss is None and checkpoint >= args.warmup_cycles:
                warm_rss, warm_threads = rss, threads
            rows.append(
                (checkpoint, time.monotonic() - started, rss, threads, len(watcher.snapshots))
            )
            checkpoint += args.every
        scraper.join(duration + 60)
        stop.set()
        watcher.join(10)
        end_rss, end_threads = child.rss_bytes() / 1e6, child.threads()
    finally:
        stop.set()
        child.close()
    scraped = results[0] if results else ScrapeResult()
    print(f"## {args.gpus} GPUs + {args.engines} engines at {args.interval:g} s, scraped\n")
    print(table(["cycle (by clock)", "elapsed s", "RSS MB", "threads", "snapshots seen"], rows))
    warm = warm_rss if warm_rss is not None else start_rss / 1e6
    print("\n## Summary\n")
    summary = [
        ("cycles scheduled", args.cycles),
        ("distinct snapshots seen by the 50 ms watcher", len(watcher.snapshots)),
        ("longest sampler cycle seen, ms", ms(watcher.longest_cycle_seconds)),
        ("scrapes (2 gzip scrapers)", len(scraped.latencies_seconds)),
        ("scrape errors (gzip scrapers + watcher)", f"{scraped.errors} + {watcher.errors}"),
        ("first scrape error", scraped.first_error or "–"),
        (
            "scrape p50 / p99 ms",
            f"{ms(scraped.percentile(50)):.2f} / {ms(scraped.percentile(99)):.2f}",
        ),
        ("RSS start MB", start_rss / 1e6),
        (f"RSS after warm-up (cycle {args.warmup_cycles}) MB", warm),
        ("RSS end MB", end_rss),
        ("RSS growth after warm-up MB", end_rss - warm),
        ("RSS growth from start MB", end_rss - start_rss / 1e6),
        ("threads start / peak / end", f"{start_threads} / {peak_threads} / {end_threads}"),
    ]
    print(table(["", "value"], summary))
    grew = end_rss - warm
    leak = end_threads > warm_threads
    print(
        f"\nRSS growth after warm-up {grew:.2f} MB (target < {GROWTH_TARGET_MB} MB): "
        f"{'met' if grew < GROWTH_TARGET_MB else 'NOT MET'}; "
        f"threads after warm-up {warm_threads} -> end {end_threads}: "
        f"{'LEAK?' if leak else 'no leak'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
