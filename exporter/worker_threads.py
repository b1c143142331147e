"""Daemon threads kept by key from one cycle to the next: one per engine poll, one per GPU's
NVML job.

A job per thread started 17 threads a second on a node with 8 GPUs and 8 engines, 0.13-0.15 ms
of CPU each (clone, stack, bootstrap, GIL handoffs: 2.2-2.6 ms a cycle, against 0.5-0.75 ms for
handing the same jobs to threads that wait for them; docs/performance.md). A kept thread
takes its next job from a queue; what a thread per job promised still holds:

- each key runs its jobs in a daemon thread of its own, one at a time: a job hung in a driver
  call or a socket holds only its key's thread (the callers never give a key a second job
  while its first is running: they ask for its outcome first), and never holds the
  interpreter at exit;
- a thread with no job for :data:`IDLE_SECONDS` ends (an engine dropped from the
  configuration leaves no thread behind); the key's next job starts a new one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Hashable
from typing import Final

log = logging.getLogger("rooftop")

IDLE_SECONDS: Final = 30.0
"""How long a kept thread waits for its next job before it ends."""


class _Worker:
    def __init__(self, owner: KeyedWorkers, key: Hashable, name: str) -> None:
        self._owner = owner
        self._key = key
        self.jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self.closed = False
        """Set under the owner's lock when the thread ends: no job is handed to it after."""
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=self._owner.idle_seconds)
            except queue.Empty:
                if self._owner.retire(self._key, self):
                    return
                continue
            try:
                job()
            except BaseException:  # a job reports its own failures; this one slipped by
                log.exception("%s: a job failed", self.thread.name)


class KeyedWorkers:
    """One kept daemon thread per key (see the module docstring)."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        if idle_seconds <= 0:
            raise ValueError(f"idle_seconds must be > 0, got {idle_seconds}")
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._workers: dict[Hashable, _Worker] = {}

    def run(self, key: Hashable, name: str, job: Callable[[], object]) -> None:
        """Run ``job`` in ``key``'s thread (named ``name`` when it has to be started)."""
        with self._lock:
            worker = self._workers.get(key)
            if worker is None or worker.closed:
                worker = _Worker(self, key, name)
                self._workers[key] = worker
                worker.thread.start()
            worker.jobs.put(job)

    def retire(self, key: Hashable, worker: _Worker) -> bool:
        """Whether ``worker``, idle, may end: not if a job was handed to it meanwhile."""
        with self._lock:
            if not worker.jobs.empty():
                return False
            worker.closed = True
            if self._workers.get(key) is worker:
                del self._workers[key]
            return True

    def threads(self) -> int:
        """Threads kept now (for tests)."""
        with self._lock:
            return len(self._workers)


__all__ = ["IDLE_SECONDS", "KeyedWorkers"]
