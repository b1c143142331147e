"""Engine adapters: one module per engine family, registered here, most specific first.

Adding an engine is one module with an adapter (see ``base.EngineAdapter``), one line in
``ADAPTERS`` and its fixtures. Dynamo workers re-expose their engine's own registry, so the
engine adapters come before ``DynamoAdapter``; NIM's unprefixed names come after everything with
a prefix. ``GenericAdapter`` needs a configuration and is never auto-detected.
"""

from __future__ import annotations

from rooftop.exporter.sources.engines.base import (
    NO_EXTRAS,
    EngineAdapter,
    EngineReading,
    ExtraEndpoint,
    Extras,
    Families,
    UnrecognisedExpositionError,
    missing_names,
)
from rooftop.exporter.sources.engines.dynamo import DynamoAdapter
from rooftop.exporter.sources.engines.generic import GenericAdapter, GenericConfig
from rooftop.exporter.sources.engines.llamacpp import LlamacppAdapter
from rooftop.exporter.sources.engines.lmdeploy import LmdeployAdapter
from rooftop.exporter.sources.engines.nim import NimAdapter
from rooftop.exporter.sources.engines.sglang import SglangAdapter
from rooftop.exporter.sources.engines.tgi import TgiAdapter
from rooftop.exporter.sources.engines.trtllm import TrtllmAdapter
from rooftop.exporter.sources.engines.vllm import VllmAdapter
from rooftop.exporter.sources.exposition import metric_prefixes

ADAPTERS: tuple[EngineAdapter, ...] = (
    VllmAdapter(),
    SglangAdapter(),
    LmdeployAdapter(),
    LlamacppAdapter(),
    TgiAdapter(),
    TrtllmAdapter(),
    DynamoAdapter(),
    NimAdapter(),
)


def detect_engine(families: Families) -> tuple[EngineAdapter, str]:
    """The first adapter in ``ADAPTERS`` that claims ``families``, and its one-line reason.

    Raises :class:`UnrecognisedExpositionError` listing the metric-name prefixes seen.
    """
    for adapter in ADAPTERS:
        reason = adapter.recognise(families)
        if reason:
            return adapter, reason
    raise UnrecognisedExpositionError(metric_prefixes(families))


def adapter_for_family(family: str) -> EngineAdapter:
    """The registered adapter whose ``family`` is ``family`` (for a configured engine name)."""
    for adapter in ADAPTERS:
        if adapter.family == family:
            return adapter
    known = ", ".join(a.family for a in ADAPTERS)
    raise ValueError(f"unknown engine {family!r}; known engines: {known} (or a generic config)")


__all__ = [
    "ADAPTERS",
    "NO_EXTRAS",
    "DynamoAdapter",
    "EngineAdapter",
    "EngineReading",
    "ExtraEndpoint",
    "Extras",
    "Families",
    "GenericAdapter",
    "GenericConfig",
    "LlamacppAdapter",
    "LmdeployAdapter",
    "NimAdapter",
    "SglangAdapter",
    "TgiAdapter",
    "TrtllmAdapter",
    "UnrecognisedExpositionError",
    "VllmAdapter",
    "adapter_for_family",
    "detect_engine",
    "missing_names",
]
