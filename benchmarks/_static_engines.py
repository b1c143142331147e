"""Fake engines that serve one recorded-shape exposition each (benchmarks/expositions.py), from
their own process, so that rooftop's CPU figure is rooftop's alone.

Each endpoint serves the same vLLM V1 body with its generation and prompt counters advanced on
every request (a busy engine: the values change between polls, the shape does not).

A query with ``name[]`` parameters gets only the samples so named, families left without
samples dropped: what prometheus_client's handlers (vLLM's ``/metrics``) answer, so that
rooftop's filtered polls cost here what they cost against a real vLLM.

Prints one JSON line ``{"urls": [...]}`` once listening; stdin closing ends the process.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from expositions import SIZES, all_sizes, build

_COUNTER = re.compile(r"^(vllm:(?:generation|prompt)_tokens_total\{[^}]*\}) (\S+)$", re.M)


def restricted(text: str, names: set[str]) -> str:
    """``text`` with only the samples named in ``names``, each family's ``# HELP``/``# TYPE``
    kept where it keeps a sample (prometheus_client's ``restricted_registry``)."""
    out: list[str] = []
    header: list[str] = []
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            if kept:
                out.extend(header + kept)
                header, kept = [], []
            elif header and line.startswith("# HELP"):
                header = []
            header.append(line)
        elif line.strip() and re.split(r"[{ ]", line, maxsplit=1)[0] in names:
            kept.append(line)
    if kept:
        out.extend(header + kept)
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--engines", type=int, required=True)
    parser.add_argument("--size", default="4x3-lora", choices=["small", *SIZES])
    args = parser.parse_args()
    text = all_sizes()["small"] if args.size == "small" else build(*SIZES[args.size])
    templates: dict[tuple[str, ...], list[str]] = {(): _COUNTER.split(text)}
    lock = threading.Lock()
    state = {"tick": 0}

    def body(names: tuple[str, ...]) -> bytes:
        with lock:
            state["tick"] += 1
            tick = state["tick"]
            parts = templates.get(names)
            if parts is None:
                parts = templates[names] = _COUNTER.split(restricted(text, set(names)))
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
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            payload = body(tuple(sorted(query.get("name[]", []))))
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
