"""The selective parser against prometheus_client's parser on every recorded capture, and the
format corners where a skipped line still decides what the kept ones mean."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from rooftop.exporter.sources.counter_series import CounterContinuity, identity_of
from rooftop.exporter.sources.engine import EngineSource
from rooftop.exporter.sources.engines import ADAPTERS, EngineAdapter, detect_engine
from rooftop.exporter.sources.exposition import (
    ExpositionError,
    label_values,
    parse_exposition,
    parse_exposition_reference,
    restrict,
    sum_count,
)
from rooftop.exporter.sources.selective_parser import (
    EVERYTHING,
    NAMES_ONLY,
    DeferredBuckets,
    FamilySelection,
    parse_selected,
)
from tests.sources.test_fuzz import canonical

FIXTURES = sorted((Path(__file__).parents[1] / "fixtures" / "engines").glob("*.prom"))
SELECTIONS = (EVERYTHING, NAMES_ONLY, *(a.reads for a in ADAPTERS))
DEFERRED_BUCKETS = FamilySelection(everything=True, bucket_names=("lat",))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_capture_takes_the_fast_path_and_matches_prometheus_client(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    reference = parse_exposition_reference(text)
    for select in SELECTIONS:
        fast = parse_selected(text, select, 50_000)
        assert fast is not None, f"{path.name} left the fast grammar"
        assert canonical(fast) == canonical(restrict(reference, select))


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_the_recognised_adapter_reads_the_same_from_its_selection(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    whole = parse_exposition_reference(text)
    adapter, reason = detect_engine(whole)
    assert detect_engine(parse_exposition(text, select=NAMES_ONLY)) == (adapter, reason)
    selected = parse_exposition(text, select=adapter.reads)
    assert adapter.extract(selected) == adapter.extract(whole)
    # What it leaves out is most of the body for the big captures: histogram buckets.
    kept = sum(len(f.samples) for f in selected.values())
    assert kept <= sum(len(f.samples) for f in whole.values())


def test_engine_source_polls_with_the_adapter_selection() -> None:
    path = next(p for p in FIXTURES if p.name.startswith("vllm-v1-dynamo"))
    text = path.read_text(encoding="utf-8")
    source = EngineSource("e", "http://127.0.0.1:1/metrics", fetch=lambda *_: text)
    first, second = source.poll(), source.poll()
    whole = parse_exposition_reference(text)
    adapter, _ = detect_engine(whole)
    assert source.adapter is adapter
    assert first == second == adapter.extract(whole)


INTERLEAVED = """\
# TYPE h histogram
h_bucket{le="+Inf"} 3
h_sum 1.5
other_metric 2
h_count 3
# TYPE c counter
c_total 7
# TYPE g gauge
g{model_name="a"} 1
g{model_name="b"} 2
"""


@pytest.mark.parametrize("select", (*SELECTIONS, FamilySelection(names=("h", "c", "g"))))
def test_a_skipped_line_still_ends_a_family(select: FamilySelection) -> None:
    """``other_metric`` is skipped, yet it closes ``h``: ``h_count`` after it is a family of its
    own, as prometheus_client reads it."""
    reference = parse_exposition_reference(INTERLEAVED)
    assert "h_count" in reference
    parsed = parse_selected(INTERLEAVED, select, 100)
    assert parsed is not None
    assert canonical(parsed) == canonical(restrict(reference, select))


def test_without_buckets_sum_and_count_remain() -> None:
    families = parse_exposition(INTERLEAVED, select=FamilySelection(names=("h",)))
    assert [s.name for s in families["h"].samples] == ["h_sum"]
    assert sum_count(families["h"]) is None  # h_count is not h's (see above)


def test_a_histogram_of_buckets_only_keeps_them_for_its_labels() -> None:
    """An excerpt with bucket lines only: the model name is on them alone."""
    text = (
        "# TYPE vllm:request_prompt_tokens histogram\n"
        'vllm:request_prompt_tokens_bucket{le="1.0",model_name="m"} 0.0\n'
        'vllm:request_prompt_tokens_bucket{le="+Inf",model_name="m"} 2.0\n'
    )
    families = parse_exposition(text, select=FamilySelection(prefixes=("vllm:",)))
    assert label_values(families["vllm:request_prompt_tokens"], "model_name") == ["m"]


@pytest.mark.parametrize(
    "line",
    [
        'x{a="1",a="2"} 1',  # repeated label
        'x{__reserved="1"} 1',  # reserved label name
        "x 1.2.3",  # not a number
        "x{a=1} 1",  # unquoted value
        "# TYPE x",  # TYPE without a type
        "# TYPE x bogus",  # unknown type
    ],
)
def test_a_bad_line_of_a_skipped_family_still_rejects_the_body(line: str) -> None:
    text = f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 1\n{line}\n"
    with pytest.raises(ExpositionError):
        parse_exposition_reference(text)
    with pytest.raises(ExpositionError):
        parse_exposition(text, select=FamilySelection(prefixes=("vllm:",)))


def test_series_cap_counts_lines_as_the_reference_does() -> None:
    # U+2028 inside a label value: one line for the parser, two for str.splitlines.
    text = 'x{a="\u2028y 1"} 1\nz 1\n'
    with pytest.raises(ExpositionError, match="over the cap"):
        parse_exposition_reference(text, max_series=2)
    with pytest.raises(ExpositionError, match="over the cap"):
        parse_exposition(text, max_series=2)
    assert "z" in parse_exposition(text, max_series=3)


def test_openmetrics_goes_through_the_reference_and_is_narrowed() -> None:
    text = (
        "# TYPE vllm:generation_tokens counter\n"
        'vllm:generation_tokens_total{engine="0"} 5.0\n'
        "# TYPE python_gc_objects_collected counter\n"
        "python_gc_objects_collected_total 3.0\n"
        "# EOF\n"
    )
    families = parse_exposition(text, select=FamilySelection(prefixes=("vllm:",)))
    assert list(families) == ["vllm:generation_tokens", "python_gc_objects_collected"]
    assert families["vllm:generation_tokens"].samples[0].value == 5.0
    assert families["python_gc_objects_collected"].samples == []  # listed, not read


_CALLS = re.compile(r'(?:get_family\(\s*families,|families\.get\()((?:\s*"[^"]+",?)+)')


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.family)
def test_every_family_an_adapter_names_is_in_its_selection(adapter: EngineAdapter) -> None:
    """A family read but not selected would silently read as absent: every namespaced literal
    and every name handed to ``get_family``/``families.get`` in the adapter's module is kept."""
    source = inspect.getsource(inspect.getmodule(type(adapter)))  # type: ignore[arg-type]
    names = set(re.findall(r'"([a-z]+:[a-z0-9_:]+)"', source))
    for group in _CALLS.findall(source):
        names.update(re.findall(r'"([^"]+)"', group))
    assert names
    missing = sorted(n for n in names if not adapter.reads.keeps(n.removesuffix("_total")))
    assert not missing, f"{adapter.family}: add to its FamilySelection: {missing}"


