"""The demo node's fake vLLM endpoints, served from their own process.

``rooftop serve --demo`` serves its fake engines from the exporter's own process, so the
process's CPU time includes rendering and serving the engines' expositions. The overhead
benchmark runs them here instead so the exporter's figure is the exporter's alone.

Prints one JSON line ``{"urls": [...]}`` once listening, then advances the simulation every
``--interval`` seconds until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from rooftop.exporter.demo.node import DemoNode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--engines", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--cycle-seconds", type=float, default=120.0)
    args = parser.parse_args()
    node = DemoNode(gpus=args.gpus, engines=args.engines, cycle_seconds=args.cycle_seconds)
    node.start()
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)

    def _advance() -> None:
        while not stop.is_set():
            node.advance(time.monotonic())
            stop.wait(args.interval)

    threading.Thread(target=_advance, name="advance", daemon=True).start()
    print(json.dumps({"urls": node.engine_urls()}), flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
