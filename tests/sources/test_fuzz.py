"""Property tests: hostile or broken expositions never crash the parser or an engine adapter,
and rooftop's selective parser gives exactly what prometheus_client's parser gives.

Structured generation: families named from every engine's own vocabulary (the metric names in
the recorded fixtures and in the adapters' source), the labels engines use, values including
NaN, ±Inf, negative and huge numbers, every metric type and sample suffix, and garbage lines
mixed in. Contract: ``parse_exposition`` raises nothing but ``ExpositionError``;
``detect_engine`` nothing but ``UnrecognisedExpositionError``; an adapter's ``recognise`` and
``extract`` raise nothing at all, whatever the extras' JSON holds.

Differential: ``parse_exposition`` (the selective parser, falling back to the reference for
bodies outside its fast grammar) against ``parse_exposition_reference`` (prometheus_client's
parser + rooftop's merge): both reject, or both give the same families, sample for sample
(values compared by ``repr``, so ``int`` vs ``float`` and NaN count). With a selection, the
result equals the reference restricted to it; each adapter reads the same from its own
selection as from the whole body.

About 18 000 generated inputs in all (see ``EXAMPLES``), each run through every adapter.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import random
import re
from collections.abc import Mapping
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rooftop.exporter.sources import engines as engines_package
from rooftop.exporter.sources.engines import (
    ADAPTERS,
    GenericAdapter,
    GenericConfig,
    UnrecognisedExpositionError,
    detect_engine,
)
from rooftop.exporter.sources.engines.base import EngineAdapter, EngineReading
from rooftop.exporter.sources.exposition import (
    ExpositionError,
    histogram_buckets,
    label_values,
    parse_exposition,
    parse_exposition_reference,
    restrict,
)
from rooftop.exporter.sources.selective_parser import (
    EVERYTHING,
    NAMES_ONLY,
    DeferredBuckets,
    FamilySelection,
    parse_selected,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "engines"
EXAMPLES = {
    "structured": 5000,
    "extract": 5000,
    "raw": 2000,
    "selection": 3000,
    "reads": 3000,
    "buckets": 1500,
}


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _vocabulary() -> list[str]:
    """Metric names from every recorded engine exposition and every adapter's source."""
    names: set[str] = set()
    for path in sorted(FIXTURES.glob("*.prom")):
        for line in path.read_text().splitlines():
            token = re.split(r"[{\s]", line.strip(), maxsplit=1)[0]
            if token and not token.startswith("#") and _NAME.match(token):
                names.add(token)
    for module in inspect.getmembers(engines_package, inspect.ismodule):
        source = inspect.getsource(module[1])
        for literal in re.findall(r'"([a-zA-Z_:][a-zA-Z0-9_:]{2,})"', source):
            if ":" in literal or "_" in literal:
                names.add(literal)
    return sorted(names)


VOCABULARY = _vocabulary()
LABEL_NAMES = [
    "model_name",
    "model",
    "engine",
    "dp_rank",
    "tp_rank",
    "pp_rank",
    "pid",
    "le",
    "quantile",
    "finished_reason",
    "cache_dtype",
    "block_size",
    "num_gpu_blocks",
    "gpu",
    "worker_id",
    "dynamo_component",
    "version",
]
SUFFIXES = ["", "_total", "_bucket", "_sum", "_count", "_created", "_info", "_gsum", "_gcount"]
TYPES = ["counter", "gauge", "histogram", "summary", "untyped", "info", "stateset", "bogus"]

SPECIAL_NUMBERS = ["NaN", "+Inf", "-Inf", "Inf", "-0", "0", "1e308", "-1e308", "5e-324", "1e999"]
LABEL_VALUES = [
    "0",
    "1",
    "+Inf",
    "0.5",
    "auto",
    "fp8",
    "16",
    "meta-llama/Llama-3.1-8B",
    "http://127.0.0.1:1/x",
    "../../etc/passwd",
    "",
    "ü\u2028",
    'quo\\"te',
    "back\\\\slash",
    "new\\nline",
]
GARBAGE = [
    "{",
    "}",
    'x{a="b"',
    "# TYPE",
    "# TYPE x",
    "# HELP",
    "#EOF",
    "# EOF",
    "x 1 2 3",
    "x{,} 1",
    'x{a="1",a="2"} 1',
    "1 2",
    ":: 1",
    "x{le=1} 1",
    "\t \t",
    'x{a="b"} NaN extra',
]


