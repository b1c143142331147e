"""Cost of the landing page: one render of ``/`` and the memory of its history ring.

The page is drawn on each request from the latest snapshot and the history ring (the trail of
the last five minutes, the ten-minute timeline). For N GPUs, each with an engine, this builds
the golden snapshot's first target N times, fills a ring of ``--entries`` snapshots one second
apart, and prints the median render time, the page size and the ring's retained size
(tracemalloc), so a node with many GPUs or a browser left open shows its price.

Usage: .venv/bin/python benchmarks/landing.py [--gpus 1,8,64] [--entries 600] [--repeat 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_collector import golden_snapshot

from rooftop.exporter.web.history import SnapshotHistory
from rooftop.exporter.web.landing import landing_page


def node(gpus: int):  # type: ignore[no-untyped-def]
    base = golden_snapshot()
    target, gpu = base.targets[0], base.gpus[0]
    targets, views = [], []
    for i in range(gpus):
        uuid = f"GPU-bench-{i:04d}"
        targets.append(dataclasses.replace(target, gpu=str(i), uuid=uuid, engine=f"e{i}"))
        views.append(
            dataclasses.replace(gpu, identity=dataclasses.replace(gpu.identity, index=i, uuid=uuid))
        )
    return dataclasses.replace(base, targets=tuple(targets), gpus=tuple(views))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", default="1,8,64")
    parser.add_argument("--entries", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"{'GPUs':>5} {'render ms (median)':>19} {'page kB':>8} {'ring MB':>8}")
    for gpus in (int(g) for g in args.gpus.split(",")):
        snapshot = node(gpus)
        tracemalloc.start()
        history = SnapshotHistory(window_seconds=args.entries + 1.0, max_entries=args.entries)
        for i in range(args.entries):
            history.record(dataclasses.replace(snapshot, unix_seconds=snapshot.unix_seconds + i))
        ring, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        latest = dataclasses.replace(snapshot, unix_seconds=snapshot.unix_seconds + args.entries)
        entries = history.entries()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            page = landing_page(latest, entries)
            times.append(time.perf_counter() - start)
        print(
            f"{gpus:>5} {statistics.median(times) * 1e3:>19.1f} {len(page) / 1e3:>8.0f} "
            f"{ring / 1e6:>8.2f}"
        )


if __name__ == "__main__":
    main()
