"""Hostile networks: TLS and basic auth per the web-config file, no secret in what rooftop
serves, no request to any address but the configured ones, and bounded scrape concurrency
against slow clients."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from rooftop.exporter.collector import ExpositionCache
from rooftop.exporter.server import ExporterHTTPServer, make_handler, serve_in_thread
from tests.conftest import make_self_signed
from tests.faults.engine import CanaryServer, MisbehavingEngine
from tests.faults.rig import ENGINE_LABELS, Rig

FIXTURES = Path(__file__).parents[1] / "fixtures"
PASSWORD = "Hunter2-web-password"
ENGINE_SECRET = "Hunter2-engine-secret"
DCGM_SECRET = "Hunter2-dcgm-secret"
ENV_SECRET = "Hunter2-env-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[str], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"rooftop exited {process.returncode}: {process.stderr}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"rooftop did not listen on {port} within {seconds} s")


def _rooftop(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rooftop.exporter", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        _, err = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------- TLS + basic auth


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_rooftop(
    tls_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, Path]]:
    cert, key = tls_files
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path_factory.mktemp("web") / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    port = free_port()
    process = _rooftop(
        [
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--interval",
            "0.25",
            "--web.config.file",
            str(web),
        ]
    )
    try:
        _wait_listening(port, process)
        yield port, cert
    finally:
        _stop(process)


def _https_get(
    port: int, cert: Path, path: str, authorization: str | None
) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", ["/metrics", "/", "/healthz"])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        _basic("prometheus", "wrong-password"),
        _basic("someone-else", PASSWORD),
        _basic("prometheus", ""),
        "Basic not-base64!!",
        "Bearer " + PASSWORD,
    ],
    ids=["none", "wrong-password", "wrong-user", "empty-password", "garbled", "bearer"],
)
def test_tls_scrape_without_valid_credentials_is_401(
    tls_rooftop: tuple[int, Path], path: str, authorization: str | None
) -> None:
    port, cert = tls_rooftop
    status, headers, body = _https_get(port, cert, path, authorization)
    assert status == 401
    assert headers.get("WWW-Authenticate") == 'Basic realm="rooftop"'
    assert b"rooftop_" not in body


def test_tls_scrape_with_the_right_credentials_is_200(tls_rooftop: tuple[int, Path]) -> None:
    port, cert = tls_rooftop
    status, headers, body = _https_get(port, cert, "/metrics", _basic("prometheus", PASSWORD))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'rooftop_build_info{demo="true"' in body


def test_plain_http_to_the_tls_port_gets_no_metrics(tls_rooftop: tuple[int, Path]) -> None:
    port, _ = tls_rooftop
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": _basic("prometheus", PASSWORD)},
    )
    with (
        pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)),
        urllib.request.urlopen(request, timeout=5) as response,
    ):
        assert b"rooftop_" not in response.read()


def test_tls_client_that_does_not_trust_the_cert_is_refused(tls_rooftop: tuple[int, Path]) -> None:
    port, _ = tls_rooftop
    context = ssl.create_default_context()  # system CAs only: the self-signed cert fails
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        connection.request("GET", "/metrics")
    connection.close()


# --------------------------------------------------------------------------- no secrets out


def test_metrics_and_landing_page_reveal_no_secret(tmp_path: Path) -> None:
    engine = MisbehavingEngine()
    dcgm_port = free_port()  # nothing listens: the DCGM source is down, its URL must not leak
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = free_port()
    engine_url = f"http://scraper:{ENGINE_SECRET}@127.0.0.1:{engine.port}/metrics"
    process = _rooftop(
        [
            "--no-nvml",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--interval",
            "0.2",
            "--engine",
            engine_url,
            "--web.config.file",
            str(web),
        ],
        env={
            "ROOFTOP_DCGM_URL": f"http://dcgm:{DCGM_SECRET}@127.0.0.1:{dcgm_port}/metrics",
            "ROOFTOP_UNRELATED_TOKEN": ENV_SECRET,
            "ROOFTOP_KUBERNETES_POD_NAME": "pod-" + ENV_SECRET,
        },
    )
    try:
        _wait_listening(port, process)
        time.sleep(1.0)  # several cycles: the engine and DCGM sources have reported
        pages = []
        for path in ("/metrics", "/", "/healthz", "/nope"):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                headers={"Authorization": _basic("prometheus", PASSWORD)},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    pages.append(response.read().decode())
            except urllib.error.HTTPError as error:
                pages.append(error.read().decode())
        metrics = pages[0]
        assert "rooftop_source_up" in metrics
    finally:
        log = _stop(process)
        engine.close()
    for secret in (PASSWORD, hashed, ENGINE_SECRET, DCGM_SECRET, ENV_SECRET, "scraper:"):
        for page in pages:
            assert secret not in page, f"{secret!r} served"
        assert secret not in log, f"{secret!r} logged"


# --------------------------------------------------------------------------- only configured URLs


def test_crafted_engine_cannot_make_rooftop_fetch_another_url(tmp_path: Path) -> None:
    canary = CanaryServer()
    lure = canary.url("/lure")
    engine = MisbehavingEngine(model_name=lure)
    # A llama.cpp exposition makes rooftop read /props and /slots on the same origin: those
    # answer with redirects to the canary, and /metrics carries URLs everywhere a string goes.
    llamacpp = (FIXTURES / "engines" / "llamacpp-b11434-cpu-tiny.prom").read_text()
    crafted = (
        llamacpp
        + f"# HELP lure_info see {lure} and <a href='{lure}'>here</a>\n"
        + "# TYPE lure_info gauge\n"
        + f'lure_info{{url="{lure}",location="{lure}",model_name="{lure}"}} 1\n'
        + f'llamacpp:requests_processing{{model="{lure}",path="/etc/passwd"}} 1\n'
    ).encode()
    redirect = {"Location": lure, "Link": f"<{lure}>; rel=next", "Refresh": f"0; url={lure}"}
    engine.routes["/props"] = (302, redirect, b"moved")
    engine.routes["/slots"] = (307, redirect, b"moved")
    rig = Rig([engine.url], gpus=1)
    try:
        # Phase 1: a valid exposition full of URLs, served with Location-style headers.
        engine.routes["/metrics"] = (200, redirect, crafted)
        rig.wait_for(
            lambda s: s.value("rooftop_source_up", source=ENGINE_LABELS[engine.url]) == 1,
            "crafted llama.cpp exposition read",
        )
        time.sleep(0.5)
        # Phase 2: /metrics itself redirects to the canary (302, then 301/307/308).
        for status in (302, 301, 307, 308):
            engine.routes["/metrics"] = (status, redirect, b"moved")
            rig.wait_for(
                lambda s: s.value("rooftop_source_up", source=ENGINE_LABELS[engine.url]) == 0,
                f"HTTP {status} redirect refused",
            )
            assert "redirects" in (rig.sampler.latest.sources[1].error or "")  # type: ignore[union-attr]
        # Phase 3: the vLLM exposition with a model name that is a URL, then a path.
        del engine.routes["/metrics"]
        rig.wait_for(
            lambda s: s.value("rooftop_source_up", source=ENGINE_LABELS[engine.url]) == 1,
            "vLLM exposition with a URL as model name",
        )
        time.sleep(0.5)
    finally:
        rig.close()
        engine.close()
        canary.close()
    assert engine.hits.get("/metrics", 0) > 5
    assert engine.hits.get("/props", 0) >= 1  # the same-origin extras were asked, and refused
    assert canary.connections == 0, f"rooftop reached the canary: {canary.requests}"


# --------------------------------------------------------------------------- slow clients


def test_slow_clients_cannot_exhaust_threads_and_scrapes_resume() -> None:
    workers, timeout_seconds = 4, 1.0
    cache = ExpositionCache(lambda: None, time.time)
    server = ExporterHTTPServer(
        ("127.0.0.1", 0),
        make_handler(cache, lambda: None, None),
        workers,
        request_timeout_seconds=timeout_seconds,
    )
    serve_in_thread(server)
    port = server.server_address[1]
    url = f"http://127.0.0.1:{port}/metrics"
    baseline = threading.active_count()
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    trickling = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    stop = threading.Event()
    cut_off: set[int] = set()

    def trickle() -> None:  # slowloris: a header byte every 50 ms, never finishing
        for sock in trickling:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        while not stop.is_set():
            for number, sock in enumerate(trickling):
                if number in cut_off:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:
                    cut_off.add(number)
            time.sleep(0.05)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(0.3)
        # 40 slow connections are open: the thread count does not grow (one loop thread).
        scrape_threads = [t for t in threading.enumerate() if t.name.startswith("scrape")]
        assert not scrape_threads, "a worker was started for requests the loop answers"
        assert threading.active_count() <= baseline + 1  # + the trickler
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert b"process_" in response.read()
        waited = time.monotonic() - started
        # Served at once, before the slow connections' deadline: nothing waits behind them.
        assert waited < timeout_seconds, f"scrape waited {waited:.2f} s"
        # Cut once their deadline (1 s from accept, reaped every 0.25 s) passed, though they
        # kept sending; a send notices the close at the second try after it (50 ms apart).
        give_up = time.monotonic() + timeout_seconds + 1.5
        while len(cut_off) < len(trickling) and time.monotonic() < give_up:
            time.sleep(0.05)
        assert len(cut_off) == len(trickling), "a trickling client outlived its deadline"
        for sock in silent:
            sock.settimeout(2)
            assert sock.recv(1) == b""  # closed by the server
        for _ in range(5):
            with urllib.request.urlopen(url, timeout=2) as response:
                assert response.status == 200
    finally:
        stop.set()
        trickler.join(2)
        for sock in silent + trickling:
            sock.close()
        server.shutdown()
        server.server_close()