@pytest.mark.parametrize("value", ["1.2.3", "0x10", "1_000", "one", "1 x", ""])
def test_a_body_validated_before_is_checked_again_when_a_value_changes(value: str) -> None:
    """Skipped lines whose shape was validated once are not re-checked line by line, only their
    values are: a value turned bad in the same skeleton still rejects the body."""
    path = next(p for p in FIXTURES if p.name.startswith("vllm-v1-dynamo"))
    text = path.read_text(encoding="utf-8")
    select = FamilySelection(names=("vllm:num_requests_running",))
    for _ in range(2):
        assert parse_selected(text, select, 50_000) is not None
    skipped = next(
        line for line in text.splitlines() if line.startswith("vllm:") and "running" not in line
    )
    name_and_labels = skipped.rsplit(" ", 1)[0]
    bad = text.replace(skipped, f"{name_and_labels} {value}", 1)
    with pytest.raises(ExpositionError):
        parse_exposition_reference(bad)
    with pytest.raises(ExpositionError):
        parse_exposition(bad, select=select)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_counter_continuity_keeps_deferred_buckets_text_and_equal(path: Path) -> None:
    """Reset correction of a family whose buckets are still text gives what it gives on the
    built family, identity included, and leaves the buckets text (they are not corrected)."""
    text = path.read_text(encoding="utf-8")
    adapter, _ = detect_engine(parse_exposition_reference(text))
    select = FamilySelection(everything=True, bucket_names=adapter.reads.bucket_names)
    restarted = re.sub(r"(_(?:count|sum)(?:\{[^}]*\})?) ([0-9.e+]+)$", r"\1 0", text, flags=re.M)
    deferred, built = CounterContinuity(), CounterContinuity()
    for body in (text, restarted):
        fast = parse_exposition(body, select=select)
        reference = parse_exposition_reference(body)
        assert identity_of(adapter.family, fast) == identity_of(adapter.family, reference)
        ours, theirs = deferred.apply(fast), built.apply(reference)
        assert ours.poisoned == theirs.poisoned
        assert ours.restart_reason == theirs.restart_reason
        kept = [f for f in ours.families.values() if isinstance(f, DeferredBuckets)]
        assert all(f.deferred for f in kept)
        assert canonical(ours.families) == canonical(restrict(theirs.families, select))


