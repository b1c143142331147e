"""Parse a Prometheus text exposition into families, and read values out of them safely.

Parsing uses ``prometheus_client.parser.text_string_to_metric_families`` (text format 0.0.4),
with the OpenMetrics parser tried first when the body ends in ``# EOF``. On top of it:

* ``*_created`` families and samples are dropped (prometheus_client emits them as separate
  gauge families in single-process mode; they carry start timestamps, not quantities);
* families that appear twice under one name (untyped excerpts, ``# TYPE x counter`` followed by
  ``x_total`` samples) are merged into one;
* the number of series is capped before and during parsing (label explosion is bounded);
* any malformed input raises :class:`ExpositionError` with a short message, never another type.

The read helpers never raise on odd content: a missing family, a family of another type, or no
finite matching sample gives ``None``. Sums run over data-parallel series (``engine``,
``dp_rank``, ``model_name`` ...); series that differ only in a *replica* label (``tp_rank``,
``pp_rank``, ``moe_ep_rank``, ``pid``: the same batch reported by every rank) count once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeVar, overload

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from prometheus_client.samples import Sample

from rooftop.exporter.sources.selective_parser import (
    EVERYTHING,
    DeferredBuckets,
    FamilySelection,
    SeriesCapError,
    name_variants,
    parse_label_text,
    parse_selected,
)

DEFAULT_MAX_SERIES: Final = 50_000
"""Series cap: a full vLLM exposition with 8 data-parallel engines is about 10 000 series."""
DEFAULT_MAX_CHARS: Final = 32 * 1024 * 1024

REPLICA_LABELS: Final[tuple[str, ...]] = ("tp_rank", "pp_rank", "moe_ep_rank", "pid")
"""Labels whose values repeat one quantity per rank (counted once, lowest rank wins)."""


class ExpositionError(ValueError):
    """The text is not a usable Prometheus exposition; the message says why in a few words."""


def parse_exposition(
    text: str,
    max_series: int = DEFAULT_MAX_SERIES,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    select: FamilySelection = EVERYTHING,
) -> dict[str, Metric]:
    """Parse ``text`` to ``{family name: Metric}``, keeping the families ``select`` keeps.

    Family names are as prometheus_client parses them: counters lose ``_total``
    (``vllm:prompt_tokens``), histograms keep their full name (``vllm:iteration_tokens_total``).
    The result is that of :func:`parse_exposition_reference` restricted to ``select``
    (histogram ``_bucket`` samples dropped unless ``select.buckets``); text-format bodies are
    parsed by :mod:`~rooftop.exporter.sources.selective_parser`, which builds nothing for the
    families left out, OpenMetrics bodies and bodies outside its fast grammar by the reference.
    Raises :class:`ExpositionError` on binary or malformed text, more than ``max_chars``
    characters, or more than ``max_series`` samples.
    """
    stripped = _check_body(text, max_chars)
    if not stripped.rstrip().endswith("# EOF"):
        try:
            fast = parse_selected(text, select, max_series)
        except SeriesCapError as err:
            raise ExpositionError(str(err)) from None
        if fast is not None:
            return fast
    return restrict(_reference(text, stripped, max_series), select)


def parse_exposition_reference(
    text: str, max_series: int = DEFAULT_MAX_SERIES, *, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, Metric]:
    """Every family, parsed by ``prometheus_client``'s parsers (OpenMetrics first when the body
    ends in ``# EOF``, else text format 0.0.4) and normalised: the definition
    :func:`parse_exposition` is tested against."""
    return _reference(text, _check_body(text, max_chars), max_series)


def restrict(families: Families, select: FamilySelection) -> dict[str, Metric]:
    """``families`` with samples only where ``select`` keeps them (the definition the selective
    parser is tested against): every family stays listed."""
    out: dict[str, Metric] = {}
    for name, family in families.items():
        kept = Metric(family.name, family.documentation, family.type, family.unit)
        if select.keeps(name):
            kept.samples = (
                family.samples if select.keeps_buckets(name) else labelled_samples(family)
            )
        out[name] = kept
    return out


def _check_body(text: str, max_chars: int) -> str:
    if len(text) > max_chars:
        raise ExpositionError(f"exposition is {len(text)} characters, over the {max_chars} cap")
    if "\x00" in text:
        raise ExpositionError("binary data (NUL bytes), not a text exposition")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        raise ExpositionError(
            "JSON, not a Prometheus exposition (trtllm-serve serves Prometheus text at "
            "/prometheus/metrics, its /metrics is JSON)"
        )
    if stripped[:1] == "<":
        raise ExpositionError("HTML/XML, not a Prometheus exposition (wrong URL or path?)")
    return stripped


def _reference(text: str, stripped: str, max_series: int) -> dict[str, Metric]:
    sample_lines = _count_sample_lines(text)
    if sample_lines > max_series:
        raise ExpositionError(
            f"{sample_lines} series, over the cap of {max_series} (label explosion?)"
        )
    parsed: list[Metric] | None = None
    if stripped.rstrip().endswith("# EOF"):
        try:
            parsed = _collect(openmetrics_families(text), max_series)  # type: ignore[no-untyped-call]
        except ExpositionError:
            raise
        except Exception:
            parsed = None  # not strict OpenMetrics after all: the 0.0.4 parser ignores "# EOF"
    if parsed is None:
        try:
            parsed = _collect(text_families(text), max_series)
        except ExpositionError:
            raise
        except Exception as err:
            raise ExpositionError(f"not a Prometheus text exposition: {_short(err)}") from None
    return _normalise(parsed)


def _count_sample_lines(text: str) -> int:
    count = 0
    for line in text.splitlines():
        first = line.lstrip()[:1]
        if first and first != "#":
            count += 1
    return count


def _collect(families: Iterable[Metric], max_series: int) -> list[Metric]:
    out: list[Metric] = []
    seen = 0
    for family in families:
        seen += len(family.samples)
        if seen > max_series:
            raise ExpositionError(f"more than {max_series} series (label explosion?)")
        out.append(family)
    return out


def _short(err: Exception) -> str:
    message = str(err).replace("\n", " ")
    return message if len(message) <= 120 else message[:117] + "..."


def _normalise(parsed: list[Metric]) -> dict[str, Metric]:
    by_name: dict[str, Metric] = {}
    for family in parsed:
        if family.name.endswith("_created"):
            continue
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        known = by_name.get(family.name)
        if known is None:
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            merged.samples = samples
            by_name[family.name] = merged
            continue
        known.samples.extend(samples)
        if known.type == "unknown" and family.type != "unknown":
            known.type = family.type
            known.documentation = family.documentation or known.documentation
    # "# TYPE x counter" followed by "x_total ..." parses as an empty counter plus an untyped
    # family "x_total": give the samples back to the counter.
    for name, family in list(by_name.items()):
        if family.type != "counter" or family.samples:
            continue
        stray = by_name.get(name + "_total")
        if stray is not None and stray.type == "unknown":
            family.samples = list(stray.samples)
            del by_name[name + "_total"]
    return by_name


# --------------------------------------------------------------------------- reading helpers

Families = Mapping[str, Metric]


def get_family(families: Families, *names: str) -> Metric | None:
    """The first family present under any of ``names`` (each tried in all its spellings),
    preferring one with samples over an empty declaration of the same quantity."""
    empty: Metric | None = None
    for name in names:
        for candidate in name_variants(name):
            family = families.get(candidate)
            if family is None:
                continue
            if has_samples(family):
                return family
            empty = empty or family
    return empty


def _matches(sample: Sample, where: Mapping[str, str] | None) -> bool:
    if not where:
        return True
    return all(sample.labels.get(key) == value for key, value in where.items())


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer of over 308 digits is no finite float
        return None
    return number if math.isfinite(number) else None


def _finite_sum(values: Iterable[float]) -> float | None:
    """Exact sum of finite values; ``None`` when it overflows (1e308 + 1e308 is no count)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return None