def _number(rng: random.Random, hostile: bool) -> str:
    roll = rng.random()
    if roll < 0.25:
        return rng.choice(SPECIAL_NUMBERS)
    if roll < 0.5:
        return str(rng.randint(-(10**20), 10**20))
    if roll < 0.97 or not hostile:
        return repr(rng.uniform(-1e6, 1e12))
    return rng.choice(["one", "0x10", "1_000", "--1", ""])


def _labels(rng: random.Random, suffix: str) -> str:
    keys = rng.sample(LABEL_NAMES, rng.randint(0, 4))
    if suffix == "_bucket" and rng.random() < 0.8:
        keys.append("le")
    parts = [f'{key}="{rng.choice(LABEL_VALUES)}"' for key in dict.fromkeys(keys)]
    if not parts and rng.random() < 0.5:
        return ""
    return "{" + ",".join(parts) + "}"


def build_exposition(rng: random.Random, garbage: list[str]) -> str:
    """A random exposition in the engines' vocabulary. Half are hostile: invalid types, numbers
    and timestamps, stray lines and the ``garbage`` lines spliced in; the rest are well formed
    (odd values and label sets, but parseable), so the adapters get real work."""
    hostile = rng.random() < 0.5
    types = TYPES if hostile else TYPES[:5]
    stamps = ["", "", "", " 1700000000000", " -5", " x"] if hostile else ["", " 1700000000000"]
    lines: list[str] = []
    for _ in range(rng.randint(0, 12)):
        family = rng.choice(VOCABULARY) if rng.random() < 0.9 else rng.choice(LABEL_NAMES)
        base = family.removesuffix("_total")
        if rng.random() < 0.5:
            lines.append(f"# HELP {base} {rng.choice(LABEL_VALUES)}")
        if rng.random() < 0.8:
            lines.append(f"# TYPE {base} {rng.choice(types)}")
        for _ in range(rng.randint(0, 8)):
            suffix = rng.choice(SUFFIXES)
            stamp = rng.choice(stamps)
            lines.append(f"{base}{suffix}{_labels(rng, suffix)} {_number(rng, hostile)}{stamp}")
        if hostile and rng.random() < 0.1:
            lines.append(rng.choice(GARBAGE))
    if hostile:
        for line in garbage:
            lines.insert(rng.randint(0, len(lines)), line)
    ending = rng.choice(["\n", "", "\n# EOF\n", "\r\n", "\n\n"] if hostile else ["\n"])
    return "\n".join(lines) + ending


BOUNDS = ["0.005", "0.5", "1", "1.0", "2.5e1", "-1", "+Inf", "+Inf", "Inf", "1e999", "NaN", "x"]
SERIES_LABELS = ["model_name", "engine", "dp_rank", "finished_reason", "tp_rank"]


def build_histograms(rng: random.Random) -> str:
    """Well-formed histograms with the corners the bucket reader must get right: ``le`` first,
    last or between, escaped label values, replica labels, repeated series, odd bounds and
    values, series without ``+Inf``, ``_sum``/``_count`` lines between the buckets."""
    lines: list[str] = []
    for name in rng.sample([n for n in VOCABULARY if not n.endswith("_total")], rng.randint(1, 3)):
        lines.append(f"# TYPE {name} {rng.choice(['histogram'] * 6 + ['gauge', 'untyped'])}")
        for _ in range(rng.randint(1, 4)):
            keys = rng.sample(SERIES_LABELS, rng.randint(0, 3))
            labels = [f'{key}="{rng.choice(LABEL_VALUES)}"' for key in keys]
            bounds = rng.sample(BOUNDS, rng.randint(1, 6))
            for _ in range(rng.choice([1, 1, 1, 2])):  # a repeated series now and then
                for bound in bounds:
                    parts = list(labels)
                    parts.insert(rng.randint(0, len(parts)), f'le="{bound}"')
                    lines.append(f"{name}_bucket{{{','.join(parts)}}} {_number(rng, False)}")
                    if rng.random() < 0.1:
                        lines.append(f"{name}_sum{{{','.join(labels)}}} {_number(rng, False)}")
            if rng.random() < 0.5:
                lines.append(f"{name}_count{{{','.join(labels)}}} {_number(rng, False)}")
    return "\n".join(lines) + "\n"


