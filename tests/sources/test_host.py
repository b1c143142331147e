"""Host source: real child processes through psutil, and the delta arithmetic by hand."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from rooftop.exporter.sources.host import (
    EngineProcessGoneError,
    EngineProcessMonitor,
    HostSourceError,
    TreeCpuTimes,
    engine_process_stats,
)

BUSY = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"
# A root that sleeps while one child busy-loops: the tree uses about one core, all of it in
# the child's main thread.
PARENT_OF_BUSY = (
    "import subprocess, sys, time\n"
    f"child = subprocess.Popen([sys.executable, '-c', {BUSY!r}])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_busy_child_saturates_one_thread(spawned: list[subprocess.Popen[str]]) -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY], text=True)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], text=True)
    spawned.extend([busy, idle])
    time.sleep(0.3)  # let both interpreters finish starting
    busy_monitor, idle_monitor = EngineProcessMonitor(busy.pid), EngineProcessMonitor(idle.pid)
    assert busy_monitor.poll() is None  # primes
    assert idle_monitor.poll() is None
    time.sleep(1.5)
    stats, idle_stats = busy_monitor.poll(), idle_monitor.poll()
    assert stats is not None and idle_stats is not None
    assert stats.pids == (busy.pid,)
    assert stats.window_seconds == pytest.approx(1.5, abs=0.7)
    # A busy loop wants one core; on a loaded test machine it gets less, never more.
    assert idle_stats.cpu_cores_used < stats.cpu_cores_used < 1.3
    assert idle_stats.cpu_cores_used < 0.1
    # Single-threaded: the busiest thread is essentially the whole process.
    assert stats.busiest_thread_ratio == pytest.approx(stats.cpu_cores_used, rel=0.2)
    assert stats.threads >= 1


def test_tree_includes_children(spawned: list[subprocess.Popen[str]]) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT_OF_BUSY], stdout=subprocess.PIPE, text=True
    )
    spawned.append(parent)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    monitor = EngineProcessMonitor(parent.pid)
    monitor.poll()
    time.sleep(1.0)
    stats = monitor.poll()
    assert stats is not None
    assert set(stats.pids) == {parent.pid, child_pid}
    assert stats.cpu_cores_used > 0.02  # the child's loop (the machine may be loaded)
    assert stats.threads >= 2


def test_vanished_process_is_a_clear_error(spawned: list[subprocess.Popen[str]]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], text=True)
    spawned.append(proc)
    monitor = EngineProcessMonitor(proc.pid)
    monitor.poll()
    proc.kill()
    proc.wait(timeout=10)
    with pytest.raises(EngineProcessGoneError, match=f"engine process {proc.pid} no longer"):
        monitor.poll()
    assert isinstance(EngineProcessGoneError("x"), HostSourceError)


def test_bad_pid_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive process id"):
        EngineProcessMonitor(0)


class FakeTree:
    """A process provider fed by hand: {pid: (process seconds, {tid: seconds})}."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.processes: dict[int, tuple[float, dict[int, float]]] = {}

    def tree_pids(self, root_pid: int) -> list[int]:
        if root_pid not in self.processes:
            raise EngineProcessGoneError(f"engine process {root_pid} no longer exists")
        return sorted(self.processes)

    def cpu_seconds(self, pid: int) -> tuple[float, dict[int, float]] | None:
        return self.processes.get(pid)


def test_monitor_with_injected_provider_and_clock() -> None:
    now = [100.0]
    tree = FakeTree(10)
    tree.processes = {10: (5.0, {10: 4.0, 11: 1.0}), 20: (2.0, {20: 2.0})}
    monitor = EngineProcessMonitor(10, tree, clock=lambda: now[0])
    assert monitor.poll() is None
    now[0] = 102.0
    # Root: +1.0 s over 2 s, spread over two threads; child 20: +3.0 s in one thread;
    # new child 30 started in the window: all of its 0.5 s counts.
    tree.processes = {
        10: (6.0, {10: 4.6, 11: 1.4}),
        20: (5.0, {20: 5.0}),
        30: (0.5, {30: 0.5}),
    }
    stats = monitor.poll()
    assert stats is not None
    assert stats.cpu_cores_used == pytest.approx((1.0 + 3.0 + 0.5) / 2.0)
    assert stats.busiest_thread_id == 20
    assert stats.busiest_thread_ratio == pytest.approx(3.0 / 2.0)
    assert stats.threads == 4
    assert stats.pids == (10, 20, 30)


@pytest.mark.parametrize(
    ("before", "after", "cores", "busiest"),
    [
        # (process seconds, thread seconds) before/after a 4 s window
        ({1: 10.0}, {1: 14.0}, 1.0, 1.0),  # one thread saturating one core
        ({1: 10.0}, {1: 12.0}, 0.5, 0.5),
        ({1: 10.0}, {1: 3.0}, 0.75, 0.75),  # pid reused: the new process's 3 s all count
        ({1: 10.0, 2: 1.0}, {1: 10.0}, 0.0, 0.0),  # pid 2 vanished: counts nothing
    ],
)
def test_delta_arithmetic(
    before: dict[int, float], after: dict[int, float], cores: float, busiest: float
) -> None:
    first = TreeCpuTimes(1, 0.0, before, {(p, p): s for p, s in before.items()})
    second = TreeCpuTimes(1, 4.0, after, {(p, p): s for p, s in after.items()})
    stats = engine_process_stats(first, second)
    assert stats.cpu_cores_used == pytest.approx(cores)
    assert stats.busiest_thread_ratio == pytest.approx(busiest)


def test_stats_reject_a_non_positive_window() -> None:
    read = TreeCpuTimes(1, 5.0, {1: 1.0}, {})
    with pytest.raises(ValueError, match="later than the first"):
        engine_process_stats(read, read)
