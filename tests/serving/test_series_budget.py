"""The series budget: how many series rooftop exports per node, per GPU and per engine.

Real ``rooftop serve --demo`` processes run side by side with 1-2 GPUs and 1-4 engines (engine
i on GPU i % gpus) through a whole load cycle; every series seen is collected. The most series
in one scrape (what a TSDB head holds per node) is fitted to
``fixed + per_gpu x GPUs + per_engine x engines`` from three configurations and must predict
the others exactly (an engine runs on one GPU here, so the GPU x engine "target" series count
per engine), plus ``per_idle_gpu`` for a GPU no engine runs on. The fit must equal the budget
below, which docs/scale.md states: a change that adds series fails here until the budget and
the docs say so, announced rather than discovered upstream.

Over a whole cycle a few more distinct series appear (the verdict's reason label takes a
handful of values per target as phases change, and phase-only series come and go); that churn
is bounded per engine.

Every series also stays under Mimir's default limit of 30 labels per series
(``-validation.max-label-names-per-series``) with the labels the scrape and the fleet add.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

CYCLE_SECONDS = 10.0
INTERVAL_SECONDS = 0.25
CONFIGS = ((1, 1), (1, 2), (2, 2), (2, 4), (2, 1), (3, 1))
"""(GPUs, engines). (1,1), (1,2), (2,2) fit; (2,4) checks; (2,1) and (3,1) add idle GPUs."""

# Announce a change here and in docs/scale.md ("Series budget") together.
# Grew from 8/30/32/35 when the production-effects metrics landed (causes, speculation,
# communication, KV headroom, cross-checks: ~21 series per engine).
BUDGET = {"fixed": 11, "per_gpu": 39, "per_engine": 66, "per_idle_gpu": 52}
AT_ONCE = {(1, 1): 116, (1, 2): 182, (2, 2): 221, (2, 4): 353, (2, 1): 168, (3, 1): 220}
"""Series at once per configuration, as measured (deterministic: the most in one scrape)."""
PREDICTION_SLACK = 0.01
"""The linear budget predicts the configurations it was not fitted on within 1 % (exactly, as
of the last update: 2 GPUs + 4 engines 353, 3 GPUs + 1 engine 220)."""
CHURN_PER_ENGINE_MAX = 12
"""Distinct series over a cycle beyond the most at once, per engine: reason-label values of
the verdict (a handful of rule templates) and phase-only series."""

MIMIR_MAX_LABELS = 30
"""Mimir's default -validation.max-label-names-per-series (``__name__`` counts as one)."""
ADDED_LABELS = (
    "__name__",
    # Prometheus scrape and Kubernetes pod discovery (kube-prometheus-stack PodMonitor).
    "job",
    "instance",
    "namespace",
    "pod",
    "container",
    "endpoint",
    "service",
    # Fleet external labels: cluster, HA pair, and the Prometheus that wrote it.
    "cluster",
    "prometheus",
    "prometheus_replica",
    "region",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _demo(gpus: int, engines: int) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    env["ROOFTOP_RATE_WINDOW_SECONDS"] = "1"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rooftop.exporter",
            "serve",
            "--demo",
            "--demo-gpus",
            str(gpus),
            "--demo-engines",
            str(engines),
            "--demo-cycle-seconds",
            f"{CYCLE_SECONDS:g}",
            "--interval",
            f"{INTERVAL_SECONDS:g}",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _series(text: str) -> set[str]:
    """Series identities (name + labels) of one exposition, process_* and python_* left out:
    prometheus_client's own families depend on the platform, not on rooftop."""
    found = set()
    for line in text.splitlines():
        if not line or line.startswith("#") or line.startswith(("process_", "python_")):
            continue
        found.add(line.rsplit(" ", 1)[0])
    return found


def _observe(gpus: int, engines: int) -> tuple[int, int, int]:
    """(most series in one scrape, distinct series over a cycle, most labels on a series)."""
    with _demo(gpus, engines) as url:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if b"rooftop_gpu_bound{" in response.read():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the demo never served a verdict"
            time.sleep(0.2)
        # The rates need a window of samples before every figure is present: skip one cycle.
        time.sleep(CYCLE_SECONDS / 2)
        at_once, seen = 0, set()
        end = time.monotonic() + CYCLE_SECONDS * 1.5
        while time.monotonic() < end:
            with urllib.request.urlopen(url, timeout=2) as response:
                series = _series(response.read().decode())
            at_once = max(at_once, len(series))
            seen |= series
            time.sleep(INTERVAL_SECONDS)
    labels = max(entry.count('="') for entry in seen)
    return at_once, len(seen), labels


@pytest.fixture(scope="module")
def observed() -> dict[tuple[int, int], tuple[int, int, int]]:
    with ThreadPoolExecutor(max_workers=len(CONFIGS)) as pool:
        results = pool.map(lambda config: _observe(*config), CONFIGS)
        return dict(zip(CONFIGS, results, strict=True))


def _fit(counts: dict[tuple[int, int], int]) -> dict[str, int]:
    """Solve fixed + g x per_gpu + e x per_engine from (1,1), (1,2), (2,2); idle GPUs from
    (2,1) - (1,1)."""
    per_engine = counts[(1, 2)] - counts[(1, 1)]
    per_gpu = counts[(2, 2)] - counts[(1, 2)]
    fixed = counts[(1, 1)] - per_gpu - per_engine
    per_idle_gpu = counts[(2, 1)] - counts[(1, 1)]
    return {
        "fixed": fixed,
        "per_gpu": per_gpu,
        "per_engine": per_engine,
        "per_idle_gpu": per_idle_gpu,
    }


def _predict(budget: dict[str, int], gpus: int, engines: int) -> int:
    busy = min(gpus, engines)
    return (
        budget["fixed"]
        + budget["per_gpu"] * busy
        + budget["per_idle_gpu"] * (gpus - busy)
        + budget["per_engine"] * engines
    )


def test_series_follow_the_announced_budget(
    observed: dict[tuple[int, int], tuple[int, int, int]],
) -> None:
    counts = {config: figures[0] for config, figures in observed.items()}
    fitted = _fit(counts)
    print(f"\nseries at once: {fitted}; observed {counts}")
    for (gpus, engines), count in counts.items():
        predicted = _predict(fitted, gpus, engines)
        assert abs(count - predicted) <= PREDICTION_SLACK * predicted, (
            f"{gpus} GPUs + {engines} engines: {count} series, not ~{predicted} ({fitted}): a "
            "series multiplies with something other than GPUs and engines"
        )
    assert counts == AT_ONCE, (
        f"series per configuration changed: {counts} (was {AT_ONCE}); if intended, update "
        "AT_ONCE, BUDGET and docs/scale.md"
    )
    assert fitted == BUDGET, (
        f"the series budget changed: {fitted} (was {BUDGET}); if intended, update the budget "
        "here and the table in docs/scale.md"
    )


def test_churn_over_a_cycle_is_bounded(
    observed: dict[tuple[int, int], tuple[int, int, int]],
) -> None:
    for (gpus, engines), (at_once, over_a_cycle, _) in observed.items():
        churn = over_a_cycle - at_once
        print(f"{gpus} GPUs + {engines} engines: {at_once} at once, {over_a_cycle} over a cycle")
        assert churn <= CHURN_PER_ENGINE_MAX * engines, (
            f"{gpus} GPUs + {engines} engines: {churn} series come and go in one cycle; a label "
            "value changes with the data (a number in a label?)"
        )


def test_every_series_fits_mimirs_label_limit(
    observed: dict[tuple[int, int], tuple[int, int, int]],
) -> None:
    most = max(figures[2] for figures in observed.values())
    print(f"\nwidest series: {most} labels")
    assert most + len(ADDED_LABELS) <= MIMIR_MAX_LABELS, (
        f"a series has {most} labels; with {len(ADDED_LABELS)} added upstream it passes "
        f"Mimir's {MIMIR_MAX_LABELS}"
    )


def test_the_docs_state_the_budget() -> None:
    text = (REPO_ROOT / "docs" / "scale.md").read_text(encoding="utf-8")
    row = (
        f"| series at once | {BUDGET['fixed']} | {BUDGET['per_gpu']} | "
        f"{BUDGET['per_engine']} | {BUDGET['per_idle_gpu']} |"
    )
    assert row in text, f"docs/scale.md lacks the row {row!r}"