expositions = st.builds(
    build_exposition,
    st.integers(min_value=0, max_value=2**64).map(random.Random),
    st.lists(st.one_of(st.sampled_from(GARBAGE), st.text(max_size=30)), max_size=2),
)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "n_ctx",
                        "default_generation_settings",
                        "total_slots",
                        "is_processing",
                        "model_id",
                        "model_dtype",
                        "max_total_tokens",
                        "model_path",
                        "id",
                    ]
                ),
                st.text(max_size=6),
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=12,
)

GENERIC = GenericAdapter(
    GenericConfig(
        generation_tokens="vllm:generation_tokens",
        prompt_tokens="vllm:prompt_tokens_total",
        requests_running="vllm:num_requests_running",
        kv_usage_ratio="vllm:kv_cache_usage_perc",
        label_filters=(("engine", "0"),),
    )
)
ALL_ADAPTERS: tuple[EngineAdapter, ...] = (*ADAPTERS, GENERIC)


def _parse(text: str) -> dict[str, object] | None:
    try:
        return dict(parse_exposition(text))
    except ExpositionError:
        return None


Canonical = dict[str, tuple[object, ...]]


def canonical(families: object) -> Canonical:
    """Families as comparable values: every field of every family and sample, values by repr."""
    assert isinstance(families, dict)
    return {
        name: (
            family.name,
            family.documentation,
            family.type,
            family.unit,
            [
                (s.name, s.labels, repr(s.value), repr(s.timestamp), s.exemplar)
                for s in family.samples
            ],
        )
        for name, family in families.items()
    }


def outcome(parse: object, text: str, **kwargs: object) -> Canonical | None:
    """The canonical families, or ``None`` when the parser rejects the text."""
    assert callable(parse)
    try:
        return canonical(parse(text, **kwargs))
    except ExpositionError:
        return None


SELECTIONS: tuple[FamilySelection, ...] = (
    EVERYTHING,
    NAMES_ONLY,
    FamilySelection(everything=True),  # every family, buckets skipped
    *(adapter.reads for adapter in ALL_ADAPTERS),
    FamilySelection(names=("vllm:prompt_tokens_total", "tgi_queue_size", "num_requests_running")),
)


def test_vocabulary_covers_every_adapter_family() -> None:
    prefixes = {name.split(":", 1)[0] for name in VOCABULARY if ":" in name}
    assert {"vllm", "sglang"} <= prefixes
    assert any(name.startswith("tgi_") for name in VOCABULARY)
    assert any(name.startswith("llamacpp:") for name in VOCABULARY)
    assert any(name.startswith("lmdeploy") for name in VOCABULARY)
    assert any(name.startswith("dynamo_") for name in VOCABULARY)
    assert any(name.startswith("trtllm") or name.startswith("nv_trt") for name in VOCABULARY)
    assert len(VOCABULARY) > 200


@fuzz(EXAMPLES["structured"])
@given(text=expositions)
def test_parse_raises_only_exposition_error(text: str) -> None:
    families = _parse(text)
    if families is not None:
        assert all(isinstance(name, str) for name in families)


@fuzz(EXAMPLES["raw"])
@given(
    text=st.one_of(
        st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
    )
)
def test_parse_of_arbitrary_text_raises_only_exposition_error(text: str) -> None:
    _parse(text)


@fuzz(EXAMPLES["extract"])
@given(
    text=expositions,
    extras=st.dictionaries(st.sampled_from(["props", "slots", "info"]), json_values, max_size=3),
)
def test_every_adapter_survives_any_parsed_exposition(text: str, extras: dict[str, object]) -> None:
    families = _parse(text)
    if families is None:
        return
    with contextlib.suppress(UnrecognisedExpositionError):
        detect_engine(families)  # type: ignore[arg-type]
    for adapter in ALL_ADAPTERS:
        adapter.recognise(families)  # type: ignore[arg-type]
        reading = adapter.extract(families, extras)  # type: ignore[arg-type]
        assert isinstance(reading, EngineReading)
        for field in ("prompt_tokens_total", "generation_tokens_total", "kv_usage_ratio"):
            value = getattr(reading, field)
            assert value is None or math.isfinite(value), f"{adapter.family}.{field} = {value}"


@fuzz(EXAMPLES["structured"])
@given(text=expositions)
def test_parse_matches_prometheus_client(text: str) -> None:
    assert outcome(parse_exposition, text) == outcome(parse_exposition_reference, text)


@fuzz(EXAMPLES["raw"])
@given(
    text=st.one_of(
        st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
    )
)
def test_parse_of_arbitrary_text_matches_prometheus_client(text: str) -> None:
    assert outcome(parse_exposition, text) == outcome(parse_exposition_reference, text)


