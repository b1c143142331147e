"""The common engine sample every engine adapter fills, and the adapter protocol.

An adapter maps one engine family's Prometheus exposition to :class:`EngineReading`. A quantity
the engine does not export is ``None`` (absent, never zero), and its name goes in ``missing``.
Counters are the raw cumulative values as exposed, summed over data-parallel series (``engine``,
``dp_rank`` labels); the sampler turns them into reset-aware rates.

Adapters do no I/O. An engine that keeps some facts off its exposition (TGI's model id in
``/info``, llama.cpp's context size in ``/props`` and slot use in ``/slots``) declares those
endpoints in ``extra_endpoints``; the source (``exporter.sources.engine``) fetches them from the
same origin as the exposition, decodes the JSON, and hands the ones that answered to
``extract(families, extras)`` keyed by :attr:`ExtraEndpoint.name`. A failed extra endpoint
simply leaves its quantities ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Protocol

from prometheus_client.metrics_core import Metric

from rooftop.exporter.sources.selective_parser import FamilySelection as FamilySelection

Families = Mapping[str, Metric]
"""Parsed exposition: metric family name (as parsed, without ``_total``) -> family."""

Extras = Mapping[str, object]
"""Decoded JSON bodies of an adapter's extra endpoints that answered, by endpoint name."""

NO_EXTRAS: Extras = MappingProxyType({})


@dataclass(frozen=True)
class EngineReading:
    family: str
    """Adapter id, e.g. ``vllm``, ``sglang``, ``tgi``, ``llamacpp``."""
    version_family: str
    """Which version line was recognised, e.g. ``vllm-v1``, ``sglang-0.4``."""
    recognised_because: str
    """One line: which metric names made the adapter claim the exposition."""
    model: str | None = None
    # Cumulative counters (tokens).
    prompt_tokens_total: float | None = None
    """All prompt tokens admitted, cache hits included."""
    prefill_computed_tokens_total: float | None = None
    """Prompt tokens actually computed (prefix-cache hits excluded), where the engine says."""
    generation_tokens_total: float | None = None
    # Gauges.
    requests_running: float | None = None
    requests_waiting: float | None = None
    kv_usage_ratio: float | None = None
    """Fraction 0-1 of the KV pool in use (mean over data-parallel engines)."""
    kv_capacity_tokens: float | None = None
    """KV pool size in tokens, summed over data-parallel engines."""
    kv_block_size_tokens: int | None = None
    kv_cache_dtype: str | None = None
    """As the engine names it; vLLM's ``auto`` means "same as the weights"."""
    weights_dtype: str | None = None
    # The engine's own roofline estimates (vLLM/SGLang --enable-mfu-metrics), cumulative.
    # Per GPU as the engine reports them, summed over data-parallel engines.
    estimated_flops_total: float | None = None
    estimated_read_bytes_total: float | None = None
    estimated_write_bytes_total: float | None = None
    # Latency histograms as (sum, count), cumulative: seconds.
    inter_token_latency_sum_count: tuple[float, float] | None = None
    time_to_first_token_sum_count: tuple[float, float] | None = None
    # The same two histograms' cumulative buckets ``((le, count), ...)`` with ``le`` ascending
    # and ``+Inf`` last, summed over series: the sampler windows them for quantiles.
    inter_token_latency_buckets: tuple[tuple[float, float], ...] | None = None
    time_to_first_token_buckets: tuple[tuple[float, float], ...] | None = None
    # Tokens per engine step (vLLM iteration_tokens_total histogram): (sum, count).
    iteration_tokens_sum_count: tuple[float, float] | None = None
    preemptions_total: float | None = None
    """Requests preempted (vLLM num_preemptions; SGLang retractions), cumulative."""
    # Speculative decoding, cumulative counters (vLLM vllm/v1/spec_decode/metrics.py, llama.cpp
    # llamacpp:spec_decode_*): drafts (one per sequence per step that drafted), proposed draft
    # tokens, accepted ones, and accepted ones per draft position (position 0 first).
    spec_drafts_total: float | None = None
    spec_draft_tokens_total: float | None = None
    spec_accepted_tokens_total: float | None = None
    spec_accepted_per_position_total: tuple[float, ...] | None = None
    spec_accept_length: float | None = None
    """Gauge: mean tokens per step per sequence, ``1 + k x alpha`` (SGLang spec_accept_length)."""
    # Prefix cache: cumulative token counters (vLLM prefix_cache_{queries,hits}_total) or a
    # hit-ratio gauge (SGLang cache_hit_rate).
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None
    prefix_cache_hit_ratio: float | None = None
    missing: tuple[str, ...] = field(default=())
    """Common quantities this exposition lacks, with a hint how to enable each where one exists.

    Each entry is ``"field_name"`` or ``"field_name: hint"``; see :func:`missing_names`."""
    rejected: tuple[str, ...] = field(default=())
    """Quantities the engine exported with an impossible value (negative, NaN, ±Inf, absurd),
    dropped at the source boundary: ``"field_name: why"`` each (see ``reading_checks``)."""
    restart_reason: str | None = None
    """Set when the rate windows must restart: the engine's identity changed (another engine
    type, model, start time or instance answers at this URL) or a counter series vanished."""


