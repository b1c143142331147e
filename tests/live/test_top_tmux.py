"""``rooftop top`` in a real terminal: tmux runs it at 80x24 against ``rooftop serve --demo``;
the test reads the screen (``capture-pane``) and types keys (``send-keys``).

tmux runs on its own socket (``tmux -L <unique name>``) with no config file, and only that
server is killed at the end.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_real_part
from tests.live.demo_server import DemoServer

pytestmark = [pytest.mark.timeout(120)]

SGR = re.compile(r"\x1b\[([0-9;]*)m")
SPARK = set("▁▂▃▄▅▆▇█")


class Tmux:
    def __init__(self) -> None:
        found = shutil.which("tmux")
        require_real_part(found is not None, "tmux is needed for the terminal test (apt tmux)")
        assert found is not None
        self.binary = found
        self.socket = f"rooftop-test-{uuid.uuid4().hex[:12]}"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [self.binary, "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return result.stdout

    def screen(self, escapes: bool = False) -> list[str]:
        flags = ["-e"] if escapes else []
        return self.run("capture-pane", "-p", *flags, "-t", "top").splitlines()

    def wait_for(self, predicate: object, seconds: float = 20.0) -> list[str]:
        assert callable(predicate)
        deadline = time.monotonic() + seconds
        while True:
            lines = self.screen()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched:\n" + "\n".join(lines))
            time.sleep(0.2)

    def kill_server(self) -> None:
        subprocess.run(
            [self.binary, "-L", self.socket, "kill-server"], capture_output=True, timeout=20
        )


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    server = DemoServer(
        tmp_path / "serve.log",
        "--demo-gpus",
        "2",
        "--demo-engines",
        "2",
        "--demo-cycle-seconds",
        "30",
        "--interval",
        "0.5",
    )
    try:
        server.wait_for_targets()
        yield server
    finally:
        server.stop()


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    terminal = Tmux()
    try:
        yield terminal
    finally:
        terminal.kill_server()


def _rows(lines: list[str]) -> list[str]:
    return [line for line in lines if re.match(r"^\s*\d+ demo-vllm-\d", line)]


def _sol(row: str) -> int:
    match = re.search(r"\s(\d+)%\s", row)
    assert match, row
    return int(match.group(1))


def test_top_in_tmux_at_80_columns(demo: DemoServer, tmux: Tmux, tmp_path: Path) -> None:
    # The base URL, as people type it: top finds /metrics itself. The pane's shell writes top's
    # exit status to a file: tmux's own `pane_dead_status` stayed empty for 10 s after the
    # pane died on a loaded machine.
    exit_status = tmp_path / "top.status"
    top = f"{shlex.quote(sys.executable)} -m rooftop.exporter top --url {demo.url} --interval 0.5"
    command = f"sh -c {shlex.quote(f'{top}; echo $? > {shlex.quote(str(exit_status))}')}"
    tmux.run("new-session", "-d", "-s", "top", "-x", "80", "-y", "24", command)
    tmux.run("set-option", "-t", "top", "remain-on-exit", "on")

    lines = tmux.wait_for(lambda s: len(_rows(s)) == 2 and "REASON" in "\n".join(s))
    header = lines[0]
    assert header.startswith("rooftop ") and "DEMO" in header and "2 GPUs" in header, header
    assert "dec " in header and "pre " in header
    assert all(len(line) <= 80 for line in lines)
    titles = next(line for line in lines if line.startswith("GPU ENGINE"))
    assert "SOL TREND" in titles and "REASON" in titles
    for row in _rows(lines):
        assert row.endswith("…") or len(row.rstrip()) <= 80  # reasons cut, never wrapped

    # The sparkline fills as refreshes come in.
    lines = tmux.wait_for(
        lambda s: all(sum(ch in SPARK for ch in row) >= 4 for row in _rows(s)), seconds=30
    )

    # Each verdict is drawn in its colour: two different states, two different colours.
    colours: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(set(colours.values())) < 2 and time.monotonic() < deadline:
        for line in tmux.screen(escapes=True):
            plain = SGR.sub("", line)
            if not re.match(r"^\s*\d+ demo-vllm-\d", plain):
                continue
            match = re.search(r"\x1b\[([0-9;]*)m(idle|memory|compute|latency|unknown)\b", line)
            assert match, repr(line)
            assert "38;" in match.group(1) or re.search(r"\b3[0-7]\b|\b9[0-7]\b", match.group(1))
            colours[match.group(2)] = match.group(1)
        time.sleep(0.5)
    assert len(colours) >= 2 and len(set(colours.values())) == len(colours), colours

    # s cycles the sort key: gpu -> sol, rows by decode SOL, largest first.
    tmux.run("send-keys", "-t", "top", "s")
    lines = tmux.wait_for(lambda s: any("sort: sol" in line for line in s))
    sols = [_sol(row) for row in _rows(lines)]
    assert sols == sorted(sols, reverse=True), lines
    tmux.run("send-keys", "-t", "top", "r")
    tmux.wait_for(lambda s: any("sort: sol (reversed)" in line for line in s))

    # q quits, with status 0.
    tmux.run("send-keys", "-t", "top", "q")
    deadline = time.monotonic() + 20
    while not exit_status.exists() or not exit_status.read_text().strip():
        assert time.monotonic() < deadline, "q did not quit top"
        time.sleep(0.2)
    assert exit_status.read_text().strip() == "0"