@fuzz(EXAMPLES["selection"])
@given(text=expositions, select=st.sampled_from(SELECTIONS))
def test_selection_is_the_reference_restricted(text: str, select: FamilySelection) -> None:
    try:
        expected: Canonical | None = canonical(restrict(parse_exposition_reference(text), select))
    except ExpositionError:
        expected = None
    assert outcome(parse_exposition, text, select=select) == expected


@fuzz(EXAMPLES["reads"])
@given(text=expositions)
def test_every_adapter_reads_the_same_from_its_selection(text: str) -> None:
    whole = _parse(text)
    if whole is None:
        return
    names = parse_exposition(text, select=NAMES_ONLY)
    for adapter in ALL_ADAPTERS:
        selected = parse_exposition(text, select=adapter.reads)
        assert adapter.recognise(selected) == adapter.recognise(whole)  # type: ignore[arg-type]
        assert adapter.recognise(names) == adapter.recognise(whole)  # type: ignore[arg-type]
        assert adapter.extract(selected) == adapter.extract(whole)  # type: ignore[arg-type]


def deferred(families: Mapping[str, object]) -> FamilySelection:
    """Every histogram's buckets read as the adapters' latency histograms are: kept as text
    (every family of the body by name: a generated body may also name a histogram after a
    label or a garbage token, not only after the vocabulary)."""
    return FamilySelection(everything=True, bucket_names=(*VOCABULARY, *families))


@fuzz(EXAMPLES["buckets"])
@given(
    text=st.one_of(
        expositions,
        st.builds(build_histograms, st.integers(min_value=0, max_value=2**64).map(random.Random)),
    )
)
def test_buckets_read_from_text_equal_the_reference(text: str) -> None:
    """``histogram_buckets`` over bucket lines kept as text (``DeferredBuckets``) gives what it
    gives over the reference parser's samples, for every filter and replica rule, and the
    family's ``samples`` built on demand are the reference's."""
    whole = _parse(text)
    if whole is None:
        return
    selected = parse_exposition(text, select=deferred(whole))
    for name, family in whole.items():
        kept = selected[name]
        wheres: list[dict[str, str] | None] = [None]
        wheres += [{"model_name": v} for v in label_values(family, "model_name")[:2]]
        for where in wheres:
            for replicas in ((), ("engine", "dp_rank")):
                got = histogram_buckets(kept, where, replicas)
                assert got == histogram_buckets(family, where, replicas), (name, where)
        if isinstance(kept, DeferredBuckets):
            assert canonical({name: kept}) == canonical({name: family})
            assert not kept.deferred


_SAMPLE_VALUE = re.compile(r"^([^#\n][^\n]*) [^ \n]+$", re.MULTILINE)


@fuzz(EXAMPLES["buckets"])
@given(seed=st.integers(min_value=0, max_value=2**64))
def test_bucket_plans_read_a_later_polls_values_as_the_reference(seed: int) -> None:
    """A poll whose bucket lines have the layout of an earlier one (same names, labels and
    order; new values, now and then a NaN or an infinity) is read with the earlier poll's
    bucket plan: what it reads equals the reference on the new values."""
    rng = random.Random(seed)
    first = build_histograms(rng)

    def new_value(match: re.Match[str]) -> str:
        value = rng.choice(SPECIAL_NUMBERS) if rng.random() < 0.05 else repr(rng.uniform(0, 1e9))
        return f"{match.group(1)} {value}"

    for text in (first, _SAMPLE_VALUE.sub(new_value, first)):
        whole = _parse(text)
        if whole is None:
            return
        selected = parse_exposition(text, select=deferred(whole))
        for name, family in whole.items():
            for replicas in ((), ("engine", "dp_rank")):
                got = histogram_buckets(selected[name], None, replicas)
                assert got == histogram_buckets(family, None, replicas), name


def test_well_formed_expositions_take_the_fast_path() -> None:
    """The differential tests above compare the fast path, not the fallback with itself: most
    well-formed generated bodies stay in the fast grammar."""
    fast = total = 0
    for seed in range(400):
        text = build_exposition(random.Random(seed), [])
        if outcome(parse_exposition_reference, text) is None:
            continue
        total += 1
        fast += parse_selected(text, EVERYTHING, 50_000) is not None
    assert total > 100
    assert fast / total > 0.9
