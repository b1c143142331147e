"""A fleet of 50 demo nodes on a real scale-out store (tests/live/fleet_sim.py has the setup).

Prometheus in agent mode scrapes the nodes and remote-writes the keep-list into Debian's
VictoriaMetrics; vmalert evaluates the fleet rules there; every fleet-dashboard query and
variable is answered from the store. The figures (series per node, ingestion rate, rule
evaluation time, scrape duration at 1 s and 5 s) are printed, not asserted: they are
measurements, and docs/scale.md quotes a run of ``python -m tests.live.fleet_sim``.

Bounded: 85-135 s measured on two busy cores (start-up ~30 s, 20 s at each interval, queries);
the timeout is 300 s.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator

import pytest

from rooftop.dashboards.common import substitute_variables
from rooftop.dashboards.fleet import FLEET_UID
from rooftop.dashboards.fleet_rules import fleet_record_names
from rooftop.dashboards.generate import generated_files
from tests.conftest import require_real_part
from tests.live.fleet_sim import CLUSTERS, NODE_KINDS, Fleet, FleetFigures, measure, running_fleet

pytestmark = [pytest.mark.prometheus, pytest.mark.slow, pytest.mark.timeout(300)]

NODES = 50
SECONDS_PER_INTERVAL = 20.0


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[Fleet, FleetFigures]]:
    missing = [
        tool for tool in ("prometheus", "victoria-metrics", "vmalert") if not shutil.which(tool)
    ]
    require_real_part(
        not missing,
        f"{missing} not found: apt-get install prometheus victoria-metrics (vmalert ships in it)",
    )
    with running_fleet(NODES) as running:
        figures = measure(running, SECONDS_PER_INTERVAL)
        print(f"\nfleet simulation, {NODES} nodes:\n{figures.table()}")
        yield running, figures


def _dashboard() -> dict[str, object]:
    dashboard: dict[str, object] = json.loads(generated_files()[f"{FLEET_UID}.json"])
    return dashboard


def test_the_fleet_is_varied(fleet: tuple[Fleet, FleetFigures]) -> None:
    running, figures = fleet
    assert figures.nodes == NODES >= 50
    assert figures.gpu_kinds == len({g for g, _ in NODE_KINDS}) >= 5
    assert len(running.label_values("model", "rooftop_gpu_bound")) >= 5
    assert sorted(running.label_values("cluster", "up")) == sorted(CLUSTERS)
    # Every node up, every phase of the cycle present at once: several verdict states (read at
    # the end of the steady phase: the reload to 5 s makes a moment's gap in the store).
    steady = figures.steady_window[1]
    assert running.scalar("count(up == 1)", at=steady) == NODES
    states = {r["metric"]["state"] for r in running.query("rooftop_gpu_bound == 1", at=steady)}
    assert len(states) >= 3, states


def test_figures_were_measured(fleet: tuple[Fleet, FleetFigures]) -> None:
    _, figures = fleet
    for value in (
        figures.exported_series_per_node,
        figures.shipped_series_per_node,
        figures.ingestion_samples_per_second,
        figures.rule_evaluation_seconds_mean,
        *figures.scrape_seconds[1],
        *figures.scrape_seconds[5],
    ):
        assert math.isfinite(value) and value > 0
    assert figures.shipped_series_per_node < figures.exported_series_per_node


def test_every_fleet_rule_is_recorded_in_the_store(fleet: tuple[Fleet, FleetFigures]) -> None:
    running, _ = fleet
    missing = [name for name in fleet_record_names() if not running.query(f'{{__name__="{name}"}}')]
    assert not missing, f"vmalert recorded nothing for {missing}"


def _evaluations(
    running: Fleet, record: str, window: tuple[float, float]
) -> dict[tuple[str, ...], dict[float, float]]:
    """Every value vmalert recorded for ``record`` in the window: labels -> {time: value}."""
    start, end = window
    series = running.query(f"{record}[{max(1, int(end - start))}s]", at=end)
    return {
        tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): {
            float(t): float(v) for t, v in s["values"]
        }
        for s in series
    }


def test_fleet_aggregates_agree_with_the_raw_series(fleet: tuple[Fleet, FleetFigures]) -> None:
    """GPUs per cluster from the rule equal the nodes the agent scrapes in that cluster.

    Read over the steady 1 s phase, evaluation by evaluation: a moment's gap in the store (a
    scrape that came late on two busy cores, the reload's restarted loops) can only lower a
    count, so the rule must reach every node and never count more than there are."""
    running, figures = fleet
    expected = {c: float(len(range(i, NODES, len(CLUSTERS)))) for i, c in enumerate(CLUSTERS)}
    counts = {
        dict(labels)["cluster"]: values
        for labels, values in _evaluations(
            running, "cluster:rooftop_gpu_bound:count_gpus", figures.steady_window
        ).items()
    }
    assert sorted(counts) == sorted(CLUSTERS)
    assert {c: max(v.values()) for c, v in counts.items()} == expected
    states = _evaluations(running, "cluster:rooftop_gpu_bound:sum", figures.steady_window)
    for cluster, by_time in counts.items():
        for at, gpus in by_time.items():
            one_hot = sum(
                values.get(at, 0.0)
                for labels, values in states.items()
                if dict(labels)["cluster"] == cluster
            )
            assert one_hot == gpus, f"{cluster} at {at}: states sum to {one_hot}, {gpus} GPUs"


def test_every_fleet_dashboard_query_is_answered(fleet: tuple[Fleet, FleetFigures]) -> None:
    running, _ = fleet
    dashboard = _dashboard()
    empty = []
    count = 0
    for panel in dashboard["panels"]:  # type: ignore[attr-defined]
        for target in panel.get("targets", []):
            count += 1
            if not running.query(substitute_variables(target["expr"])):
                empty.append(f"{panel['title']} / {target['refId']}")
    assert count >= 15
    assert not empty, f"no series from the store for: {empty}"


def test_fleet_dashboard_variables_list_values(fleet: tuple[Fleet, FleetFigures]) -> None:
    running, _ = fleet
    for variable in _dashboard()["templating"]["list"]:  # type: ignore[index]
        if variable["type"] != "query":
            continue
        match = re.match(r"^label_values\((.+), (\w+)\)$", variable["query"])
        assert match, variable["query"]
        values = running.label_values(match.group(2), substitute_variables(match.group(1)))
        assert values, f"variable {variable['name']} lists nothing"