def test_a_later_poll_reads_its_buckets_with_the_plan_of_their_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The latency buckets of a poll with the same series as an earlier one are read from the
    values alone (no line-by-line reading), and equal the reference on its values."""
    from rooftop.exporter.sources import exposition

    path = next(p for p in FIXTURES if p.name.startswith("sglang-0.4.0"))
    text = path.read_text(encoding="utf-8")
    adapter, _ = detect_engine(parse_exposition_reference(text))
    names = adapter.reads.bucket_names
    first = parse_exposition(text, select=adapter.reads)
    assert any(isinstance(first.get(n), DeferredBuckets) for n in names)
    before = {n: exposition.histogram_buckets(first.get(n)) for n in names}
    later = re.sub(
        r"^(\S+_bucket\{[^}]*\}) ([0-9.e+]+)$",
        lambda m: f"{m.group(1)} {float(m.group(2)) * 3 + 1}",
        text,
        flags=re.MULTILINE,
    )
    assert later != text

    def line_by_line(*args: object, **kwargs: object) -> object:
        raise AssertionError("read line by line, not with the plan")

    monkeypatch.setattr(exposition, "_deferred_bucket_series", line_by_line)
    fast = parse_exposition(later, select=adapter.reads)
    reference = parse_exposition_reference(later)
    for name in names:
        got = exposition.histogram_buckets(fast.get(name))
        assert got == exposition.histogram_buckets(reference.get(name))
        assert got is None or got != before[name]


@pytest.mark.parametrize(
    "select", [NAMES_ONLY, EVERYTHING, DEFERRED_BUCKETS], ids=["names", "all", "deferred"]
)
def test_lines_the_run_grammar_rejects_are_read_line_by_line_once(
    monkeypatch: pytest.MonkeyPatch, select: FamilySelection
) -> None:
    """A family whose lines end in ``\\r\\n`` (or a space) is read line by line after its
    first line: a run is not tried again at every line (each try scans the rest of the family,
    so a 0.5 MB body took 0.5 s), and what it reads is the reference's."""
    from rooftop.exporter.sources import selective_parser

    lines = ["# TYPE lat histogram"]
    for series in range(100):
        lines += [f'lat_bucket{{s="{series}",le="{le}"}} {series}' for le in ("1", "+Inf")]
        lines += [f'lat_count{{s="{series}"}} {series}', f'lat_sum{{s="{series}"}} 1.5']
    lines += ["# TYPE up gauge", *(f'up{{s="{s}"}} 1' for s in range(100))]
    text = "\r\n".join(lines) + "\r\n"
    tries = 0
    checked_end = selective_parser._Block._checked_end

    def counted(self: object, *args: object) -> int:
        nonlocal tries
        tries += 1
        return checked_end(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(selective_parser._Block, "_checked_end", counted)
    fast = parse_selected(text, select, 50_000)
    assert fast is not None
    assert canonical(fast) == canonical(restrict(parse_exposition_reference(text), select))
    assert tries <= 4  # one per kind of run and family, not one per line


@pytest.mark.parametrize(
    "select", [NAMES_ONLY, EVERYTHING, DEFERRED_BUCKETS], ids=["names", "all", "deferred"]
)
def test_a_family_longer_than_a_run_is_read_in_runs_of_bounded_length(
    monkeypatch: pytest.MonkeyPatch, select: FamilySelection
) -> None:
    """No regular-expression call covers more than ``RUN_LINES`` lines (``re`` holds the GIL
    for a whole call, and a scrape waits on it); a family of several runs, its histogram series
    cut across run boundaries, reads as the reference reads it, on a second poll's plan too."""
    from rooftop.exporter.sources import exposition, selective_parser

    most = selective_parser.RUN_LINES
    series = 401  # 1 203 bucket lines, 1 603 gauge lines: several runs each
    bounds = ("0.1", "1", "+Inf")

    def body(scale: int) -> str:
        lines = ["# TYPE lat histogram"]
        for s in range(series):
            lines += [
                f'lat_bucket{{s="{s}",le="{le}"}} {s * scale + i}' for i, le in enumerate(bounds)
            ]
        lines += [f'lat_count{{s="{s}"}} {s}' for s in range(series)]
        lines += ["# TYPE up gauge", *(f'up{{s="{s}"}} {s * scale}' for s in range(1_603))]
        return "\n".join(lines) + "\n"

    longest = 0
    checked_end = selective_parser._Block._checked_end

    def measured(self: object, text: str, position: int, end: int, digest: int | None) -> int:
        nonlocal longest
        longest = max(longest, text.count("\n", position, end))
        return checked_end(self, text, position, end, digest)  # type: ignore[arg-type]

    monkeypatch.setattr(selective_parser._Block, "_checked_end", measured)
    for scale in (1, 3):
        text = body(scale)
        fast = parse_selected(text, select, 50_000)
        assert fast is not None
        reference = parse_exposition_reference(text)
        assert canonical(fast) == canonical(restrict(reference, select))
        got = exposition.histogram_buckets(parse_exposition(text, select=select).get("lat"))
        assert got == exposition.histogram_buckets(restrict(reference, select).get("lat"))
    assert 0 < longest <= most < 1_203


def test_a_family_over_the_series_cap_is_stopped_within_a_run_of_the_cap() -> None:
    """The cap is checked after each run: a 100 000-line family over a cap of 1 000 is not
    built whole first (that held the GIL for most of a second and stalled /metrics)."""
    from rooftop.exporter.sources import selective_parser

    text = "# TYPE up gauge\n" + "".join(f'up{{s="{s}"}} 1\n' for s in range(100_000))
    built: list[int] = []
    layout = selective_parser._layout

    def counted(span: str) -> object:
        built.append(span.count("\n"))
        return layout(span)

    selective_parser._LAYOUTS.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selective_parser, "_layout", counted)
        with pytest.raises(ExpositionError, match="over the cap"):
            parse_exposition(text, select=EVERYTHING, max_series=1_000)
    assert sum(built) <= 1_000 + selective_parser.RUN_LINES
    assert sum(built) < 10_000  # far from the family's 100 000 lines
