"""The immutable snapshot the sampler publishes and every scrape renders.

Nothing here calls a device or an engine: these are plain frozen values. ``None`` means
"not known this cycle" and is rendered as an absent series, never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rooftop.classifiers.operating_point import OperatingPoint
from rooftop.classifiers.speculative import Speculation
from rooftop.classifiers.verdict import Tier, Verdict
from rooftop.exporter.telemetry import GpuIdentity, GpuReading
from rooftop.exporter.version import VERSION


@dataclass(frozen=True)
class SourceStatus:
    """Health of one source (``nvml``, ``dcgm``, ``host``, or an engine by its address)."""

    source: str
    kind: str
    """``gpu``, ``engine`` or ``host``."""
    up: bool
    duration_seconds: float
    last_success_unix_seconds: float | None
    error: str | None = None
    rejected: tuple[str, ...] = ()
    """Values the source exported but that were impossible (``field: why``), dropped this
    poll while the source's other values were kept (``rooftop_source_rejected_values``)."""


@dataclass(frozen=True)
class GpuView:
    """One GPU: identity, catalog match and peaks, this cycle's reading."""

    identity: GpuIdentity
    catalog_id: str | None
    """Our catalog id (``h100-sxm``); ``None`` when the GPU is not in the catalog."""
    up: bool
    tier: Tier
    reading: GpuReading | None
    peak_flops_per_second: dict[str, float] = field(default_factory=dict)
    """Dense peak per dtype, after overrides."""
    peak_bandwidth_bytes_per_second: float | None = None
    nvml_bandwidth_bytes_per_second: float | None = None
    """Theoretical bandwidth from NVML's max memory clock x bus width, as a cross-check."""
    compute_dtype: str = "bf16"
    """The dtype whose peak is the compute roof for the model on this GPU."""
    ridge_point_flops_per_byte: float | None = None
    dram_bandwidth_bytes_per_second: float | None = None
    """Observed: DRAM activity ratio x peak bandwidth (GPM or DCGM tier only)."""
    mig_supported: bool | None = None
    mig_instances: int = 0


@dataclass(frozen=True)
class EngineView:
    """One engine endpoint: what it said and the rates the sampler derived."""

    name: str
    url: str
    up: bool
    family: str | None
    version_family: str | None
    model: str | None
    model_resolved: str | None
    """The catalog/config model the roofline uses; ``None`` when the model is unknown."""
    weights: str | None
    kv_dtype: str | None
    tensor_parallel: int
    gpus: tuple[str, ...]
    """UUIDs of the GPUs this engine runs on."""
    mapping: str
    """How the GPUs were found: ``config``, ``discovered`` or the reason none were."""
    prefill_tokens_per_second: float | None = None
    decode_tokens_per_second: float | None = None
    requests_running: float | None = None
    requests_running_mean: float | None = None
    """Running requests averaged over the rate window: the batch the token rates belong to."""
    requests_waiting: float | None = None
    kv_usage_ratio: float | None = None
    kv_capacity_tokens: float | None = None
    kv_resident_tokens: float | None = None
    kv_resident_bytes: float | None = None
    mean_context_tokens: float | None = None
    engine_flops_per_second: float | None = None
    """From the engine's own estimate counters (vLLM/SGLang --enable-mfu-metrics)."""
    engine_read_bytes_per_second: float | None = None
    engine_write_bytes_per_second: float | None = None
    engine_bytes_per_second: float | None = None
    """The engine's read + write byte estimates per second (per GPU, as it reports them)."""
    speculation: Speculation | None = None
    """Speculative decoding as modelled this window (counters, else the setting)."""
    prefix_cache_hit_ratio: float | None = None
    """Share of prompt tokens served from the prefix cache (counters or the engine's gauge)."""
    prefill_includes_cached: bool = False
    """The prefill rate counts raw prompt tokens (the engine has no computed-prefill counter)."""
    inter_token_latency_seconds: float | None = None
    process_cpu_cores: float | None = None
    process_busiest_thread_ratio: float | None = None
    missing: tuple[str, ...] = ()
    prefill_tokens_total: float | None = None
    """rooftop's own counters (reset-aware sums of the engine's increases since rooftop
    started), for ``rate()``/``increase()`` over any window."""
    decode_tokens_total: float | None = None
    preemptions_total: float | None = None
    time_to_first_token_quantiles: dict[float, float] = field(default_factory=dict)
    """Quantile (0.5, 0.9, 0.99) -> seconds, over the rate window, from the engine's buckets."""
    inter_token_latency_quantiles: dict[float, float] = field(default_factory=dict)
    gpu_memory_used_bytes: float | None = None
    """GPU memory of the engine's process tree on its GPUs (NVML per-process figures)."""


@dataclass(frozen=True)
class TargetView:
    """The roofline and verdict of one GPU (with the engine on it), or of an engine whose
    GPUs cannot be seen (``uuid`` empty). Per-GPU figures: tensor parallelism divides bytes
    and FLOPs, while every GPU of the engine takes part in every token."""

    gpu: str
    uuid: str
    engine: str
    model: str
    peak_flops_per_second: float | None = None
    """The compute roof this target's point is placed under (the landing page draws it)."""
    peak_bandwidth_bytes_per_second: float | None = None
    """The memory roof this target's point is placed under (the landing page draws it)."""
    point: OperatingPoint | None = None
    """Where the live workload sits on the roofline; None without a known model and roof."""
    verdict: Verdict | None = None
    bound_seconds_total: dict[str, float] = field(default_factory=dict)
    """Seconds this target's published verdict spent in each state since rooftop started."""
    model_bytes_total: dict[str, float] = field(default_factory=dict)
    """Bytes the model moved on this GPU by phase (decode, prefill): tokens x bytes/token."""
    model_flops_total: dict[str, float] = field(default_factory=dict)
    """FLOPs the model did on this GPU by phase: tokens x FLOPs/token."""


@dataclass(frozen=True)
class Snapshot:
    """Everything one sampler cycle knew. Published whole; scrapes only read it."""

    sequence: int
    unix_seconds: float
    monotonic_seconds: float
    cycle_seconds: float
    demo: bool
    gpus: tuple[GpuView, ...] = ()
    engines: tuple[EngineView, ...] = ()
    targets: tuple[TargetView, ...] = ()
    sources: tuple[SourceStatus, ...] = ()
    version: str = VERSION
