"""Per-series counter continuity, before any adapter sums series together.

Prometheus' ``rate()`` detects counter resets *per series* and sums afterwards. An adapter sums
the ``engine="0"`` / ``engine="1"`` series of a data-parallel vLLM into one counter; if one rank
restarts, the sum drops by that rank's value and a reset-aware rate over the *sum* counts the
whole new sum as increase (2.48e6 tok/s where the truth was 400). :class:`CounterContinuity`
runs between the parser and the adapter and rewrites every cumulative sample (counter samples;
histogram and summary ``_count``/``_sum``) into a reset-corrected
value per series, as Prometheus counts it:

- a series that went down was reset: from then on it carries the value it had before the reset
  as an offset, so the corrected value never decreases;
- a series first seen after the first poll restarts the rate windows (its history before we
  saw it is unknown, as for a new series in Prometheus; its value is kept as exposed);
- a non-finite, negative or absurd sample (over 2**53; an int64 wrap shows up as about
  -9.2e18) is poison, not a
  reset: the series keeps its last corrected value this cycle and the sample is named;
- a gauge sample that is NaN, ±Inf or negative is left out and named (the bounds checks of
  ``reading_checks`` catch the rest, on the adapter's result: absurd magnitudes, ratios > 1);
- a series that vanished makes the sum drop for no reason a reset explains: the rate windows
  restart (:attr:`Continuity.restart_reason`).

:meth:`CounterContinuity.identity_changed` compares the engine's identity (adapter, process
start time, instance labels) with the previous poll's; a change means another engine answers at
this URL (blue/green behind a stable Service URL, vLLM replaced by SGLang): the state is dropped
and the rate windows restart, even if the new counters happen to be higher.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from rooftop.exporter.sources.exposition import series_key
from rooftop.exporter.sources.reading_checks import MAX_COUNTER
from rooftop.exporter.sources.selective_parser import DeferredBuckets

START_TIME_FAMILIES: Final = ("process_start_time_seconds",)
"""Families whose value is the engine process's start time (Unix seconds)."""
INSTANCE_LABELS: Final = ("instance", "pod", "pod_name", "hostname", "server_id")
"""Labels naming the instance behind the exposition (set by a gateway or the engine)."""
MAX_NAMED: Final = 3
"""At most this many poisoned series are named per poll (the count says the rest)."""

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]
Identity = tuple[str, float | None, frozenset[str]]


