"""One typed, frozen settings object, validated once at start and passed down explicitly.

Precedence, highest first: command-line flags, ``ROOFTOP_*`` environment variables, the YAML
file named by ``--config``, defaults. Unknown keys are rejected; a bad value names its field.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from rooftop.classifiers.models import KvDtype, WeightFormat
from rooftop.classifiers.speculative import SpeculativeMethod
from rooftop.exporter.sources.engines.generic import GenericConfig
from rooftop.exporter.sources.http import check_http_url

DEFAULT_PORT = 9753
DEFAULT_ENGINE_PORTS: tuple[int, ...] = (8000, 30000, 8080, 3000, 23333)
"""Ports probed on localhost when no engine is configured: vLLM and trtllm-serve (8000),
SGLang (30000), llama.cpp and TGI containers (8080), TGI launcher (3000), LMDeploy (23333)."""


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the field and what to fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")
_SECRET_QUERY = re.compile(
    r"(?i)([?&][^=&#\s]*(?:token|key|secret|passw|auth|sig|credential)[^=&#\s]*=)"
    r"(?:(?!:\s)[^&#\s'\"])*"  # the value, up to the next parameter or a message's ": "
)


def redact_url(text: str) -> str:
    """``text`` (a URL, or a message quoting URLs) with every URL's ``user:password@`` removed
    and the values of secret-looking query parameters (``token``, ``api_key``, ``sig`` ...)
    replaced by ``redacted``, for labels, pages, logs and recordings."""
    return _SECRET_QUERY.sub(r"\1redacted", _USERINFO.sub("", text))


def _check_http_url(value: str) -> str:
    """The one place a configured URL (engine, dcgm-exporter) is validated."""
    return check_http_url(value)


_GENERIC_KEYS = tuple(f.name for f in dataclasses.fields(GenericConfig))


def _generic_from_mapping(value: Any) -> Any:
    """An engine's ``generic:`` block (YAML/JSON mapping) as :class:`GenericConfig` fields:
    unknown keys are named, ``label_filters`` may be a ``{label: value}`` mapping."""
    if not isinstance(value, Mapping):
        return value
    unknown = sorted(str(key) for key in value if key not in _GENERIC_KEYS)
    if unknown:
        raise ValueError(
            f"unknown key {', '.join(unknown)}; valid keys: {', '.join(_GENERIC_KEYS)}"
        )
    filters = value.get("label_filters")
    if isinstance(filters, Mapping):
        pairs = tuple(sorted((str(label), str(wanted)) for label, wanted in filters.items()))
        value = {**value, "label_filters": pairs}
    return value


GenericEngine = Annotated[GenericConfig, BeforeValidator(_generic_from_mapping)]
"""For in-house servers: which of their metrics mean what (the adapter's own config type)."""


class SpeculativeConfig(_Strict):
    """How an engine speculates, for engines that run speculative decoding but export no
    counters for it (or to pin the method and ``k``, which no counter names).

    ``acceptance`` is the share of draft tokens accepted (0-1); when the engine exports its
    counters (vLLM, llama.cpp) or its accept length (SGLang) the live figure replaces it.
    ``draft_model``: the draft's catalog id, HF id or config.json, for ``method: draft_model``.
    """

    method: SpeculativeMethod
    num_speculative_tokens: int = Field(ge=1, le=64)
    acceptance: float = Field(default=0.7, ge=0.0, le=1.0)
    draft_model: str | None = None

    @model_validator(mode="after")
    def _draft(self) -> SpeculativeConfig:
        if self.method == "draft_model" and not self.draft_model:
            raise ValueError("speculative method draft_model needs draft_model (its id or path)")
        return self


class EngineConfig(_Strict):
    """One engine endpoint."""

    url: str
    """The engine's Prometheus `/metrics` URL (`user:password@` is sent as basic auth)."""
    name: str | None = None
    """Label value for this engine; defaults to the URL's host:port."""
    family: str | None = None
    """Force an adapter (``vllm``, ``sglang``, ...); auto-detected when unset."""
    model: str | None = None
    """Catalog id, HF id or path to a ``config.json``; else the engine's model name."""
    weights: WeightFormat | None = None
    """Weight format, when the model's config does not say."""
    kv_dtype: KvDtype | None = None
    """KV-cache dtype, when the engine does not say."""
    gpus: tuple[str, ...] | None = None
    """GPU UUIDs or indexes this engine runs on; discovered when unset."""
    tensor_parallel: int | None = Field(default=None, ge=1, le=1024)
    """GPUs the model is sharded over; the number of its GPUs when unset."""
    pid: int | None = Field(default=None, ge=1)
    """The engine's main process, when discovery by port cannot see it."""
    generic: GenericEngine | None = None
    """Metric names of an in-house server (see `engines[].generic` below)."""
    speculative: SpeculativeConfig | None = None
    """Speculative decoding this engine runs (see :class:`SpeculativeConfig`)."""
    name_filter: bool = True
    """Ask for only the series rooftop reads (`?name[]=...`, which prometheus_client's handlers
    answer, as vLLM's `/metrics` does), the whole body every 30 polls. Servers that ignore the
    query send everything; multiprocess ones (SGLang, vLLM with several API servers) send
    nothing, and are asked whole for 30 polls before the next try. Off: always whole."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpus(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(str(item) for item in value)
        if isinstance(value, (str, int)):
            return tuple(part.strip() for part in str(value).split(",") if part.strip())
        return value

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        return parts.netloc.rpartition("@")[2]  # never the userinfo: labels are public


_GPU_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z][0-9A-Za-z-]*$")
"""NVML's UUID forms: ``GPU-<hex groups>`` for a device, ``MIG-<...>`` for a MIG instance."""


def _closest(word: str, known: Any, cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or nothing when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


class GpuOverride(_Strict):
    """Replace catalog peaks (datasheet or measured attainable ceilings) for a GPU."""

    peak_flops_per_second: dict[str, float] | None = None
    """Dense peak FLOP/s by dtype (``bf16``, ``fp8``, ...; aliases such as ``bfloat16`` too)."""
    memory_bandwidth_bytes_per_second: float | None = Field(default=None, gt=0)
    """Peak DRAM bandwidth."""
    note: str = "configured override"
    """Where the figures come from (recorded as their source)."""

    @field_validator("peak_flops_per_second")
    @classmethod
    def _peaks(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        from rooftop.classifiers.hardware import normalise_dtype

        peaks: dict[str, float] = {}
        for dtype, peak in value.items():
            key = normalise_dtype(dtype)  # ValueError names the closest dtype
            if not math.isfinite(peak) or peak <= 0:
                raise ValueError(f"{dtype}: peak must be a positive FLOP/s figure, got {peak!r}")
            if key in peaks:
                raise ValueError(f"{dtype}: {key} is given twice (aliases of one dtype)")
            peaks[key] = peak
        return peaks

    @model_validator(mode="after")
    def _overrides_something(self) -> GpuOverride:
        if not self.peak_flops_per_second and self.memory_bandwidth_bytes_per_second is None:
            raise ValueError(
                "an override needs peak_flops_per_second or memory_bandwidth_bytes_per_second"
            )
        if not self.note.strip():
            raise ValueError("note must say where the figures come from")
        return self


class Settings(BaseSettings):
    """Everything ``rooftop serve`` needs. Field names carry their units."""

    model_config = SettingsConfigDict(
        env_prefix="ROOFTOP_",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    listen_address: str = Field(default=f":{DEFAULT_PORT}")
    """``host:port`` or ``:port`` (all interfaces)."""
    interval_seconds: float = Field(default=1.0, ge=0.05, le=300)
    """Seconds between sampler cycles (every source polled once per cycle)."""
    rate_window_seconds: float = Field(default=5.0, gt=0, le=3600)
    """Token rates are computed over this much history (at least two samples)."""
    # NoDecode: ROOFTOP_ENGINES / ROOFTOP_DISCOVER_PORTS take comma lists (or JSON, see below).
    engines: Annotated[tuple[EngineConfig, ...], NoDecode] = ()
    """Engine endpoints to read (see `engines[]` below); bare URLs are accepted."""
    discover_engines: bool = True
    """With no engine configured, probe ``discover_ports`` on localhost, again every
    ``discovery_interval_seconds``."""
    discover_ports: Annotated[tuple[int, ...], NoDecode] = DEFAULT_ENGINE_PORTS
    """Localhost ports probed for an engine: vLLM/trtllm-serve, SGLang, llama.cpp/TGI,
    TGI launcher, LMDeploy."""
    engine_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    """Deadline for one engine scrape: connect, headers and body."""
    engine_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """An engine exposition larger than this is refused (that engine is down)."""
    engine_max_series: int = Field(default=50_000, ge=100)
    """An engine exposition with more series than this is refused (that engine is down)."""
    nvml: bool = True
    """Read local GPUs through NVML."""
    gpu_call_deadline_seconds: float = Field(default=2.0, gt=0, le=60)
    """Deadline for one NVML call; a GPU that does not answer in time is down."""
    dcgm_url: str | None = None
    """A dcgm-exporter ``/metrics`` URL: the profiling tier for GPUs without GPM."""
    gpu_model: str | None = None
    """Catalog id of the GPU type, for engines whose GPUs cannot be seen (engine-only)."""
    gpu_overrides: dict[str, GpuOverride] = Field(default_factory=dict)
    """Keyed by catalog id (``h100-sxm``) or GPU UUID."""
    default_context_tokens: int = Field(default=1024, ge=1)
    """Context assumed per sequence when the engine does not say how much KV is resident."""
    verdict_hold_samples: int = Field(default=3, ge=1, le=1000)
    """Hysteresis: a new verdict is published after this many consecutive samples."""
    verdict_thresholds: dict[str, float] = Field(default_factory=dict)
    """Overrides of ``classifiers.verdict.VerdictThresholds`` fields by name."""
    kubernetes_node_name: str | None = None
    """DaemonSet mode: find engines in the pods of this node (set from the downward API)."""
    kubelet_pod_resources_socket: Path = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
    """The kubelet pod-resources gRPC socket: which pod holds which GPU (DaemonSet mode)."""
    engine_port_annotation: str = "rooftop.dev/engine-port"
    """Pod annotation naming the engine's metrics port (DaemonSet mode)."""
    engine_path_annotation: str = "rooftop.dev/engine-path"
    """Optional pod annotation naming the metrics path (default ``/metrics``)."""
    kubernetes_pod_name: str | None = None
    """Sidecar mode: this pod's name, to keep only its own GPUs' series from dcgm-exporter."""
    kubernetes_pod_namespace: str | None = None
    """Sidecar mode: this pod's namespace (with `kubernetes_pod_name`)."""
    discovery_interval_seconds: float = Field(default=30.0, ge=1, le=3600)
    """How often engine discovery runs: Kubernetes pods (DaemonSet mode), or the localhost
    ports when no engine is configured (an engine still loading is found once it answers)."""
    web_config_file: Path | None = None
    """Prometheus exporter web-config file (TLS, basic auth)."""
    max_concurrent_scrapes: int = Field(default=16, ge=1, le=1024)
    """Worker threads for the requests not answered from memory (the landing page, a first
    password check); the serving loop answers /metrics and /healthz itself."""
    demo: bool = False
    """Serve a simulated H100 node running Llama-3.1-8B on vLLM (every series marked demo)."""
    demo_gpus: int = Field(default=1, ge=1, le=64)
    """Simulated GPUs in demo mode."""
    demo_engines: int = Field(default=1, ge=1, le=64)
    """Simulated engines in demo mode (engine i on GPU i mod demo_gpus)."""
    demo_cycle_seconds: float = Field(default=120.0, ge=10, le=3600)
    """Length of the demo's scripted load cycle (idle, decode, prefill, host-bound)."""
    demo_seed: int = 1
    """Seed of the demo's noise, so two runs show the same numbers."""
    demo_gpu: str = "h100-sxm"
    """Catalog id of the demo's simulated GPUs (an NVIDIA GPU: h100-sxm, h200, l40s, ...)."""
    demo_model: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Catalog model the demo engines serve (Hugging Face id or catalog id)."""
    demo_offset_seconds: float = Field(default=0.0, ge=0)
    """Where in its load cycle the demo node starts, so several demo nodes differ in phase."""

    @field_validator("listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        listen_host_port(value)
        return value

    @field_validator("dcgm_url")
    @classmethod
    def _dcgm(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @field_validator("gpu_model")
    @classmethod
    def _gpu_model(cls, value: str | None) -> str | None:
        if value is not None:
            from rooftop.classifiers.hardware import UnknownGpuError, lookup_gpu

            try:
                lookup_gpu(value)
            except UnknownGpuError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("demo_gpu")
    @classmethod
    def _demo_gpu(cls, value: str) -> str:
        from rooftop.classifiers.hardware import UnknownGpuError, lookup_gpu

        try:
            lookup_gpu(value)
        except UnknownGpuError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("demo_model")
    @classmethod
    def _demo_model(cls, value: str) -> str:
        from rooftop.classifiers.model_catalog import UnknownModelError, resolve_model_id

        try:
            resolve_model_id(value)
        except UnknownModelError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("gpu_overrides")
    @classmethod
    def _overrides(cls, value: dict[str, GpuOverride]) -> dict[str, GpuOverride]:
        """Keys are catalog ids or NVML UUIDs; an NVML name is taken as its catalog id. A key
        that is neither would never match a GPU, so it is an error naming the closest id."""
        from rooftop.classifiers.hardware import UnknownGpuError, closest_gpu_ids, lookup_gpu

        keyed: dict[str, GpuOverride] = {}
        for key, override in value.items():
            if _GPU_UUID.match(key):
                resolved = key
            else:
                try:
                    resolved = lookup_gpu(key).id
                except UnknownGpuError:
                    closest = ", ".join(closest_gpu_ids(key))
                    raise ValueError(
                        f"{key!r} is neither a catalog GPU id nor a GPU UUID (GPU-...); "
                        f"closest ids: {closest} (`rooftop gpus` lists them all)"
                    ) from None
            if resolved in keyed:
                raise ValueError(f"{key!r}: {resolved} is overridden twice")
            keyed[resolved] = override
        return keyed

    @field_validator("discover_ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _json_or_comma_list(value)
        return value

    @field_validator("engines", mode="before")
    @classmethod
    def _engines(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = _json_or_comma_list(value)
        if isinstance(value, (list, tuple)):
            return tuple(_engine_item(item) if isinstance(item, str) else item for item in value)
        return value

    @field_validator("engines")
    @classmethod
    def _distinct_engines(cls, value: tuple[EngineConfig, ...]) -> tuple[EngineConfig, ...]:
        """The same URL twice is refused (duplicate series); engines whose default label
        (host:port) collides are labelled host:port/path; the same explicit name twice is
        refused."""
        seen: dict[str, int] = {}
        for index, engine in enumerate(value):
            key = engine.url.rstrip("/")
            if key in seen:
                raise ValueError(
                    f"engines.{index}.url: {redact_url(engine.url)} is already engines."
                    f"{seen[key]}; list each engine once"
                )
            seen[key] = index
        defaults: dict[str, int] = {}
        for engine in value:
            if not engine.name:
                defaults[engine.label] = defaults.get(engine.label, 0) + 1
        out = []
        for engine in value:
            if not engine.name and defaults[engine.label] > 1:
                parts = urlsplit(engine.url)
                engine = engine.model_copy(update={"name": engine.label + (parts.path or "/")})
            out.append(engine)
        names: dict[str, int] = {}
        for index, engine in enumerate(out):
            if engine.label in names:
                raise ValueError(
                    f"engines.{index}.name: {engine.label!r} is already the name of engines."
                    f"{names[engine.label]}; give each engine its own name"
                )
            names[engine.label] = index
        return tuple(out)

    @field_validator("verdict_thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        from rooftop.classifiers.verdict import VerdictThresholds

        known = set(VerdictThresholds.__dataclass_fields__) - {"hold_samples"}
        for name in sorted(set(value) - known):
            raise ValueError(
                f"unknown threshold {name!r}{_closest(name, known)}; known: {sorted(known)}"
                + (
                    " (hold_samples is the verdict_hold_samples setting)"
                    if name == "hold_samples"
                    else ""
                )
            )
        try:
            VerdictThresholds(**value)  # type: ignore[arg-type]
        except ValueError as error:
            raise ValueError(str(error)) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _json_or_comma_list(text: str) -> Any:
    """An environment value: JSON when it looks like JSON, else a comma-separated list."""
    if text.lstrip().startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON ({error})") from None
    return [part.strip() for part in text.split(",") if part.strip()]


def listen_host_port(address: str) -> tuple[str, int]:
    """Split ``host:port``, ``:port`` or ``[v6]:port``; raise ValueError naming the problem."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{address!r} is not host:port, e.g. :{DEFAULT_PORT} or 127.0.0.1:9753")
    host = host.strip("[]")
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(part.isalnum() or "-" in part for part in host.split(".")):
                raise ValueError(f"{host!r} is not an address or host name") from None
    return host, int(port_text)


class _MappingSource(PydanticBaseSettingsSource):
    """Settings read from an already-parsed YAML document."""

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = dict(data)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _engine_item(item: str) -> dict[str, str]:
    """``URL`` or ``NAME=URL`` (``--engine prefill=http://10.0.0.1:8000/metrics``)."""
    name, sep, url = item.partition("=")
    if sep and "://" in url and "/" not in name and ":" not in name and name.strip():
        return {"name": name.strip(), "url": url.strip()}
    return {"url": item}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML config file; raise ConfigError saying what is wrong with it."""
    import yaml  # here, not at the top: a daemon configured without a file never loads it

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"config file {path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"config file {path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} on "
            f"line {line}); save it as UTF-8"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path}: not valid YAML ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top level")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def load_settings(
    flags: Mapping[str, Any] | None = None, config_file: Path | None = None
) -> Settings:
    """Build the settings from flags, environment and an optional YAML file.

    Raises ConfigError with one line per bad field (``engines.0.url: ...``).
    """
    file_data = read_config_file(config_file) if config_file is not None else {}

    class _LoadedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _MappingSource(settings_cls, file_data))

    try:
        return _LoadedSettings(**{k: v for k, v in (flags or {}).items() if v is not None})
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    except SettingsError as error:  # an environment value that is not valid JSON
        raise ConfigError(f"invalid configuration:\n  {error} (expected JSON)") from None


def _known_keys(loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """The field names of the model that holds the key at ``loc``."""
    model: type[BaseModel] = Settings
    if len(loc) >= 3 and loc[0] == "engines":
        if len(loc) >= 4 and loc[2] == "generic":
            return _GENERIC_KEYS
        model = EngineConfig
    elif len(loc) >= 3 and loc[0] == "gpu_overrides":
        model = GpuOverride
    return tuple(model.model_fields)


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            hint = _closest(str(problem["loc"][-1]), _known_keys(problem["loc"]))
            message = f"unknown setting{hint} (docs/configuration.md lists every key)"
        lines.append(f"{where}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
