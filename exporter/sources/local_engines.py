"""Engines on this host found by probing the usual ports, again and again.

``rooftop serve`` with no engine configured looks for one on localhost. An engine that is still
loading when rooftop starts (vLLM takes minutes to load a large model) answers only later, so
the probe is a discovery source the engine stage polls every ``discovery_interval_seconds``,
like the Kubernetes discovery: a port that answers becomes an engine, from then on tracked (and
reported down, never forgotten, when it stops answering).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from rooftop.exporter.sources.base import DiscoveredEngine, SourceKind
from rooftop.exporter.sources.engine import EngineSource, EngineSourceError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 0.5
"""A local engine answers its /metrics in milliseconds; a port that takes longer is not one."""


def probe_engine(name: str, url: str, max_body_bytes: int) -> str | None:
    """The engine family answering at ``url``, or ``None`` when nothing recognisable does."""
    source = EngineSource(
        name, url, timeout_seconds=PROBE_TIMEOUT_SECONDS, max_body_bytes=max_body_bytes
    )
    try:
        reading = source.poll()
    except EngineSourceError:
        return None
    log.info("found %s engine at %s (%s)", reading.family, url, reading.recognised_because)
    return reading.family


class LocalEngineDiscovery:
    """Probes ``127.0.0.1:<port>/metrics`` for each port not yet found, all at once."""

    kind: SourceKind = "discovery"

    def __init__(
        self,
        ports: Sequence[int],
        max_body_bytes: int,
        probe: Callable[[str, str, int], str | None] = probe_engine,
    ) -> None:
        self._ports = tuple(ports)
        self._max_body = max_body_bytes
        self._probe = probe
        self._found: dict[int, DiscoveredEngine] = {}

    @property
    def name(self) -> str:
        return "localhost"

    def poll(self) -> tuple[DiscoveredEngine, ...]:
        pending = [port for port in self._ports if port not in self._found]
        if pending:
            with ThreadPoolExecutor(max_workers=len(pending)) as pool:
                answers = list(
                    pool.map(
                        lambda port: self._probe(
                            f"127.0.0.1:{port}", f"http://127.0.0.1:{port}/metrics", self._max_body
                        ),
                        pending,
                    )
                )
            for port, family in zip(pending, answers, strict=True):
                if family is not None:
                    self._found[port] = DiscoveredEngine(
                        url=f"http://127.0.0.1:{port}/metrics", name=f"127.0.0.1:{port}"
                    )
        return tuple(self._found[port] for port in self._ports if port in self._found)