def _plausible_gauge(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _cumulative(family: Metric, sample: Sample) -> bool:
    if family.type == "counter":
        return not sample.name.endswith("_created")
    if family.type == "histogram":
        # Buckets are left as exposed: no rate reads them, and a bucket is a distribution's
        # shape (the demo's even restart per phase), not a quantity summed over ranks.
        return sample.name.endswith(("_count", "_sum"))
    if family.type == "summary":
        return sample.name.endswith(("_count", "_sum"))
    return False


def series_text(key: SeriesKey) -> str:
    name, labels = key
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def _first_sample(family: Metric) -> Sample | None:
    if isinstance(family, DeferredBuckets):
        return family.first_sample()  # bucket lines stay text
    return family.samples[0] if family.samples else None


def identity_of(adapter_family: str, families: Mapping[str, Metric]) -> Identity:
    """``(adapter, process start time, instance label values)`` of one exposition."""
    start: float | None = None
    for name in START_TIME_FAMILIES:
        family = families.get(name)
        if family is None:
            continue
        for sample in family.samples:
            if math.isfinite(sample.value) and (start is None or sample.value > start):
                start = sample.value
    instances: set[str] = set()
    for family in families.values():
        first = _first_sample(family)  # one sample per family is enough for its labels
        if first is None:
            continue
        for label in INSTANCE_LABELS:
            value = first.labels.get(label)
            if value:
                instances.add(f"{label}={value}")
    return adapter_family, start, frozenset(instances)


@dataclass(frozen=True)
class Continuity:
    """One poll's corrected families and what the correction found."""

    families: dict[str, Metric]
    poisoned: tuple[str, ...]
    """``series: why`` for each poisoned sample (at most :data:`MAX_NAMED`, then a count)."""
    counters_poisoned: bool
    """A cumulative series was poisoned: every counter the adapter sums from it is unreliable
    this poll (one rank held at its last value), so the caller holds the counters' windows."""
    restart_reason: str | None


class CounterContinuity:
    """Reset-corrected cumulative series for one engine URL, kept between polls."""

    def __init__(self) -> None:
        self._last_raw: dict[SeriesKey, float] = {}
        self._offset: dict[SeriesKey, float] = {}
        self._identity: Identity | None = None
        self._polls = 0
        self._appeared: list[SeriesKey] = []
        self._names: set[str] = set()
        """Sample names that had series at the previous poll."""

    def identity_changed(self, identity: Identity) -> str | None:
        """Why this identity differs from the previous poll's (state dropped), or ``None``."""
        previous, self._identity = self._identity, identity
        if previous is None or previous == identity:
            return None
        self._last_raw.clear()
        self._offset.clear()
        self._polls = 0
        if previous[0] != identity[0]:
            return f"engine type changed from {previous[0]} to {identity[0]}"
        if previous[1] != identity[1]:
            return f"process start time changed from {previous[1]} to {identity[1]}"
        return "instance labels changed: " + ", ".join(sorted(previous[2] ^ identity[2]))

    def forget(self) -> None:
        """The engine could not be read: the next poll starts a fresh baseline."""
        self._last_raw.clear()
        self._offset.clear()
        self._polls = 0

    def apply(self, families: Mapping[str, Metric]) -> Continuity:
        first = self._polls == 0
        self._polls += 1
        seen: set[SeriesKey] = set()
        poisoned: list[str] = []
        gauges_poisoned = 0
        out: dict[str, Metric] = {}
        for name, family in families.items():
            if family.type not in ("counter", "histogram", "summary"):
                before = len(poisoned)
                out[name] = self._finite_only(family, poisoned)
                gauges_poisoned += len(poisoned) - before
                continue

            def corrected_sample(sample: Sample, family: Metric = family) -> Sample | None:
                if not _cumulative(family, sample):
                    return sample
                key: SeriesKey = (sample.name, series_key(sample.labels, ())[0])
                seen.add(key)
                raw = sample.value
                value = self._correct(key, raw, first, poisoned)
                if value is None:
                    return None
                if value == raw and value and raw.__class__ is float:
                    return sample  # no reset so far: the sample as exposed (no copy)
                return sample._replace(value=value)

            if isinstance(family, DeferredBuckets):
                # Buckets are left as exposed (see _cumulative): they stay text.
                out[name] = family.map_plain(corrected_sample)
                continue
            corrected = Metric(family.name, family.documentation, family.type, family.unit)
            for sample in family.samples:
                changed = corrected_sample(sample)
                if changed is not None:
                    corrected.samples.append(changed)
            out[name] = corrected
        appeared, self._appeared = self._appeared, []
        self._names = {key[0] for key in seen}
        vanished = [key for key in self._last_raw if key not in seen]
        for key in vanished:
            del self._last_raw[key]
            self._offset.pop(key, None)
        restart = None
        if appeared:
            named = ", ".join(series_text(key) for key in appeared[:MAX_NAMED])
            more = f" and {len(appeared) - MAX_NAMED} more" if len(appeared) > MAX_NAMED else ""
            restart = f"counter series appeared: {named}{more}"
        if vanished:
            named = ", ".join(series_text(key) for key in vanished[:MAX_NAMED])
            more = f" and {len(vanished) - MAX_NAMED} more" if len(vanished) > MAX_NAMED else ""
            restart = f"counter series vanished: {named}{more}"
        counters_poisoned = len(poisoned) > gauges_poisoned
        if len(poisoned) > MAX_NAMED:
            poisoned = [*poisoned[:MAX_NAMED], f"{len(poisoned) - MAX_NAMED} more series"]
        return Continuity(
            out, tuple(poisoned), counters_poisoned=counters_poisoned, restart_reason=restart
        )

    @staticmethod
    def _finite_only(family: Metric, poisoned: list[str]) -> Metric:
        """A gauge family without its NaN, ±Inf and negative samples (each named): the adapter
        then sums or averages the ranks that reported a plausible number. An engine's gauges
        are counts, ratios, sizes, durations and timestamps; none is ever negative, and one
        rank's ``-8`` must not cancel another rank's requests in a sum."""
        bad = [s for s in family.samples if not _plausible_gauge(s.value)]
        if not bad:
            return family
        for sample in bad:
            key: SeriesKey = (sample.name, tuple(sorted(sample.labels.items())))
            poisoned.append(f"{series_text(key)}: {sample.value:g}")
        kept = Metric(family.name, family.documentation, family.type, family.unit)
        kept.samples = [s for s in family.samples if _plausible_gauge(s.value)]
        return kept

    def _correct(
        self, key: SeriesKey, raw: float, first: bool, poisoned: list[str]
    ) -> float | None:
        """The corrected value of one sample, or ``None`` (left out) when it is poison with no
        earlier value to stand in."""
        last = self._last_raw.get(key)
        if not math.isfinite(raw) or raw < 0 or raw > MAX_COUNTER:
            poisoned.append(f"{series_text(key)}: {raw:g}")
            if last is None:
                return None
            return last + self._offset.get(key, 0.0)  # keeps its last value this cycle
        if last is None:
            # New series: as exposed (values stay what the engine says: adapters also read
            # totals, e.g. speculative acceptance); one appearing after the first poll
            # restarts the windows, so its history never counts as this poll's increase.
            self._offset[key] = 0.0
            if not first and key[0] in self._names:
                # Another series of a counter already read (a new rank): the sum jumps by its
                # whole value. A counter exported for the first time starts its own window.
                self._appeared.append(key)
        elif raw < last:
            self._offset[key] = self._offset.get(key, 0.0) + last  # a reset of this series
        self._last_raw[key] = raw
        return raw + self._offset[key]
