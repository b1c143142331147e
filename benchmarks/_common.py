"""Shared pieces of the benchmark scripts: child processes, an HTTP scrape client, tables.

Everything here talks to 127.0.0.1 only. The scrape client is asyncio over raw sockets (HTTP/1.1,
keep-alive or one connection per scrape, gzip requested as Prometheus does), so one client
process can hold 50 parallel scrapers without the client's own threads being the bottleneck.
The same client scrapes every target, so latencies are comparable between targets in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ROOFTOP = str(Path(PYTHON).with_name("rooftop"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = psutil.virtual_memory().total / 2**30
    return (
        f"{psutil.cpu_count(logical=True)} logical cores ({cpu}), {memory_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


class Child:
    """A child process in its own session, killed (whole group) on close."""

    def __init__(
        self, argv: Sequence[str], stdin_pipe: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.proc.pid)

    def ask(self, line: str) -> dict[str, float]:
        """Send one line on stdin and read one JSON line back (the harness protocol)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"{self.argv[1]} exited: {self.stderr_tail()}")
        answer: dict[str, float] = json.loads(reply)
        return answer

    def read_json_line(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"{self.argv} exited: {self.stderr_tail()}")
        answer: dict[str, object] = json.loads(reply)
        return answer

    def stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def rss_bytes(self) -> int:
        return int(self.ps.memory_info().rss)

    def peak_rss_bytes(self) -> int:
        """The most resident memory the process has had (Linux ``VmHWM``), start-up included:
        RSS read between cycles misses the bodies a cycle holds while it polls."""
        with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return self.rss_bytes()

    def threads(self) -> int:
        return int(self.ps.num_threads())

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def wait_for_metrics(
    url: str, child: Child, needle: bytes = b"rooftop_snapshot_age_seconds", timeout: float = 20.0
) -> None:
    """Wait until ``url`` answers 200 with ``needle`` in the body (the first snapshot is out)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.argv} exited: {child.stderr_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200 and needle in response.read():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def rooftop_demo(port: int, gpus: int, engines: int, interval: float) -> Child:
    """``rooftop serve --demo`` exactly as shipped (demo engines served in the same process)."""
    child = Child(
        [
            ROOFTOP,
            "serve",
            "--demo",
            f"--demo-gpus={gpus}",
            f"--demo-engines={engines}",
            f"--interval={interval}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log-level=warning",
        ]
    )
    wait_for_metrics(f"http://127.0.0.1:{port}/metrics", child)
    return child


# --- the scrape client ------------------------------------------------------------------------


@dataclass
class ScrapeResult:
    latencies_seconds: list[float] = field(default_factory=list)
    errors: int = 0
    body_bytes: int = 0
    wall_seconds: float = 0.0
    first_error: str = ""

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_seconds, q)

    @property
    def per_second(self) -> float:
        return len(self.latencies_seconds) / self.wall_seconds if self.wall_seconds else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """(status, body bytes, server asked to close) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip().lower()
    size = 0
    if "content-length" in headers:
        size = int(headers["content-length"])
        await reader.readexactly(size)
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            chunk_line = await reader.readuntil(b"\r\n")
            chunk = int(chunk_line.split(b";")[0].strip(), 16)
            await reader.readexactly(chunk + 2)
            size += chunk
            if chunk == 0:
                break
    return status, size, headers.get("connection") == "close"


async def _scraper(
    host: str,
    port: int,
    path: str,
    stop_at: float,
    keep_alive: bool,
    gzip: bool,
    pause_seconds: float,
    result: ScrapeResult,
    period_seconds: float = 0.0,
) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rooftop-bench\r\n"
        "Accept: text/plain;version=0.0.4\r\n"
        + ("Accept-Encoding: gzip\r\n" if gzip else "")
        + ("" if keep_alive else "Connection: close\r\n")
        + "\r\n"
    ).encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    loop = asyncio.get_running_loop()
    origin = loop.time()
    while loop.time() < stop_at:
        if period_seconds:
            # Every scraper fires on the same tick: a burst of ``scrapers`` concurrent scrapes.
            await asyncio.sleep(period_seconds - (loop.time() - origin) % period_seconds)
            if loop.time() >= stop_at:
                break
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            writer.write(request)
            status, size, close = await asyncio.wait_for(_read_response(reader), 30)
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            result.latencies_seconds.append(time.perf_counter() - started)
            result.body_bytes = size
            if close or not keep_alive:
                writer.close()
                writer = None
        except (TimeoutError, OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
            result.errors += 1
            result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
            if writer is not None:
                writer.close()
            writer = None
        if pause_seconds:
            await asyncio.sleep(pause_seconds)
    if writer is not None:
        writer.close()


def scrape(
    port: int,
    scrapers: int,
    seconds: float,
    *,
    path: str = "/metrics",
    keep_alive: bool = True,
    gzip: bool = True,
    pause_seconds: float = 0.0,
    period_seconds: float = 0.0,
) -> ScrapeResult:
    """``scrapers`` closed-loop clients scraping 127.0.0.1:``port`` for ``seconds``.

    Each client sends its next request as soon as the previous answer is read (after
    ``pause_seconds`` if given): a saturation test, far above Prometheus' one scrape per
    target per scrape interval. With ``period_seconds``, every client instead scrapes once per
    period, all on the same tick (``scrapers`` Prometheus servers scraping at the same instant).
    """
    result = ScrapeResult()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _scraper(
                    "127.0.0.1",
                    port,
                    path,
                    stop_at,
                    keep_alive,
                    gzip,
                    pause_seconds,
                    result,
                    period_seconds,
                )
                for _ in range(scrapers)
            )
        )
        result.wall_seconds = time.perf_counter() - started

    asyncio.run(main())
    return result


# --- tables -----------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table (pastes straight into docs/performance.md)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "–"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def header(title: str, command: str) -> None:
    print(f"# {title}\n")
    print(f"machine: {machine_line()}")
    print(f"command: {command}\n")
