"""Start-up cost of ``rooftop serve``: imports, and spawn to the first ``/metrics`` 200.

    .venv/bin/python benchmarks/startup.py [--rounds 7] [--compare PYTHON ...]

For each interpreter (this one first, then every ``--compare`` one, e.g. another checkout's
venv), interleaved round by round:

- imports: the total of ``python -X importtime`` for what ``rooftop serve`` loads before it
  parses its arguments (the ``cumulative`` column of every top-level import, summed);
- spawn → 200: ``rooftop serve --demo`` started as a process until its ``/metrics`` answers 200
  with the demo's series, polled every 10 ms.

A plain prometheus_client exporter (``start_http_server`` and one gauge) is the baseline a user
would otherwise write. Medians are printed with ratios to the baseline.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

IMPORTS = (
    "from rooftop.exporter import cli\n"
    "try:\n"
    "    cli.build_parser(['serve'])\n"
    "except TypeError:  # a version whose build_parser imports every command\n"
    "    cli.build_parser()\n"
)
BASELINE = (
    "import sys, time\n"
    "from prometheus_client import Gauge, start_http_server\n"
    "Gauge('baseline_up', 'up').set(1)\n"
    "start_http_server(int(sys.argv[1]), addr='127.0.0.1')\n"
    "time.sleep(3600)\n"
)
_TOP_LEVEL = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def import_seconds(python: str, code: str) -> float:
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        env={k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")},
    )
    total = 0
    for line in done.stderr.splitlines():
        match = _TOP_LEVEL.match(line)
        if match and not match.group(2).startswith(" "):  # top level: no indentation
            total += int(match.group(1))
    return total / 1e6


def spawn_to_200(argv: list[str], port: int, needle: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd="/", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - started < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    if r.status == 200 and needle in r.read().decode():
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"{argv[0]}: no 200 within 60 s")
    finally:
        process.terminate()
        process.wait(timeout=20)


def rooftop_argv(python: str, port: int) -> list[str]:
    return [python, "-m", "rooftop.exporter", "serve", "--demo", "--web.listen-address",
            f"127.0.0.1:{port}"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--compare", nargs="*", default=[], metavar="PYTHON")
    args = parser.parse_args()
    pythons = [sys.executable, *args.compare]
    imports: dict[str, list[float]] = {p: [] for p in pythons}
    spawn: dict[str, list[float]] = {p: [] for p in pythons}
    baseline_import: list[float] = []
    baseline_spawn: list[float] = []
    for _ in range(args.rounds):
        baseline_import.append(import_seconds(sys.executable, "import prometheus_client"))
        port = free_port()
        baseline_spawn.append(
            spawn_to_200([sys.executable, "-c", BASELINE, str(port)], port, "baseline_up")
        )
        for python in pythons:
            imports[python].append(import_seconds(python, IMPORTS))
            port = free_port()
            spawn[python].append(spawn_to_200(rooftop_argv(python, port), port, "rooftop_"))
    base_i, base_s = statistics.median(baseline_import), statistics.median(baseline_spawn)
    print(f"median of {args.rounds} interleaved rounds; ratio = / plain prometheus_client")
    print(f"{'interpreter':<48} {'imports s':>10} {'ratio':>6} {'spawn→200 s':>12} {'ratio':>6}")
    print(f"{'plain prometheus_client exporter':<48} {base_i:>10.3f} {1:>6.2f} {base_s:>12.3f} "
          f"{1:>6.2f}")  # fmt: skip
    for python in pythons:
        i, s = statistics.median(imports[python]), statistics.median(spawn[python])
        name = str(Path(python))
        print(f"{name:<48} {i:>10.3f} {i / base_i:>6.2f} {s:>12.3f} {s / base_s:>6.2f}")


if __name__ == "__main__":
    main()
