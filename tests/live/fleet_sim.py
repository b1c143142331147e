"""A simulated fleet on a real scale-out store: demo nodes -> Prometheus agent -> VictoriaMetrics,
fleet rules evaluated by vmalert, the fleet dashboard's queries answered from the store.

- ``nodes`` ``rooftop serve --demo`` processes, each a node with its own GPU type, model and
  place in the load cycle (several GPU types, several models, every phase at once), spread
  over three clusters by a ``cluster`` target label;
- one Prometheus 2.x in agent mode (``--enable-feature=agent``: scrape and remote-write only, no
  local queries or rules, as at the edge of a fleet) scrapes them and remote-writes only the
  keep-list of dashboards/fleet_rules.py (SHIPPED_METRICS) into
- Debian's VictoriaMetrics single-node (``victoria-metrics``), with
- ``vmalert`` evaluating dashboards/rules/rooftop.fleet.rules.yaml against it and writing the
  results back.

The scrape interval runs at 1 s, then the agent reloads at 5 s. Measured and printed: series
per node (exported and shipped), ingestion rate into the store, rule evaluation time, scrape
duration per target at both intervals. Every process is started here on its own free port
with its own temp dir and stopped by PID.

Run alone: ``python -m tests.live.fleet_sim [--nodes 50]`` prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rooftop.dashboards.fleet_rules import FLEET_GROUP, fleet_rules_yaml, shipped_metrics_regex

REPO = Path(__file__).resolve().parents[2]

# (GPU catalog id, model) pairs that fit in BF16 on one GPU; node i takes pair i % len.
NODE_KINDS: tuple[tuple[str, str], ...] = (
    ("h100-sxm", "llama-3.1-8b"),
    ("h200", "qwen2.5-32b"),
    ("a100-sxm4-80gb", "qwen2.5-7b"),
    ("l40s", "mistral-7b"),
    ("b200", "qwen3-32b"),
    ("h100-pcie", "llama-3.1-8b"),
    ("l4", "llama-3.2-3b"),
)
CLUSTERS = ("sim-east", "sim-west", "sim-eu")
CYCLE_SECONDS = 40.0
"""The demo's load cycle; node i starts i/nodes of a cycle in, so all phases run at once."""


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, never the same one twice.

    A port that ``bind(0)`` hands out is free only until someone else binds port 0: the fleet's
    own demo nodes start their engines on port 0 while later nodes are still starting, and one
    of them took a port handed to a node that had not bound it yet ("Address already in use").
    Ports below the ephemeral range are never handed out by ``bind(0)``."""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, max(20001, low))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port between 20000 and {low}")


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def wait_for(
    check: Callable[[], bool], seconds: float, what: str, log: Callable[[], str] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        time.sleep(0.25)
    tail = f":\n{log()}" if log is not None else ""
    raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}{tail}")


def counter_total(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of a family's samples in a Prometheus text exposition whose labels include ``labels``."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric = head.split("{", 1)[0]
        if metric != name:
            continue
        if all(f'{key}="{val}"' in head for key, val in labels.items()):
            total += float(value)
    return total


@dataclass
class Fleet:
    nodes: int
    workdir: Path
    node_ports: list[int] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    vm_port: int = 0
    vmalert_port: int = 0
    agent_port: int = 0

    # --- processes --------------------------------------------------------------------

    def _start(self, name: str, command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **kwargs)
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def start_nodes(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
        for index in range(self.nodes):
            gpu, model = NODE_KINDS[index % len(NODE_KINDS)]
            port = free_port()
            self.node_ports.append(port)
            self._start(
                f"node-{index}",
                [
                    sys.executable,
                    "-m",
                    "rooftop.exporter",
                    "serve",
                    "--demo",
                    "--demo-gpu",
                    gpu,
                    "--demo-model",
                    model,
                    "--demo-cycle-seconds",
                    f"{CYCLE_SECONDS:g}",
                    "--demo-offset-seconds",
                    f"{CYCLE_SECONDS * index / self.nodes:.2f}",
                    "--demo-seed",
                    str(index + 1),
                    "--web.listen-address",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                ],
                cwd=REPO,
                env=env,
            )

        def all_serving() -> bool:
            for index, port in enumerate(self.node_ports):
                node = self.processes[f"node-{index}"]
                if node.poll() is not None:
                    raise RuntimeError(f"node-{index} exited:\n{self.log_tail(f'node-{index}')}")
                if b"rooftop_gpu_bound{" not in http_get(f"http://127.0.0.1:{port}/metrics"):
                    return False
            return True

        wait_for(all_serving, 120, f"{self.nodes} demo nodes to serve a verdict")

    def start_store(self) -> None:
        self.vm_port = free_port()
        self._start(
            "victoria-metrics",
            [
                "victoria-metrics",
                f"-storageDataPath={self.workdir / 'vm-data'}",
                f"-httpListenAddr=127.0.0.1:{self.vm_port}",
                "-retentionPeriod=1d",
                # Answer queries up to now: the default hides the last 30 s of fresh data.
                "-search.latencyOffset=1s",
                "-search.disableCache",
                # A fixed lookback, as Prometheus/Mimir/Thanos have (5 m there): by default VM
                # derives it from the median sample interval, which after the 1 s -> 5 s
                # switch makes 5 s-old samples look stale.
                "-search.maxLookback=30s",
            ],
        )
        wait_for(
            lambda: http_get(f"{self.vm_url}/health") == b"OK",
            30,
            "VictoriaMetrics",
            lambda: self.log_tail("victoria-metrics"),
        )
        rules = self.workdir / "rooftop.fleet.rules.yaml"
        rules.write_text(fleet_rules_yaml(), encoding="utf-8")
        self.vmalert_port = free_port()
        self._start(
            "vmalert",
            [
                "vmalert",
                f"-rule={rules}",
                f"-datasource.url={self.vm_url}",
                f"-remoteWrite.url={self.vm_url}",
                "-evaluationInterval=5s",
                f"-httpListenAddr=127.0.0.1:{self.vmalert_port}",
            ],
        )
        wait_for(
            lambda: b"OK" in http_get(f"http://127.0.0.1:{self.vmalert_port}/health"),
            30,
            "vmalert",
            lambda: self.log_tail("vmalert"),
        )

    def agent_config(self, interval_seconds: int) -> str:
        groups = [[] for _ in CLUSTERS]  # type: list[list[str]]
        for index, port in enumerate(self.node_ports):
            groups[index % len(CLUSTERS)].append(f"127.0.0.1:{port}")
        static = "".join(
            f"      - targets: {json.dumps(targets)}\n        labels: {{cluster: {cluster}}}\n"
            for cluster, targets in zip(CLUSTERS, groups, strict=True)
            if targets
        )
        # Prometheus durations are integers of a unit: 900ms, not 0.9s.
        timeout_ms = 900 if interval_seconds == 1 else min(interval_seconds, 10) * 1000 - 500
        return (
            "global:\n"
            f"  scrape_interval: {interval_seconds}s\n"
            f"  scrape_timeout: {timeout_ms}ms\n"
            "scrape_configs:\n"
            "  - job_name: rooftop\n"
            "    static_configs:\n"
            f"{static}"
            "remote_write:\n"
            f"  - url: {self.vm_url}/api/v1/write\n"
            "    queue_config: {batch_send_deadline: 1s}\n"
            "    write_relabel_configs:\n"
            "      - source_labels: [__name__]\n"
            f"        regex: '{shipped_metrics_regex()}'\n"
            "        action: keep\n"
        )

    def start_agent(self, interval_seconds: int) -> None:
        prometheus = shutil.which("prometheus")
        assert prometheus is not None
        config = self.workdir / "agent.yml"
        config.write_text(self.agent_config(interval_seconds), encoding="utf-8")
        self.agent_port = free_port()
        self._start(
            "prometheus-agent",
            [
                prometheus,
                "--enable-feature=agent",
                f"--config.file={config}",
                f"--storage.agent.path={self.workdir / 'agent-wal'}",
                f"--web.listen-address=127.0.0.1:{self.agent_port}",
                "--web.enable-lifecycle",
            ],
            cwd=self.workdir,
        )
        wait_for(
            lambda: b"Ready" in http_get(f"http://127.0.0.1:{self.agent_port}/-/ready"),
            30,
            "the Prometheus agent",
            lambda: self.log_tail("prometheus-agent"),
        )

    def reload_agent(self, interval_seconds: int) -> None:
        (self.workdir / "agent.yml").write_text(
            self.agent_config(interval_seconds), encoding="utf-8"
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.agent_port}/-/reload", method="POST"
        )
        urllib.request.urlopen(request, timeout=10).close()

    # --- the store ----------------------------------------------------------------------

    @property
    def vm_url(self) -> str:
        return f"http://127.0.0.1:{self.vm_port}"

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        body = http_get(f"{self.vm_url}/api/v1/query?{urllib.parse.urlencode(params)}")
        payload = json.loads(body)
        if payload.get("status") != "success":
            raise ValueError(f"{expr}: {payload}")
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def scalar(self, expr: str, at: float | None = None) -> float:
        result = self.query(expr, at)
        return float(result[0]["value"][1]) if result else float("nan")

    def label_values(self, label: str, match: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": match})
        payload = json.loads(http_get(f"{self.vm_url}/api/v1/label/{label}/values?{params}"))
        values: list[str] = payload["data"]
        return values

    def vm_metrics(self) -> str:
        return http_get(f"{self.vm_url}/metrics").decode()

    def vmalert_metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.vmalert_port}/metrics").decode()

    def exported_series_per_node(self) -> list[int]:
        counts = []
        for port in self.node_ports:
            text = http_get(f"http://127.0.0.1:{port}/metrics").decode()
            counts.append(sum(1 for line in text.splitlines() if line and line[0] != "#"))
        return counts


@contextmanager
def running_fleet(nodes: int) -> Iterator[Fleet]:
    with tempfile.TemporaryDirectory(prefix="rooftop-fleet-") as tmp:
        fleet = Fleet(nodes=nodes, workdir=Path(tmp))
        try:
            fleet.start_store()
            fleet.start_nodes()
            fleet.start_agent(1)
            yield fleet
        finally:
            fleet.stop()


@dataclass
class FleetFigures:
    nodes: int
    gpu_kinds: int
    models: int
    exported_series_per_node: float
    shipped_series_per_node: float
    ingestion_samples_per_second: float
    rule_evaluation_seconds_mean: float
    rule_evaluation_seconds_max: float
    rules: int
    scrape_seconds: dict[int, tuple[float, float]]
    """interval -> (mean, p99) scrape duration per target."""
    phase_seconds: dict[int, float]
    steady_window: tuple[float, float]
    """Unix start and end of the 1 s phase: every target scraped, no reload in between (the
    reload to 5 s restarts the scrape loops, and targets drop out of the store for a moment)."""

    def table(self) -> str:
        rows = [
            ("simulated nodes (1 GPU + 1 engine each)", f"{self.nodes}"),
            ("GPU types / models", f"{self.gpu_kinds} / {self.models}"),
            ("series exported per node (/metrics)", f"{self.exported_series_per_node:.0f}"),
            ("series shipped per node (keep-list)", f"{self.shipped_series_per_node:.0f}"),
            (
                "ingestion into VictoriaMetrics at 1 s",
                f"{self.ingestion_samples_per_second:.0f} samples/s",
            ),
            (
                f"fleet rules evaluated by vmalert ({self.rules} rules)",
                f"{self.rule_evaluation_seconds_mean * 1000:.1f} ms mean, "
                f"{self.rule_evaluation_seconds_max * 1000:.1f} ms max per group",
            ),
        ]
        for interval, (mean, p99) in sorted(self.scrape_seconds.items()):
            rows.append(
                (
                    f"scrape duration per target at {interval} s"
                    f" ({self.phase_seconds[interval]:.0f} s window)",
                    f"{mean * 1000:.1f} ms mean, {p99 * 1000:.1f} ms p99",
                )
            )
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|---|"]
        lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
        return "\n".join(lines)


def measure(fleet: Fleet, seconds_per_interval: float = 25.0) -> FleetFigures:
    """Run at 1 s then at 5 s, and read the figures from the store, vmalert and the nodes."""
    wait_for(lambda: bool(fleet.query("up")), 30, "the first remote-written samples in the store")
    started = time.time()
    rows_before = counter_total(
        fleet.vm_metrics(), "vm_rows_inserted_total", type="promremotewrite"
    )
    time.sleep(seconds_per_interval)
    one_second_end = time.time()
    rows_after = counter_total(fleet.vm_metrics(), "vm_rows_inserted_total", type="promremotewrite")
    ingestion = (rows_after - rows_before) / (one_second_end - started)
    fleet.reload_agent(5)
    switched = time.time()
    time.sleep(seconds_per_interval)
    five_second_end = time.time()

    def scrape_stats(start: float, end: float) -> tuple[float, float]:
        window = f"{max(1, int(end - start))}s"
        mean = fleet.scalar(f"avg(avg_over_time(scrape_duration_seconds[{window}]))", at=end)
        p99 = fleet.scalar(
            f"quantile(0.99, max_over_time(scrape_duration_seconds[{window}]))", at=end
        )
        return mean, p99

    # Leave the reload's first seconds out of the 5 s window (targets restart their loops).
    scrape = {
        1: scrape_stats(started, one_second_end),
        5: scrape_stats(switched + 5, five_second_end),
    }
    vmalert = fleet.vmalert_metrics()
    eval_sum = counter_total(vmalert, "vmalert_iteration_duration_seconds_sum", group=FLEET_GROUP)
    eval_count = counter_total(
        vmalert, "vmalert_iteration_duration_seconds_count", group=FLEET_GROUP
    )
    eval_max = counter_total(
        vmalert, "vmalert_iteration_duration_seconds", group=FLEET_GROUP, quantile="1"
    )
    exported = fleet.exported_series_per_node()
    shipped = fleet.scalar(
        f'count({{__name__=~"{shipped_metrics_regex()}", job="rooftop"}}) / count(up)',
        at=one_second_end,
    )
    return FleetFigures(
        nodes=fleet.nodes,
        gpu_kinds=len({kind for kind, _ in NODE_KINDS[: fleet.nodes]}),
        models=len({model for _, model in NODE_KINDS[: fleet.nodes]}),
        exported_series_per_node=statistics.mean(exported),
        shipped_series_per_node=shipped,
        ingestion_samples_per_second=ingestion,
        rule_evaluation_seconds_mean=eval_sum / eval_count if eval_count else float("nan"),
        rule_evaluation_seconds_max=eval_max,
        rules=len(fleet_rules_yaml().split("- record:")) - 1,
        scrape_seconds=scrape,
        phase_seconds={1: one_second_end - started, 5: five_second_end - switched - 5},
        steady_window=(started, one_second_end),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--seconds-per-interval", type=float, default=25.0)
    args = parser.parse_args()
    t0 = time.monotonic()
    with running_fleet(args.nodes) as fleet:
        figures = measure(fleet, args.seconds_per_interval)
    print(figures.table())
    print(f"\nwhole run: {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
