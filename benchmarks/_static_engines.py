"""Fake engines that serve one recorded-shape exposition each (benchmarks/expositions.py), from
their own process, so that rooftop's CPU figure is rooftop's alone.

Each endpoint serves the same vLLM V1 body with its generation and prompt counters advanced on
every request (a busy engine: the values change between polls, the shape does not).

Prints one JSON line ``{"urls": [...]}`` once listening; stdin closing ends the process.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from expositions import SIZES, all_sizes, build

_COUNTER = re.compile(r"^(vllm:(?:generation|prompt)_tokens_total\{[^}]*\}) (\S+)$", re.M)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", type=int, required=True)
    parser.add_argument("--size", default="4x3-lora", choices=["small", *SIZES])
    args = parser.parse_args()
    text = all_sizes()["small"] if args.size == "small" else build(*SIZES[args.size])
    parts = _COUNTER.split(text)
    lock = threading.Lock()
    state = {"tick": 0}

    def body() -> bytes:
        with lock:
            state["tick"] += 1
            tick = state["tick"]
        out = []
        # split with two groups: text, series, value, text, series, value, ...
        for i, part in enumerate(parts):
            if i % 3 == 2:
                out.append(f" {float(part) + 37.0 * tick}")
            else:
                out.append(part)
        return "".join(out).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            payload = body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    servers = []
    for _ in range(args.engines):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    urls = [f"http://127.0.0.1:{s.server_address[1]}/metrics" for s in servers]
    print(json.dumps({"urls": urls}), flush=True)
    sys.stdin.read()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
