"""The baseline a user would otherwise write: prometheus_client's ``start_http_server`` serving
``--series`` gauge series (as many as rooftop's /metrics holds), updated once a second.

Prints one JSON line ``{"ready": true}`` once listening; stdin closing ends the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from prometheus_client import Gauge, start_http_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--series", type=int, required=True)
    args = parser.parse_args()
    families = max(1, args.series // 16)
    gauges = [
        Gauge(f"plain_metric_{i}", f"Plain metric {i}.", ["gpu", "engine"]) for i in range(families)
    ]
    children = [g.labels(str(j % 8), f"engine-{j}") for g in gauges for j in range(16)]
    stop = threading.Event()

    def update() -> None:
        while not stop.is_set():
            now = time.time()
            for k, child in enumerate(children):
                child.set(now + k)
            stop.wait(1.0)

    threading.Thread(target=update, daemon=True).start()
    start_http_server(args.port, addr="127.0.0.1")
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
