"""Cost of reading one engine poll: parse + extract, per exposition size, as ratios in one run.

For each exposition (benchmarks/expositions.py: the recorded vLLM V1 capture, then one model on
2 data-parallel ranks, 4 models x 3 LoRA adapters, and that on 10 ranks), in interleaved rounds
(every variant once per round, the order shuffled each round, the median over rounds kept), so
that a machine shared with other work slows every variant alike:

* ``before``: rooftop's poll before the selective parser: prometheus_client's text parser +
  rooftop's merge (``parse_exposition_reference``), detection, extraction;
* ``prometheus_client``: ``text_string_to_metric_families`` alone, consumed (no merge, no
  extraction);
* ``now, whole body``: the selective parser keeping every family (bucket lines skipped);
* ``now``: what ``EngineSource.poll`` does once the engine is recognised: parse with the
  adapter's selection, ``recognise``, ``extract``;
* ``now, filtered``: the same poll when the engine answers ``?name[]=`` (vLLM does; see
  ``exporter/sources/name_filter.py``): the body prometheus_client's restricted registry
  gives for the names rooftop asks for (``_static_engines.restricted``), parsed and laid over
  the last whole body's families, then ``recognise`` and ``extract``;
* ``recognition``: the names-only parse used once per engine (and on a change of engine).

Times are CPU seconds of the benchmark thread; each ratio is the median over rounds of the
variant's time over ``before``'s in the same round.

No compiled Prometheus text parser is published on PyPI as a Python package (the Rust crates
``prometheus-parse`` and ``prom_text_format_parser`` have no Python wheels), so the table has
no such column; see docs/performance.md.

Usage: .venv/bin/python benchmarks/parse.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable

from _common import header, table
from _static_engines import restricted
from expositions import all_sizes
from prometheus_client.parser import text_string_to_metric_families

from rooftop.exporter.sources.engines import detect_engine
from rooftop.exporter.sources.exposition import parse_exposition, parse_exposition_reference
from rooftop.exporter.sources.name_filter import NameFilter, without_unread_alternates
from rooftop.exporter.sources.selective_parser import NAMES_ONLY, FamilySelection

TARGETS = {"one-model-dp2": 0.15, "4x3-lora": 0.12}
"""Issue 15: parse + extract of a ~60 kB vLLM <= 0.15x before, ~450 kB <= 0.12x."""


def variants(text: str) -> dict[str, Callable[[], object]]:
    adapter, _ = detect_engine(parse_exposition_reference(text))
    whole = FamilySelection(everything=True)

    def before() -> object:
        families = parse_exposition_reference(text)
        found, _ = detect_engine(families)
        return found.extract(families)

    def now() -> object:
        families = parse_exposition(text, select=adapter.reads)
        assert adapter.recognise(families)
        return adapter.extract(families)

    selection = adapter.reads
    learned = NameFilter.learn(
        "http://engine/metrics",
        without_unread_alternates(parse_exposition(text, select=selection), selection),
        selection,
    )
    assert learned is not None
    asked = {value for _, value in urllib.parse.parse_qsl(urllib.parse.urlsplit(learned.url).query)}
    filtered_body = restricted(text, asked)

    def now_filtered() -> object:
        learned.polls_left = 1  # keep it due (a poll would read the whole body every 30)
        families = learned.overlay(parse_exposition(filtered_body, select=selection))
        assert families is not None and adapter.recognise(families)
        return adapter.extract(families)

    now_filtered.body_bytes = len(filtered_body.encode())  # type: ignore[attr-defined]
    return {
        "before": before,
        "prometheus_client": lambda: list(text_string_to_metric_families(text)),
        "now, whole body": lambda: parse_exposition(text, select=whole),
        "now": now,
        "now, filtered": now_filtered,
        "recognition": lambda: detect_engine(parse_exposition(text, select=NAMES_ONLY)),
    }


def measure(text: str, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """(median CPU seconds per variant, median over rounds of each variant's ratio to
    ``before`` in the same round; ``filtered_bytes``: the filtered body's size). CPU time of
    this thread (``time.thread_time``), so other processes on a loaded machine slow the
    figures less than wall time would."""
    cases = variants(text)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    ratios: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        order = list(cases)
        random.shuffle(order)
        this_round: dict[str, float] = {}
        for name in order:
            started = time.thread_time()
            cases[name]()
            this_round[name] = time.thread_time() - started
        for name, seconds in this_round.items():
            timings[name].append(seconds)
            ratios[name].append(seconds / this_round["before"])
    medians = {name: statistics.median(values) for name, values in timings.items()}
    medians["filtered_bytes"] = cases["now, filtered"].body_bytes  # type: ignore[attr-defined]
    return (
        medians,
        {name: statistics.median(values) for name, values in ratios.items()},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--big-rounds", type=int, default=5, help="rounds for the ~5 MB body")
    args = parser.parse_args()
    header("engine poll: parse + extract", "benchmarks/parse.py " + " ".join(sys.argv[1:]))
    rows = []
    results: dict[str, dict[str, float]] = {}
    for name, text in all_sizes().items():
        print(f"measuring {name}…", file=sys.stderr, flush=True)
        rounds = args.big_rounds if len(text) > 2_000_000 else args.rounds
        result, ratio = measure(text, rounds)
        results[name] = ratio
        samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        rows.append(
            (
                name,
                f"{len(text.encode()) / 1000:.1f}",
                samples,
                rounds,
                result["before"] * 1000,
                ratio["prometheus_client"],
                ratio["now, whole body"],
                ratio["now"],
                result["now"] * 1000,
                f"{result['filtered_bytes'] / 1000:.1f}",
                ratio["now, filtered"],
                result["now, filtered"] * 1000,
                ratio["recognition"],
                result["now"] / len(text.encode()) * 1e9,
            )
        )
    print(
        table(
            [
                "vLLM V1 exposition",
                "kB",
                "samples",
                "rounds",
                "before ms",
                "prometheus_client parser",
                "now, whole body",
                "now (adapter's selection)",
                "now ms",
                "filtered kB",
                "now, filtered",
                "filtered ms",
                "recognition (once)",
                "now ns/byte",
            ],
            rows,
        )
    )
    print(
        "\nms: median CPU time of the polling thread; ratios: median over rounds of the "
        "variant's CPU time / `before`'s in the same round\n"
    )
    checks = []
    for name, limit in TARGETS.items():
        ratio = results[name]["now"]
        checks.append((f"parse + extract, {name}", f"<= {limit}x", f"{ratio:.3f}x", ratio <= limit))
    print(
        table(
            ["target", "limit", "measured", "met"],
            [(a, b, c, "yes" if ok else "NO") for a, b, c, ok in checks],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