def _value_samples(family: Metric, suffix: str) -> list[Sample]:
    """Samples holding the family's value: ``name`` (gauge/untyped), ``name_total`` (counter),
    or ``name`` + ``suffix`` (``_sum``/``_count`` of a histogram or summary)."""
    if suffix:
        wanted: tuple[str, ...] = (family.name + suffix,)
    else:
        wanted = (family.name, family.name + "_total")
    return [s for s in _samples_besides_buckets(family, suffix) if s.name in wanted]


def has_samples(family: Metric) -> bool:
    """Whether ``family`` holds any sample (a deferred histogram's bucket lines unbuilt)."""
    if isinstance(family, DeferredBuckets) and family.deferred:
        return True  # deferred only when it holds bucket lines
    return bool(family.samples)


def _samples_besides_buckets(family: Metric, suffix: str = "") -> list[Sample]:
    """``family.samples``, without building a histogram's deferred bucket lines when the
    samples wanted are not buckets."""
    if isinstance(family, DeferredBuckets) and family.deferred and suffix != "_bucket":
        return family.plain_samples()
    return family.samples


_SeriesKey = tuple[tuple[str, str], ...]


def _collapse(
    samples: list[Sample], replica_labels: tuple[str, ...]
) -> list[tuple[dict[str, str], float]]:
    """One value per series after dropping replica labels (lowest replica label values win)."""
    chosen: dict[_SeriesKey, tuple[tuple[tuple[int, str], ...], dict[str, str], float]] = {}
    for sample in samples:
        value: float | None = sample.value
        if value.__class__ is not float:
            value = _finite(value)
        elif not math.isfinite(value):
            continue
        if value is None:
            continue
        labels = sample.labels
        key, rank = series_key(labels, replica_labels)
        known = chosen.get(key)
        if known is None or rank < known[0]:
            chosen[key] = (rank, labels, value)
    return [(dict(labels), value) for _, labels, value in chosen.values()]


