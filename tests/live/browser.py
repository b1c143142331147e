"""A headless Chromium driven through the DevTools protocol, for the landing-page tests.

The protocol is JSON messages over one WebSocket per page
(https://chromedevtools.github.io/devtools-protocol/); ``websocket-client`` carries them, which
is all a test needs of a browser driver: navigate, evaluate a script, take a screenshot. The
browser runs on its own temporary profile with every background service off, bound to
loopback, and is stopped by its PID.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

from tests.conftest import require_real_part

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    found = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    require_real_part(found is not None, "Chromium is needed for the browser tests (apt chromium)")
    assert found is not None
    return found


class BrowserError(RuntimeError):
    pass


class Page:
    """One tab: send a command, wait for its answer (events in between are dropped)."""

    def __init__(self, ws_url: str, timeout_seconds: float) -> None:
        # No Origin header: Chromium refuses WebSocket clients whose Origin it does not allow.
        self._ws = websocket.create_connection(
            ws_url, timeout=timeout_seconds, suppress_origin=True
        )
        self._next = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str, timeout_seconds: float = 15.0) -> None:
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.evaluate("document.readyState + ' ' + location.href") == f"complete {url}":
                return
            time.sleep(0.1)
        raise BrowserError(f"{url} did not load in {timeout_seconds} s")

    def set_viewport(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self._ws.close()


class Chromium:
    """A headless Chromium on a fresh profile in ``profile``; :meth:`stop` ends it by PID."""

    def __init__(self, profile: Path, timeout_seconds: float = 30.0) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout_seconds
        self.process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_seconds
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrowserError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def page(self) -> Page:
        deadline = time.monotonic() + self._timeout
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as r:
                tabs = json.loads(r.read())
            pages = [t for t in tabs if t.get("type") == "page"]
            if pages:
                return Page(pages[0]["webSocketDebuggerUrl"], self._timeout)
            if time.monotonic() > deadline:
                raise BrowserError("Chromium opened no page")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
