"""Load: 50 parallel scrapers against ``rooftop serve --demo`` (8 + 8 at a 0.1 s interval),
side by side with Debian's ``prometheus-node-exporter`` scraped by the same client in the same
run on the same machine.

Both exporters run for the whole run, each on its own loopback port; the phases alternate
(rooftop, node_exporter, rooftop, node_exporter, ...) so drift in the machine's load falls on
both. Each scraper is a closed loop (next request as soon as the answer is read): keep-alive
and gzip as Prometheus scrapes, or one connection per scrape with ``--no-keep-alive``. The
client shares the machine's cores with the server, so absolute times are the client's view on
this machine; compare the ratio.

Usage: .venv/bin/python benchmarks/load.py [--scrapers 50 --seconds 15 --rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys

from _common import (
    Child,
    ScrapeResult,
    free_port,
    header,
    ms,
    rooftop_demo,
    scrape,
    table,
    wait_for_metrics,
)

NODE_EXPORTER_NAMES = ("prometheus-node-exporter", "node_exporter")


def node_exporter(port: int) -> Child:
    binary = next((path for name in NODE_EXPORTER_NAMES if (path := shutil.which(name))), None)
    if binary is None:
        raise SystemExit(
            "prometheus-node-exporter not found: install it (apt-get install "
            "prometheus-node-exporter) or put node_exporter on PATH"
        )
    # --web.max-requests=0: node_exporter's default of 40 parallel scrapes answers the rest 503.
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--web.max-requests=0"]
    child = Child([*argv, "--log.level=warn"])
    wait_for_metrics(f"http://127.0.0.1:{port}/metrics", child, needle=b"node_")
    return child


def merged(results: list[ScrapeResult]) -> ScrapeResult:
    total = ScrapeResult()
    for result in results:
        total.latencies_seconds += result.latencies_seconds
        total.errors += result.errors
        total.wall_seconds += result.wall_seconds
        total.body_bytes = max(total.body_bytes, result.body_bytes)
        total.first_error = total.first_error or result.first_error
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--engines", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--no-keep-alive", dest="keep_alive", action="store_false")
    parser.add_argument("--no-gzip", dest="gzip", action="store_false")
    args = parser.parse_args()
    header("rooftop under load", "benchmarks/load.py " + " ".join(sys.argv[1:]))
    rooftop_port, node_port = free_port(), free_port()
    rooftop = rooftop_demo(rooftop_port, args.gpus, args.engines, args.interval)
    node: Child | None = None
    runs: dict[str, list[ScrapeResult]] = {"rooftop": [], "node_exporter": []}
    rss: dict[str, float] = {}
    try:
        node = node_exporter(node_port)
        for _ in range(args.rounds):
            for name, port in (("rooftop", rooftop_port), ("node_exporter", node_port)):
                print(f"scraping {name}…", file=sys.stderr, flush=True)
                runs[name].append(
                    scrape(
                        port,
                        args.scrapers,
                        args.seconds,
                        keep_alive=args.keep_alive,
                        gzip=args.gzip,
                    )
                )
        rss = {"rooftop": rooftop.rss_bytes() / 1e6, "node_exporter": node.rss_bytes() / 1e6}
    finally:
        rooftop.close()
        if node is not None:
            node.close()

    mode = ("keep-alive" if args.keep_alive else "a connection per scrape") + (
        ", gzip" if args.gzip else ", no gzip"
    )
    print(
        f"## {args.scrapers} closed-loop scrapers ({mode}), {args.rounds} x {args.seconds:g} s "
        f"each; rooftop: {args.gpus} GPUs + {args.engines} engines at {args.interval:g} s\n"
    )
    totals = {name: merged(results) for name, results in runs.items()}
    rows = []
    for name, result in totals.items():
        rows.append(
            (
                name,
                result.body_bytes,
                len(result.latencies_seconds),
                result.errors,
                result.per_second,
                ms(result.percentile(50)),
                ms(result.percentile(90)),
                ms(result.percentile(99)),
                ms(max(result.latencies_seconds, default=float("nan"))),
                rss.get(name, float("nan")),
            )
        )
    print(
        table(
            [
                "target",
                "body bytes",
                "scrapes",
                "errors",
                "scrapes/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "RSS MB",
            ],
            rows,
        )
    )
    ours, theirs = totals["rooftop"], totals["node_exporter"]
    print("\n## rooftop / node_exporter (same client, same run)\n")
    print(
        table(
            ["p50", "p90", "p99", "max", "scrapes/s"],
            [
                (
                    *(ours.percentile(q) / theirs.percentile(q) for q in (50, 90, 99)),
                    max(ours.latencies_seconds, default=float("nan"))
                    / max(theirs.latencies_seconds, default=float("nan")),
                    ours.per_second / theirs.per_second if theirs.per_second else float("nan"),
                )
            ],
        )
    )
    for name, result in totals.items():
        if result.first_error:
            print(f"\nfirst {name} error: {result.first_error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