def _rank_key(rank: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((int(v), "") if v.isdigit() else (1 << 62, v) for v in rank)


_Rank = tuple[tuple[int, str], ...]
_SERIES_KEYS: dict[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], tuple[_SeriesKey, _Rank]]
_SERIES_KEYS = {}
"""(labels as written, replica labels) -> :func:`series_key`: an engine's series keep their
labels from poll to poll (bounded: a few hundred series per engine are read)."""
_MAX_SERIES_KEYS: Final = 8192


def series_key(
    labels: Mapping[str, str], replica_labels: tuple[str, ...]
) -> tuple[_SeriesKey, _Rank]:
    """A series' key: its labels sorted, less ``replica_labels`` (all of them with ``()``);
    and its replica rank (:func:`_collapse` keeps the lowest)."""
    items = tuple(labels.items())
    memo = (items, replica_labels)
    known = _SERIES_KEYS.get(memo)
    if known is None:
        key = tuple(sorted([item for item in items if item[0] not in replica_labels]))
        known = (key, _rank_key(tuple(labels.get(k, "") for k in replica_labels)))
        if len(_SERIES_KEYS) >= _MAX_SERIES_KEYS:
            _SERIES_KEYS.clear()
        _SERIES_KEYS[memo] = known
    return known


def series_values(
    family: Metric | None,
    suffix: str = "",
    where: Mapping[str, str] | None = None,
    replica_labels: tuple[str, ...] = REPLICA_LABELS,
) -> list[tuple[dict[str, str], float]]:
    """``(labels, value)`` of each matching finite series, replicas collapsed."""
    if family is None:
        return []
    samples = [s for s in _value_samples(family, suffix) if _matches(s, where)]
    return _collapse(samples, replica_labels)


def sum_values(
    family: Metric | None,
    suffix: str = "",
    where: Mapping[str, str] | None = None,
    replica_labels: tuple[str, ...] = REPLICA_LABELS,
) -> float | None:
    """Sum of a family's value over its series (data-parallel engines, finished reasons ...).

    ``suffix`` picks ``_sum``/``_count`` of histograms and summaries. ``None`` when nothing
    matches (absent stays absent, never 0).
    """
    values = series_values(family, suffix, where, replica_labels)
    if not values:
        return None
    return _finite_sum(value for _, value in values)


def mean_values(
    family: Metric | None,
    where: Mapping[str, str] | None = None,
    replica_labels: tuple[str, ...] = REPLICA_LABELS,
) -> float | None:
    """Mean of a gauge over its series (a usage ratio over data-parallel engines)."""
    values = series_values(family, "", where, replica_labels)
    if not values:
        return None
    total = _finite_sum(value for _, value in values)
    return None if total is None else total / len(values)


def first_value(family: Metric | None, where: Mapping[str, str] | None = None) -> float | None:
    """The first finite value of a family: for constants repeated on every series (page size)."""
    values = series_values(family, "", where, ())
    return values[0][1] if values else None


