"""The one interface every source implements: a name, a kind, and ``poll``.

``poll()`` returns the source's reading for this cycle or raises when the source as a whole
could not be read (a part that failed, such as one lost GPU, is part of the reading). Timing,
the ``up`` flag, the last success and the error text are not the source's business: the
pipeline's :class:`~rooftop.exporter.pipeline.status.SourceTimer` does them, in one place, for
every source alike.

Implementations: :class:`~rooftop.exporter.sources.nvml.NvmlSource` and
:class:`~rooftop.exporter.sources.dcgm.DcgmSource` (kind ``gpu``),
:class:`~rooftop.exporter.sources.engine.EngineSource` (``engine``),
:class:`~rooftop.exporter.sources.host.EngineProcessMonitor` (``host``) and
:class:`~rooftop.exporter.sources.kubernetes.KubernetesEngineDiscovery` (``discovery``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

SourceKind = Literal["gpu", "engine", "host", "discovery"]
"""The ``kind`` label of ``rooftop_source_up``."""

ReadingT_co = TypeVar("ReadingT_co", covariant=True)


class Source(Protocol[ReadingT_co]):
    """Anything the sampler polls once per cycle."""

    @property
    def name(self) -> str:
        """The ``source`` label (never secret: no userinfo)."""
        ...

    @property
    def kind(self) -> SourceKind: ...

    def poll(self) -> ReadingT_co:
        """This cycle's reading; raises when the whole source failed."""
        ...


@dataclass(frozen=True)
class DiscoveredEngine:
    """What a discovery source reports for one engine it found."""

    url: str
    """Where its metrics are (built from checked parts: an IP, a port number, a plain path)."""
    name: str
    """The ``engine`` label, e.g. ``<namespace>/<pod>``."""
    gpus: tuple[str, ...] | None = None
    """GPU UUIDs it holds; ``None`` when unknown (then mapped as any engine)."""
