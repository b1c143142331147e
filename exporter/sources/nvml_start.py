"""A GPU source that could not start is still a source: down, with its reason, every cycle.

Without this, a node whose NVML library is missing (a container without the NVIDIA runtime)
exported no ``rooftop_source_up{source="nvml"}`` at all, and every view waited for a first
sample forever. Start is retried every ``retry_seconds`` (a driver that loads later, a device
plugin that mounts the library late), and once it succeeds the source reads as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from rooftop.exporter.sources.base import SourceKind
from rooftop.exporter.sources.nvml import NvmlSource, NvmlUnavailableError
from rooftop.exporter.telemetry import GpuSourceResult

log = logging.getLogger(__name__)

START_RETRY_SECONDS = 60.0


class RetryingNvmlSource:
    """NVML, started on the first poll it can be and retried while it cannot."""

    kind: SourceKind = "gpu"

    def __init__(
        self,
        source: NvmlSource,
        retry_seconds: float = START_RETRY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._retry = retry_seconds
        self._monotonic = monotonic
        self._started = False
        self._next_try = 0.0
        self._error = "not started yet"

    @property
    def name(self) -> str:
        return self._source.name

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Try to start now; raises :class:`NvmlUnavailableError` saying why it cannot."""
        self._next_try = self._monotonic() + self._retry
        try:
            identities = self._source.start()
        except NvmlUnavailableError as error:
            self._error = str(error)
            raise
        self._started = True
        log.info("NVML: %d GPU(s): %s", len(identities), ", ".join(i.name for i in identities))

    def poll(self) -> GpuSourceResult:
        if not self._started:
            if self._monotonic() < self._next_try:
                raise NvmlUnavailableError(self._error)
            self.start()
        return self._source.poll()

    def close(self) -> None:
        if self._started:
            self._source.close()