def sum_count(
    family: Metric | None,
    where: Mapping[str, str] | None = None,
    replica_labels: tuple[str, ...] = REPLICA_LABELS,
) -> tuple[float, float] | None:
    """``(sum, count)`` of a histogram or summary over its series; ``None`` unless both exist."""
    if family is None or family.type not in ("histogram", "summary", "gaugehistogram", "unknown"):
        return None
    total = sum_values(family, "_sum", where, replica_labels)
    count = sum_values(family, "_count", where, replica_labels)
    if total is None or count is None:
        return None
    return (total, count)


def histogram_buckets(
    family: Metric | None,
    where: Mapping[str, str] | None = None,
    replica_labels: tuple[str, ...] = REPLICA_LABELS,
) -> tuple[tuple[float, float], ...] | None:
    """Cumulative ``(le, count)`` buckets of a histogram summed over its series, ``le``
    ascending with ``+Inf`` last; ``None`` unless it is a histogram with a ``+Inf`` bucket.

    Series with different bucket layouts are summed on the union of bounds, each series
    contributing its count at the largest bound not above ``le`` (as if it had that bucket).
    """
    if family is None or family.type not in ("histogram", "gaugehistogram", "unknown"):
        return None
    if isinstance(family, DeferredBuckets) and family.deferred and not (where and "le" in where):
        planned, buckets = _planned_buckets(family, where, replica_labels)
        if planned:
            return buckets
        per_series: dict[_SeriesKey, dict[float, float]] = _deferred_bucket_series(
            family, where, replica_labels
        )
    else:
        per_series = {}
        for labels, value in series_values(family, "_bucket", where, replica_labels):
            try:
                bound = float(labels.pop("le"))
            except (KeyError, ValueError):
                continue
            if math.isnan(bound):
                continue
            key = tuple(sorted((k, v) for k, v in labels.items() if k not in replica_labels))
            per_series.setdefault(key, {})[bound] = value
    terms = _bucket_terms(per_series)
    if terms is None:
        return None
    return tuple((bound, _added(counts)) for bound, counts in terms)


_Term = TypeVar("_Term")


def _bucket_terms(
    per_series: Mapping[_SeriesKey, Mapping[float, _Term]],
) -> list[tuple[float, list[_Term]]] | None:
    """Each bound of the union of the series' bounds, with what it sums: every series' count
    at the largest of its own bounds not above it, in series order (a series with no bound
    that low adds nothing). ``None`` unless a series has a ``+Inf`` bucket. Counts are values
    or, for a bucket plan, the rows holding them."""
    series = [s for s in per_series.values() if math.inf in s]
    if not series:
        return None
    bounds = sorted({bound for buckets in series for bound in buckets})
    terms: list[list[_Term]] = [[] for _ in bounds]
    for buckets in series:
        own = sorted(buckets)
        at = 0
        for index, bound in enumerate(bounds):
            while at < len(own) and own[at] <= bound:
                at += 1
            if at:
                terms[index].append(buckets[own[at - 1]])
    return list(zip(bounds, terms, strict=True))


def _added(counts: Iterable[float]) -> float:
    """``0.0 + c1 + c2 + ...`` in order (``sum`` may compensate; the reference adds)."""
    total = 0.0
    for count in counts:
        total += count
    return total


@dataclass(frozen=True)
class _BucketPlan:
    """:func:`histogram_buckets` of one bucket layout, as rows: ``(bound, rows summed)``, the
    rows numbered in the order of the bucket lines (``None``: no ``+Inf`` bucket)."""

    rows: int
    terms: tuple[tuple[float, tuple[int, ...]], ...] | None


_BUCKET_PLANS: dict[tuple[object, ...], _BucketPlan | None] = {}
"""(family, run layouts, where, replica labels) -> its plan, or ``None`` where none can be made
(a bounded cache: a few histograms per engine)."""
_MAX_BUCKET_PLANS: Final = 256


