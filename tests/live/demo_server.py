"""``rooftop serve --demo`` as a child process on a free loopback port, for tests that need a
live exporter (the browser and terminal tests). Stopped by its PID."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

LISTENING = re.compile(r"listening on http://[^:]+:(\d+)/metrics")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class DemoServer:
    def __init__(self, log: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rooftop.exporter",
                "serve",
                "--demo",
                "--web.listen-address",
                f"127.0.0.1:{free_port()}",
                *args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        while True:
            match = LISTENING.search(log.read_text())
            if match:
                self.port = int(match.group(1))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"rooftop serve --demo did not start: {log.read_text()}")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as reply:
            body: bytes = reply.read()
            return body.decode()

    def wait_for_targets(self, seconds: float = 30.0) -> None:
        """Until /metrics has a verdict (the first sampler cycles are done)."""
        deadline = time.monotonic() + seconds
        while "rooftop_gpu_bound_info{" not in self.get("/metrics"):
            if time.monotonic() > deadline:
                raise AssertionError("no verdict in /metrics")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_file.close()
