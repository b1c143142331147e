"""Kept daemon threads by key (exporter/worker_threads.py): reused between jobs, one key's hung
job never holds another key, idle threads end and a later job starts a fresh one."""

from __future__ import annotations

import threading
import time

import pytest

from rooftop.exporter.worker_threads import KeyedWorkers


def _run(workers: KeyedWorkers, key: object, name: str = "job") -> threading.Thread:
    """Run one job on ``key`` and return the thread it ran in."""
    ran: list[threading.Thread] = []
    done = threading.Event()

    def job() -> None:
        ran.append(threading.current_thread())
        done.set()

    workers.run(key, name, job)
    assert done.wait(5)
    return ran[0]


def test_a_key_keeps_its_thread_between_jobs() -> None:
    workers = KeyedWorkers()
    first = _run(workers, "a", "engine-poll a")
    assert first.name == "engine-poll a"
    assert first.daemon
    assert all(_run(workers, "a") is first for _ in range(5))
    assert _run(workers, "b") is not first
    assert workers.threads() == 2


def test_a_hung_job_holds_only_its_own_key() -> None:
    workers = KeyedWorkers()
    release = threading.Event()
    workers.run("hung", "hung", lambda: release.wait(10))
    started = time.monotonic()
    _run(workers, "healthy")
    assert time.monotonic() - started < 1.0
    release.set()


def test_jobs_of_one_key_run_one_at_a_time_in_order() -> None:
    workers = KeyedWorkers()
    order: list[int] = []
    running = [0]
    most = [0]
    done = threading.Event()

    def job(n: int) -> None:
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.01)
        order.append(n)
        running[0] -= 1
        if n == 4:
            done.set()

    for n in range(5):
        workers.run("k", "k", lambda n=n: job(n))
    assert done.wait(5)
    assert order == [0, 1, 2, 3, 4]
    assert most[0] == 1


def test_an_idle_thread_ends_and_the_next_job_starts_a_new_one() -> None:
    workers = KeyedWorkers(idle_seconds=0.05)
    first = _run(workers, "a")
    first.join(5)
    assert not first.is_alive()
    assert workers.threads() == 0
    second = _run(workers, "a")
    assert second is not first


def test_jobs_handed_in_while_a_thread_retires_all_run() -> None:
    """Jobs arriving around the idle deadline are never lost to a thread that is ending."""
    workers = KeyedWorkers(idle_seconds=0.001)
    count = 200
    done = threading.Semaphore(0)
    for _ in range(count):
        workers.run("a", "a", done.release)
        time.sleep(0.001)
    assert all(done.acquire(timeout=5) for _ in range(count))


def test_a_failing_job_does_not_end_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    workers = KeyedWorkers()
    first = _run(workers, "a")

    def fails() -> None:
        raise RuntimeError("boom")

    workers.run("a", "a", fails)
    assert _run(workers, "a") is first
    assert "a job failed" in caplog.text


def test_idle_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="idle_seconds"):
        KeyedWorkers(idle_seconds=0)