def _planned_buckets(
    family: DeferredBuckets, where: Mapping[str, str] | None, replica_labels: tuple[str, ...]
) -> tuple[bool, tuple[tuple[float, float], ...] | None]:
    """``(True, buckets)`` read with the plan of the bucket lines' layout, made on the first
    poll that has it: the labels decide which line counts where, so a later poll with the same
    layout only reads its values. ``(False, None)`` when the lines are not all in validated
    runs, or a value is not finite (the line-by-line reading then decides)."""
    runs = family.bucket_runs()
    if not runs:
        return False, None
    key = (
        family.name,
        tuple(run.layout for run in runs),
        tuple(sorted(where.items())) if where else (),
        replica_labels,
    )
    if key in _BUCKET_PLANS:
        plan = _BUCKET_PLANS[key]
    else:
        plan = _bucket_plan(family, where, replica_labels)
        if len(_BUCKET_PLANS) >= _MAX_BUCKET_PLANS:
            _BUCKET_PLANS.clear()
        _BUCKET_PLANS[key] = plan
    if plan is None:
        return False, None
    values = [float(text) for run in runs for text in run.values]
    if len(values) != plan.rows or not all(map(math.isfinite, values)):
        return False, None
    if plan.terms is None:
        return True, None
    return True, tuple((bound, _added(values[row] for row in rows)) for bound, rows in plan.terms)


def _bucket_plan(
    family: DeferredBuckets, where: Mapping[str, str] | None, replica_labels: tuple[str, ...]
) -> _BucketPlan | None:
    """The plan of ``family``'s bucket lines: :func:`histogram_buckets`' choices made on row
    numbers instead of values, as if every value were finite (a poll with one that is not is
    read line by line)."""
    rows = sum(1 for _ in family.bucket_rows())
    runs = family.bucket_runs() or []
    if rows != sum(len(run.values) for run in runs):
        return None
    terms = _bucket_terms(_deferred_bucket_series(family, where, replica_labels, rows=True))
    if terms is None:
        return _BucketPlan(rows, None)
    return _BucketPlan(rows, tuple((bound, tuple(counts)) for bound, counts in terms))


@overload
def _deferred_bucket_series(
    family: DeferredBuckets,
    where: Mapping[str, str] | None,
    replica_labels: tuple[str, ...],
    rows: Literal[False] = False,
) -> dict[_SeriesKey, dict[float, float]]: ...


@overload
def _deferred_bucket_series(
    family: DeferredBuckets,
    where: Mapping[str, str] | None,
    replica_labels: tuple[str, ...],
    rows: Literal[True],
) -> dict[_SeriesKey, dict[float, int]]: ...


def _deferred_bucket_series(
    family: DeferredBuckets,
    where: Mapping[str, str] | None,
    replica_labels: tuple[str, ...],
    rows: bool = False,
) -> dict[_SeriesKey, dict[float, float]] | dict[_SeriesKey, dict[float, int]]:
    """What :func:`histogram_buckets` computes from ``series_values(family, "_bucket", ...)``,
    read from the bucket lines' text: labels are parsed once per series (the label text before
    ``le``, the same on a series' consecutive lines), not once per line. Same choices as
    :func:`_collapse`: finite values only, the lowest replica rank per series and bound, the
    first line on a tie; series and bounds in the order they first hold a value.

    ``rows``: each bucket's line number instead of its value, every value taken as finite
    (what a bucket plan records)."""
    per_key: dict[_SeriesKey, dict[str, tuple[tuple[tuple[int, str], ...], float]]] = {}
    is_bound: dict[str, bool] = {}
    last_text: str | None = None
    series: tuple[_SeriesKey, tuple[tuple[int, str], ...]] | None = None
    for row, (label_text, bound_text, value_text) in enumerate(family.bucket_rows()):
        if bound_text is None:  # le not last, or escapes: every label parsed on this line
            labels = parse_label_text(label_text)
            bound_text = labels.pop("le", None)
            if bound_text is None:
                continue
            series = _bucket_series(labels, where, replica_labels)
            last_text = None
        elif label_text != last_text:
            series = _bucket_series(parse_label_text(label_text), where, replica_labels)
            last_text = label_text
        if series is None:
            continue
        if rows:
            value: float = row
        else:
            value = float(value_text)  # what _finite(parse_number(value_text)) gives, or not
            if not math.isfinite(value):
                continue
        valid = is_bound.get(bound_text)
        if valid is None:
            valid = is_bound[bound_text] = _is_bound(bound_text)
        if not valid:
            continue
        key, rank = series
        slots = per_key.get(key)
        if slots is None:
            slots = per_key[key] = {}
        known = slots.get(bound_text)
        if known is None or rank < known[0]:
            slots[bound_text] = (rank, value)
    return {
        key: {float(bound): value for bound, (_, value) in slots.items()}
        for key, slots in per_key.items()
    }


