"""Source health, in one place: time a poll, turn its failure into an error text, remember the
last success, and log a source going down or coming back once each.

Every source's ``rooftop_source_up`` / ``_duration_seconds`` / ``_last_success`` come from
:meth:`SourceTimer.status`, whether the poll ran inline (NVML, discovery) or in a worker
thread (engines, dcgm-exporter) whose result the stage collected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from rooftop.exporter.settings import redact_url
from rooftop.exporter.snapshot import SourceStatus
from rooftop.exporter.sources.base import Source, SourceKind

log = logging.getLogger("rooftop.exporter.sampler")

ReadingT = TypeVar("ReadingT")


def error_text(error: BaseException) -> str:
    """``Type: message`` with any URL's userinfo removed (labels and logs are public)."""
    return redact_url(f"{type(error).__name__}: {error}")


@dataclass(frozen=True)
class Polled(Generic[ReadingT]):
    """One source's outcome this cycle: the reading (``None`` when down) and its status."""

    reading: ReadingT | None
    status: SourceStatus


class SourceTimer:
    """Times polls and keeps each source's last success and last error."""

    def __init__(self, monotonic: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._wall = wall_clock
        self._last_success: dict[str, float] = {}
        self._last_error: dict[str, str | None] = {}

    def now(self) -> float:
        return self._monotonic()

    def poll(
        self,
        source: Source[ReadingT],
        *,
        failed: Callable[[ReadingT], str | None] | None = None,
    ) -> Polled[ReadingT]:
        """Poll ``source`` inline. ``failed`` may call a reading a failure (e.g. NVML
        answering with every GPU unreadable); the reading is still handed on."""
        started = self._monotonic()
        reading: ReadingT | None = None
        error: str | None
        try:
            reading = source.poll()
            error = failed(reading) if failed is not None else None
        except Exception as exc:  # the whole source failed: it is down this cycle
            error = error_text(exc)
        self.log_change(source.name, error)
        return Polled(reading, self.status(source.name, source.kind, started, error))

    def status(
        self, source: str, kind: SourceKind, started: float, error: str | None
    ) -> SourceStatus:
        """The status of a poll that began at ``started`` (monotonic) and ended now."""
        if error is None:
            self._last_success[source] = self._wall()
        return SourceStatus(
            source=source,
            kind=kind,
            up=error is None,
            duration_seconds=self._monotonic() - started,
            last_success_unix_seconds=self._last_success.get(source),
            error=error,
        )

    def log_change(self, what: str, error: str | None) -> None:
        """Log ``what`` going down (or its error changing) and coming back, once each."""
        previous = self._last_error.get(what)
        if error != previous:
            if error is not None:
                log.warning("%s down: %s", what, error)
            else:
                log.info("%s is back", what)
        self._last_error[what] = error
