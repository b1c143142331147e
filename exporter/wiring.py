"""Settings → sources: the one place the application's settings become the sources' own small
config values (sources never import :mod:`rooftop.exporter.settings`).

Used by ``rooftop serve`` (and by :class:`~rooftop.exporter.sampler.Sampler` as its default
engine factory).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rooftop.exporter.extras import missing_extra
from rooftop.exporter.settings import ConfigError, EngineConfig, Settings
from rooftop.exporter.sources.dcgm import DcgmSource
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.engines import GenericAdapter, adapter_for_family
from rooftop.exporter.sources.engines.base import EngineAdapter
from rooftop.exporter.sources.http import Fetch, fetch_text

if TYPE_CHECKING:
    from rooftop.exporter.sources.kubernetes import KubernetesEngineDiscovery


def engine_adapter(config: EngineConfig) -> EngineAdapter | None:
    """The adapter an engine's config asks for; ``None`` to detect it from the exposition."""
    if config.generic is not None:
        return GenericAdapter(config.generic)
    if config.family:
        try:
            return adapter_for_family(config.family)
        except (LookupError, ValueError) as error:  # adapter_for_family raises ValueError
            raise ConfigError(f"engines: {error}") from None
    return None


def engine_source(
    settings: Settings, config: EngineConfig, fetch: Fetch = fetch_text
) -> EngineSource:
    """The source for one engine, configured or discovered, with the engine settings.
    ``fetch``: the HTTP boundary (a recording or replaying one for ``rooftop record``)."""
    return EngineSource(
        config.label,
        config.url,
        timeout_seconds=settings.engine_timeout_seconds,
        max_body_bytes=settings.engine_max_body_bytes,
        adapter=engine_adapter(config),
        fetch=fetch,
        max_series=settings.engine_max_series,
        name_filter=config.name_filter,
    )


def dcgm_source(
    settings: Settings,
    fetch: Fetch = fetch_text,
    clock: Callable[[], float] = time.monotonic,
) -> DcgmSource | None:
    """The dcgm-exporter source when ``dcgm_url`` is set (sidecar: this pod's series only)."""
    if not settings.dcgm_url:
        return None
    return DcgmSource(
        settings.dcgm_url,
        fetch,
        clock=clock,
        pod_name=settings.kubernetes_pod_name,
        pod_namespace=settings.kubernetes_pod_namespace,
    )


def kubernetes_discovery(settings: Settings) -> KubernetesEngineDiscovery:
    """Engine discovery on this Kubernetes node (DaemonSet mode); imported only when used."""
    try:
        from rooftop.exporter.sources.kubernetes import (
            KubernetesConfigError,
            KubernetesDiscoveryConfig,
            KubernetesEngineDiscovery,
        )
    except ImportError as error:
        missing = missing_extra(error, "Kubernetes discovery (kubernetes_node_name is set)")
        if missing is None:
            raise
        raise missing from None

    try:
        return KubernetesEngineDiscovery(
            KubernetesDiscoveryConfig(
                node_name=settings.kubernetes_node_name or "",
                port_annotation=settings.engine_port_annotation,
                path_annotation=settings.engine_path_annotation,
                pod_resources_socket=settings.kubelet_pod_resources_socket,
            )
        )
    except KubernetesConfigError as error:
        raise ConfigError(str(error)) from None
