"""Process lifecycle and HTTP details (issue 14, items 3-5): the real ``rooftop serve`` process
exits within 1 s of SIGTERM/SIGINT whatever its clients do, SIGHUP reloads the configuration
(a bad one is refused and the running one kept), and an engine that trickles its headers is
cut at the poll's deadline. docs/reliability.md lists these tests.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rooftop.exporter.sources.http import FetchError, fetch_text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.config = tmp_path / "rooftop.yml"
        self.write_config(interval=0.5)
        self.log = tmp_path / "rooftop.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOFTOP_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rooftop.exporter", "serve", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                status, _ = self.get("/metrics")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("rooftop serve did not start: " + self.log.read_text())

    def write_config(self, interval: float, extra: str = "") -> None:
        self.config.write_text(
            f"listen_address: 127.0.0.1:{self.port}\nnvml: false\n"
            f"discover_engines: false\ninterval_seconds: {interval}\n{extra}"
        )

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body

    def wait_exit(self) -> tuple[int, float]:
        started = time.monotonic()
        code = self.process.wait(timeout=20)
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    running = Serve(tmp_path)
    yield running
    running.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exit_within_a_second_with_a_keep_alive_scraper(serve: Serve, signum: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=30)
    connection.request("GET", "/metrics")
    connection.getresponse().read()  # the connection stays open (HTTP/1.1 keep-alive)
    idle = socket.create_connection(("127.0.0.1", serve.port))  # and one idle TCP connection
    try:
        serve.process.send_signal(signum)
        code, seconds = serve.wait_exit()
    finally:
        connection.close()
        idle.close()
    assert code == 0
    assert seconds < 1.0, f"exit took {seconds:.2f} s"


def test_exit_while_a_client_keeps_scraping(serve: Serve) -> None:
    stop = threading.Event()

    def scrape() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", serve.port, timeout=30)
        while not stop.is_set():
            try:
                connection.request("GET", "/metrics")
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                return
            stop.wait(0.2)

    client = threading.Thread(target=scrape, daemon=True)
    client.start()
    time.sleep(0.5)
    serve.process.send_signal(signal.SIGTERM)
    code, seconds = serve.wait_exit()
    stop.set()
    assert (code, seconds < 1.0) == (0, True), seconds


def test_sighup_reloads_the_config_and_refuses_a_bad_one(serve: Serve) -> None:
    def cycle_interval_seen() -> str:
        return serve.log.read_text()

    serve.write_config(interval=0.5, extra="engines:\n  - url: http://127.0.0.1:9/metrics\n")
    serve.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "configuration reloaded (1 engine(s))" not in cycle_interval_seen():
        assert time.monotonic() < deadline, cycle_interval_seen()
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while b'source="127.0.0.1:9"' not in serve.get("/metrics")[1]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    serve.config.write_text("interval_seconds: 0\n")
    serve.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "new configuration refused" not in cycle_interval_seen():
        assert time.monotonic() < deadline, cycle_interval_seen()
        time.sleep(0.1)
    assert "interval_seconds" in cycle_interval_seen()
    assert serve.process.poll() is None, "a bad reload never kills the process"
    assert serve.get("/healthz")[0] == 200
    serve.process.send_signal(signal.SIGTERM)
    assert serve.wait_exit()[0] == 0


# ---------------------------------------------------------------- headers trickled


@pytest.fixture
def trickler() -> Iterator[int]:
    """A server that sends one header line every 0.5 s, for ever, on each connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = threading.Event()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            index = 0
            while not done.wait(0.5):
                try:
                    conn.sendall(f"X-Slow-{index}: 1\r\n".encode())
                except OSError:
                    return
                index += 1

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    done.set()
    listener.close()


def test_a_deadline_covers_the_headers(trickler: int) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"within 1\.0 s") as raised:
        fetch_text(f"http://127.0.0.1:{trickler}/metrics", 1.0, 1 << 20)
    assert raised.value.problem == "deadline"
    assert time.monotonic() - started < 1.6


def test_a_sooner_deadline_set_later_still_cuts_on_time(trickler: int) -> None:
    """One watchdog keeps every exchange's deadline: one set after a far one, but due before
    it, ends its exchange at its own time, not at the far one's."""
    url = f"http://127.0.0.1:{trickler}/metrics"
    far_failed: list[FetchError] = []

    def far_fetch() -> None:
        try:
            fetch_text(url, 3.0, 1 << 20)
        except FetchError as error:
            far_failed.append(error)

    far = threading.Thread(target=far_fetch)
    far.start()
    time.sleep(0.3)  # the far deadline is armed and the watchdog sleeps for it
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"within 1\.0 s"):
        fetch_text(url, 1.0, 1 << 20)
    assert time.monotonic() - started < 1.6
    far.join(10)
    assert far_failed and far_failed[0].problem == "deadline"  # and the far one at its time
