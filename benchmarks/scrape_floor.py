"""Is the ``/metrics`` tail the sampler's or the serving path's? The same scrapes against the
harness (rooftop's serve wiring) on a quiet node and on a busy one, alternated in one run.

* quiet: 8 GPUs (the demo's fake NVML) + 1 engine serving the 13 kB vLLM V1 body: the sampler
  holds the GIL for a few ms a second;
* busy: 8 GPUs + 8 engines serving the 506 kB body (4 models x 3 LoRA adapters): the sampler
  reads 4 MB a second.

For each: sampler CPU per cycle, then ``/metrics`` p50/p99 with 10 scrapes sent at the same
instant once a second (10 s) and with 1, 10 and 50 closed-loop scrapers (4 s each); keep-alive
and gzip, the client in this process (``benchmarks/_common.py``). A busy/quiet ratio near 1
says the tail comes from serving and the client sharing the machine's cores, not from the
engine polls.

* floor: the same scrapes against ``_static_server.py``, a thread per connection writing one
  fixed gzip body of about rooftop's size, in a process that does nothing else: what this
  machine and this client give any Python server. busy/floor is rooftop's own share of a tail.
* floor, one selector thread: the same server answering every connection from one
  ``selectors`` loop, as rooftop's own server (``exporter/http_loop.py``) does: how much of the
  floor is the thread per connection, and the floor for rooftop's way of serving.

Usage: .venv/bin/python benchmarks/scrape_floor.py [--rounds 2] [--window 5]
"""

from __future__ import annotations

import argparse
import gzip
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import PYTHON, Child, free_port, header, table
from side_by_side import sampler_and_scrapes, scrape_figures

CONFIGS = {"quiet": (8, 1, "small"), "busy": (8, 8, "4x3-lora")}
FLOOR = "floor: static bytes, no sampler"
FLOOR_ONE_THREAD = "floor, one selector thread"
FLOORS = {FLOOR: "--threads", FLOOR_ONE_THREAD: "--one-thread"}
FLOOR_SERIES = 800
"""About the series rooftop serves at 8 + 8, so the floor's gzip body is about as large."""
COLUMNS = (
    ("ms_per_cycle", "CPU ms/cycle"),
    ("burst_p50_ms", "10 at once p50"),
    ("burst_p99_ms", "p99"),
    ("loop1_p99_ms", "1 scraper p99"),
    ("loop10_p50_ms", "10 p50"),
    ("loop10_p99_ms", "10 p99"),
    ("loop50_p99_ms", "50 p99"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=5.0, help="CPU window, seconds")
    args = parser.parse_args()
    header(
        "scrape latency: quiet node, busy node, floor",
        "benchmarks/scrape_floor.py " + " ".join(sys.argv[1:]),
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in (*CONFIGS, *FLOORS)}
    for round_number in range(args.rounds):
        names = [*CONFIGS, *FLOORS]
        order = names if round_number % 2 == 0 else list(reversed(names))
        for name in order:
            print(f"round {round_number + 1}: {name}…", file=sys.stderr, flush=True)
            if name in FLOORS:
                runs[name].append(floor_figures(FLOORS[name]))
                continue
            gpus, engines, size = CONFIGS[name]
            runs[name].append(sampler_and_scrapes(None, gpus, engines, size, args.window))

    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[name])

    rows: list[list[object]] = []
    for name, (gpus, engines, size) in CONFIGS.items():
        rows.append(
            [f"{name}: {gpus} GPUs + {engines} x {size}", *(median(name, k) for k, _ in COLUMNS)]
        )
    rows.extend([floor, *(median(floor, k) for k, _ in COLUMNS)] for floor in FLOORS)
    rows.append(["busy / quiet", *(median("busy", k) / median("quiet", k) for k, _ in COLUMNS)])
    rows.append(["busy / floor", *_ratios("busy", FLOOR, median)])
    rows.append(["busy / one-thread floor", *_ratios("busy", FLOOR_ONE_THREAD, median)])
    rows.append(["one thread / floor", *_ratios(FLOOR_ONE_THREAD, FLOOR, median)])
    print(f"medians of {args.rounds} rounds; latencies in ms\n")
    print(table(["node", *(title for _, title in COLUMNS)], rows))
    return 0


def floor_figures(mode: str = "--threads") -> dict[str, float]:
    """The same scrapes against ``_static_server.py``: one fixed gzip body written by a thread
    per connection (``--threads``) or by one selector thread (``--one-thread``), in a process
    that does nothing else. What this machine and this client give a Python server served
    either way; rooftop's tail above the first is rooftop's."""
    rng = random.Random(15)
    text = "".join(
        f'rooftop_floor_series{{gpu="{i % 8}",engine="vllm-{i % 8}",n="{i}"}} {rng.random()}\n'
        for i in range(FLOOR_SERIES)
    )
    with tempfile.TemporaryDirectory(prefix="rooftop-floor-") as folder:
        body = Path(folder) / "body.gz"
        body.write_bytes(gzip.compress(text.encode(), compresslevel=1))
        port = free_port()
        child = Child(
            [PYTHON, "benchmarks/_static_server.py", mode, f"--port={port}", f"--body={body}"],
            stdin_pipe=True,
        )
        try:
            child.read_json_line()
            out = scrape_figures(port)
        finally:
            child.close()
    out["ms_per_cycle"] = 0.0
    return out


def _ratios(name: str, baseline: str, median: Callable[[str, str], float]) -> list[object]:
    """``name`` / ``baseline`` per column; "-" where the baseline is 0 (the floor's CPU)."""
    return [
        median(name, key) / median(baseline, key) if median(baseline, key) else "-"
        for key, _ in COLUMNS
    ]


if __name__ == "__main__":
    sys.exit(main())
