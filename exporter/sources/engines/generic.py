"""Any engine, configured by metric names: which series is generated tokens, prompt tokens, the
running batch, the queue, KV use and capacity, and which labels to keep.

A name may be a counter or gauge family (``my_engine_generated_tokens_total``) or one sample of a
histogram or summary (``my_engine_output_len_sum``). Values are summed over the series that pass
``label_filters``.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from rooftop.exporter.sources.engines.base import (
    NO_EXTRAS,
    EngineReading,
    ExtraEndpoint,
    Extras,
    Families,
    FamilySelection,
    build_reading,
)
from rooftop.exporter.sources.exposition import first_label, get_family, mean_values, sum_values

_SAMPLE_SUFFIXES = ("_sum", "_count")


@dataclass(frozen=True)
class GenericConfig:
    """Metric names for an engine rooftop has no adapter for. Only ``generation_tokens`` is
    required; every other quantity stays ``None`` unless named."""

    generation_tokens: str
    prompt_tokens: str | None = None
    requests_running: str | None = None
    requests_waiting: str | None = None
    kv_usage_ratio: str | None = None
    kv_capacity_tokens: str | None = None
    model: str | None = None
    """Model name, fixed (the exposition often has none)."""
    model_label: str = "model_name"
    label_filters: tuple[tuple[str, str], ...] = ()
    """``(label, value)`` pairs every summed series must carry."""

    def __post_init__(self) -> None:
        if not self.generation_tokens.strip():
            raise ValueError("generic engine: generation_tokens must name a metric")
        for pair in self.label_filters:
            if len(pair) != 2 or not all(isinstance(p, str) and p for p in pair):
                raise ValueError(f"generic engine: label filter {pair!r} is not (label, value)")


def _resolve(families: Families, name: str) -> tuple[Metric | None, str]:
    """The family a configured name refers to, and the sample suffix within it."""
    family = get_family(families, name)
    if family is not None:
        return family, ""
    for suffix in _SAMPLE_SUFFIXES:
        if name.endswith(suffix):
            base = get_family(families, name.removesuffix(suffix))
            if base is not None:
                return base, suffix
    return None, ""


@dataclass(frozen=True)
class GenericAdapter:
    config: GenericConfig
    family: str = "generic"
    extra_endpoints: tuple[ExtraEndpoint, ...] = ()

    @property
    def reads(self) -> FamilySelection:
        """The configured names, and each ``_sum``/``_count`` name's histogram or summary."""
        config = self.config
        names = [
            name
            for name in (
                config.generation_tokens,
                config.prompt_tokens,
                config.requests_running,
                config.requests_waiting,
                config.kv_usage_ratio,
                config.kv_capacity_tokens,
            )
            if name is not None
        ]
        bases = [n.removesuffix(s) for n in names for s in _SAMPLE_SUFFIXES if n.endswith(s)]
        return FamilySelection(names=(*names, *bases))

    def _sum(self, families: Families, name: str | None) -> float | None:
        if name is None:
            return None
        family, suffix = _resolve(families, name)
        return sum_values(family, suffix, dict(self.config.label_filters) or None)

    def recognise(self, families: Families) -> str | None:
        family, _ = _resolve(families, self.config.generation_tokens)
        if family is None:
            return None
        return f"configured generation-token metric {self.config.generation_tokens} present"

    def extract(self, families: Families, extras: Extras = NO_EXTRAS) -> EngineReading:
        config = self.config
        where = dict(config.label_filters) or None
        usage_family = (
            _resolve(families, config.kv_usage_ratio)[0] if config.kv_usage_ratio else None
        )
        model = config.model
        if model is None:
            names = [
                n
                for n in (config.generation_tokens, config.prompt_tokens, config.requests_running)
                if n is not None
            ]
            resolved = [_resolve(families, n)[0] for n in names]
            model = first_label(
                {f.name: f for f in resolved if f is not None},
                [f.name for f in resolved if f],
                (config.model_label,),
            )
        return build_reading(
            self.family,
            "generic",
            self.recognise(families) or "",
            {},
            model=model,
            prompt_tokens_total=self._sum(families, config.prompt_tokens),
            generation_tokens_total=self._sum(families, config.generation_tokens),
            requests_running=self._sum(families, config.requests_running),
            requests_waiting=self._sum(families, config.requests_waiting),
            kv_usage_ratio=mean_values(usage_family, where),
            kv_capacity_tokens=self._sum(families, config.kv_capacity_tokens),
        )