def _is_bound(text: str) -> bool:
    """Whether an ``le`` value reads as a bucket bound: a number, not NaN."""
    try:
        return not math.isnan(float(text))
    except ValueError:
        return False


def _bucket_series(
    labels: dict[str, str], where: Mapping[str, str] | None, replica_labels: tuple[str, ...]
) -> tuple[_SeriesKey, tuple[tuple[int, str], ...]] | None:
    """(series key without replica labels, replica rank) of a bucket line's labels less ``le``;
    ``None`` when ``where`` excludes it."""
    if where and any(labels.get(k) != v for k, v in where.items()):
        return None
    key = tuple(sorted((k, v) for k, v in labels.items() if k not in replica_labels))
    return key, _rank_key(tuple(labels.get(k, "") for k in replica_labels))


def labelled_samples(family: Metric) -> list[Sample]:
    """The samples labels are read from: all but histogram ``_bucket`` ones, or the buckets
    where the family has nothing else (an excerpt). A parse that skips bucket lines
    (``FamilySelection.buckets`` off) keeps exactly these, so it reads the same labels."""
    bucket = family.name + "_bucket"
    others = [s for s in _samples_besides_buckets(family) if s.name != bucket]
    return others or list(family.samples)


def label_values(family: Metric | None, label: str) -> list[str]:
    """Distinct non-empty values of ``label`` in a family, in order of first appearance
    (bucket samples aside: see :func:`labelled_samples`)."""
    if family is None:
        return []
    seen: list[str] = []
    for sample in labelled_samples(family):
        value = sample.labels.get(label)
        if value and value not in seen:
            seen.append(value)
    return seen


def first_label(families: Families, names: Iterable[str], labels: Iterable[str]) -> str | None:
    """The first non-empty value of any of ``labels`` on the first of ``names`` that has one."""
    label_list = tuple(labels)
    for name in names:
        family = get_family(families, name)
        for label in label_list:
            values = label_values(family, label)
            if values:
                return values[0]
    return None


def preferred_label(
    families: Families, names: Sequence[str], labels_by_preference: Sequence[str]
) -> str | None:
    """Like :func:`first_label`, but a preferred label anywhere beats a later one anywhere:
    ``model_name`` on any family wins over ``model`` on the first."""
    for label in labels_by_preference:
        value = first_label(families, names, (label,))
        if value is not None:
            return value
    return None


def names_with_prefix(families: Families, prefix: str) -> list[str]:
    """Family names starting with ``prefix`` (``vllm:``) or its underscore spelling (``vllm_``)."""
    spellings = (prefix, prefix.replace(":", "_")) if prefix.endswith(":") else (prefix,)
    return [name for name in families if name.startswith(spellings)]


def metric_prefixes(families: Families) -> list[str]:
    """Distinct name prefixes (``vllm:``, ``tgi_``, ``python_``), for "what did it look like"."""
    prefixes: list[str] = []
    for name in families:
        if ":" in name:
            prefix = name.split(":", 1)[0] + ":"
        elif "_" in name:
            prefix = name.split("_", 1)[0] + "_"
        else:
            prefix = name
        if prefix not in prefixes:
            prefixes.append(prefix)
    return sorted(prefixes)


def present_families(families: Families, names: Sequence[str]) -> list[str]:
    """Those of ``names`` the exposition has, in the order given."""
    return [name for name in names if get_family(families, name) is not None]


def recognise_namespaced(
    families: Families, claiming: Sequence[str], namespace: str, display_name: str
) -> str | None:
    """The recognition reason for an engine whose metrics live under ``namespace`` (``vllm:``).

    Any of its ``claiming`` families decides; failing those, any family in its namespace does,
    since a colon prefix is that engine's own even in a partial exposition.
    """
    found = present_families(families, claiming)
    if found:
        return f"{display_name} families present: " + ", ".join(found)
    others = names_with_prefix(families, namespace)
    if others:
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        return f"{len(others)} {namespace}* families present: {shown}"
    return None