QUANTITY_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in fields(EngineReading)
    if f.name
    not in (
        "family",
        "version_family",
        "recognised_because",
        "missing",
        "rejected",
        "restart_reason",
    )
)
"""Every optional quantity of :class:`EngineReading`, in declaration order."""


def missing_names(reading: EngineReading) -> tuple[str, ...]:
    """The field names in ``reading.missing``, hints stripped."""
    return tuple(entry.split(":", 1)[0] for entry in reading.missing)


def build_reading(
    family: str,
    version_family: str,
    recognised_because: str,
    hints: Mapping[str, str],
    **values: object,
) -> EngineReading:
    """An :class:`EngineReading` whose ``missing`` lists every quantity left ``None``.

    ``hints`` maps a field name to how to enable it (``"start vLLM with --enable-mfu-metrics"``)
    or why it cannot be had; fields without a hint are listed bare.
    """
    unknown = set(values) - set(QUANTITY_FIELDS)
    if unknown:
        raise TypeError(f"not EngineReading quantities: {sorted(unknown)}")
    missing: list[str] = []
    for name in QUANTITY_FIELDS:
        if values.get(name) is None:
            hint = hints.get(name)
            missing.append(f"{name}: {hint}" if hint else name)
    return EngineReading(
        family=family,
        version_family=version_family,
        recognised_because=recognised_because,
        missing=tuple(missing),
        **values,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class ExtraEndpoint:
    """A JSON endpoint on the exposition's own origin that fills quantities the exposition lacks."""

    name: str
    """Key in the ``extras`` mapping handed to ``extract``."""
    path: str
    """Absolute path on the same scheme/host/port as the exposition, e.g. ``/info``."""
    every_poll: bool = False
    """Fetched on every poll (live state like ``/slots``); else once, until it has answered."""


class UnrecognisedExpositionError(ValueError):
    """No adapter claims the exposition. ``prefixes`` are the metric-name prefixes seen."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        self.prefixes: tuple[str, ...] = tuple(prefixes)
        seen = ", ".join(self.prefixes) if self.prefixes else "no metrics at all"
        super().__init__(
            f"no engine adapter recognises this exposition; metric-name prefixes seen: {seen}"
        )


class EngineAdapter(Protocol):
    """One engine family. Registered in ``exporter.sources.engines.ADAPTERS``."""

    @property
    def family(self) -> str:
        """Adapter id (``vllm``), also the ``engine`` label value."""
        ...

    @property
    def extra_endpoints(self) -> tuple[ExtraEndpoint, ...]:
        """JSON endpoints on the same origin this adapter can use (empty for most)."""
        ...

    @property
    def reads(self) -> FamilySelection:
        """The families ``recognise`` and ``extract`` read. After recognition the engine's
        body is parsed with this selection only: nothing is built for the other families, nor
        for histogram ``_bucket`` lines unless ``buckets`` is set. A prefix (``vllm:``) covers
        every family in the namespace, so a new family there needs no change here."""
        ...

    def recognise(self, families: Families) -> str | None:
        """Return a one-line reason when this exposition is this engine's, else ``None``.

        Must look at family names only (``get_family(...) is not None``): recognition runs on
        a names-only parse (``NAMES_ONLY``), where families have no samples."""
        ...

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        """Map the exposition to the common reading. Must never raise on odd content."""
        ...
