"""A streaming text-format (0.0.4) parser that builds objects only for the families asked for.

An engine exports thousands of series; an adapter reads a few dozen (a vLLM with 4 models and 3
LoRA adapters: 4,192 samples, ~90 % of them histogram ``_bucket`` lines nobody reads). This
parser walks the body family by family. The lines of a family nobody asked for are consumed
as one run by a compiled regex that validates them (and, when their names and labels are the
ones validated on an earlier poll, only their values: see :class:`_Block`), and nothing else: no
label dict, no float, no ``Sample``. Bucket lines of the few histograms an adapter reads buckets
of are kept as text (:class:`DeferredBuckets`). Lines of the families in a
:class:`FamilySelection` become the same ``Metric``/``Sample`` objects ``prometheus_client``'s
parser would build.

Equivalence with ``prometheus_client.parser.text_string_to_metric_families`` followed by
rooftop's normalisation (``exposition._normalise``) is the contract, tested differentially on
every fixture and on the fuzz corpus (tests/test_fuzz.py):

* the grouping of samples into families follows prometheus_client's state machine exactly
  (``# HELP``/``# TYPE`` open a family; a sample whose name is not one of the family's allowed
  names closes it and becomes an untyped one-sample family), since a skipped line still decides
  where a family ends;
* a line the fast grammar below does not cover (quoted or UTF-8 names, ``__name__`` labels,
  escapes in odd places, tabs, several values, stray comments naming HELP/TYPE ...) makes
  :func:`parse_selected` return ``None``, and the caller parses the body with the reference
  parser instead. Bodies from client libraries (Python, Go, Rust, the ``metrics`` crate) never
  leave the fast grammar; hostile ones cost what they cost before.

Fast grammar (after ``str.strip()`` of each ``\\n``-separated line, as prometheus_client does):

* ``# HELP name text`` and ``# TYPE name type``; any other comment without the words HELP or
  TYPE is ignored (prometheus_client ignores it too);
* ``name{label="value",...} value [timestamp]`` with single spaces, legacy metric and label
  names (no ``__`` label prefix), ``\\\\``, ``\\"`` and ``\\n`` escapes, and numbers of the
  form ``float()`` accepts (``NaN``, ``+Inf``, exponents).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client.metrics_core import METRIC_TYPES, Metric
from prometheus_client.samples import Sample

_NUMBER: Final = (
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:nan|inf|infinity))"
)
_LABEL_VALUE: Final = r'="[^"\\]*(?:\\.[^"\\]*)*"'
_SAMPLE_LINE: Final = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{("
    rf"(?!__)([a-zA-Z_][a-zA-Z0-9_]*)(?!.*,\3=){_LABEL_VALUE}"
    rf"(?:,(?!__)([a-zA-Z_][a-zA-Z0-9_]*)(?!.*,\4=){_LABEL_VALUE})*"
    r")?\})?"
    rf" ({_NUMBER})(?: ({_NUMBER}))?"
)
"""Groups: 1 name, 2 label text, 5 value, 6 timestamp. The look-aheads keep what the
reference rejects beyond the grammar out of the fast path: a reserved ``__`` label name, a
label name repeated later in the line (a quoted value holding ``,name=`` also sends the line
to the reference: slower, never wrong)."""
_LABEL: Final = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*(?:\\.[^"\\]*)*)"')
_WS: Final = "[ \t\n\r\x0b\x0c]"  # string.whitespace: prometheus_client's token separators
_METADATA: Final = re.compile(
    rf"#{_WS}+(HELP|TYPE){_WS}+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:{_WS}+(.*))?", re.DOTALL
)
_ESCAPE: Final = re.compile(r'\\[\\n"]')
_HELP_ESCAPE: Final = re.compile(r"\\[\\n]")
_UNESCAPED: Final = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}
_ODD_LINE_BREAKS: Final = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Characters ``str.splitlines`` breaks on besides ``\\n`` (the reference's series count uses it;
lines, as prometheus_client reads them, end at ``\\n`` only)."""
_ALLOWED_SUFFIXES: Final = {
    "counter": ("",),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
    "histogram": ("_count", "_sum", "_bucket"),
}
_VALID_TYPES: Final = frozenset((*METRIC_TYPES, "untyped"))


def _unescape(match: re.Match[str]) -> str:
    return _UNESCAPED[match.group(0)]


def _number(text: str) -> float:
    """As prometheus_client reads a value: an ``int`` where ``int()`` accepts it, else float.

    Within the fast grammar ``int()`` accepts exactly the optionally signed digit strings; the
    test avoids raising (and catching) a ValueError for every ``1.0``."""
    digits = text[1:] if text[0] in "+-" else text
    if digits.isdigit():
        try:
            return int(text)
        except ValueError:  # over sys.get_int_max_str_digits(): float, as the reference
            return float(text)
    return float(text)


@functools.lru_cache(maxsize=4096)
def name_variants(name: str) -> tuple[str, ...]:
    """Spellings under which ``name`` may appear: ``_total`` on or off, ``prefix:``/``prefix_``."""
    bases = [name]
    if ":" in name:
        bases.append(name.replace(":", "_", 1))
    out: list[str] = []
    for base in bases:
        for candidate in (base, base.removesuffix("_total"), base + "_total"):
            if candidate not in out:
                out.append(candidate)
    return tuple(out)


@dataclass(frozen=True)
class FamilySelection:
    """The families whose samples an adapter reads: by name (in any spelling ``get_family``
    accepts) or by name prefix, and whether it reads histogram ``_bucket`` samples: of every
    histogram (``buckets``, parsed line by line) or of a few named ones (``bucket_names``, kept
    as text until read: see :class:`DeferredBuckets`). Every family is listed whatever the
    selection (names cost nothing more to know); the families left out have no samples.

    ``prefixes`` ending in ``:`` also cover the underscore spelling (``vllm:`` and ``vllm_``),
    as ``exposition.names_with_prefix`` does. ``samples=False``: names only, what recognition
    needs.
    """

    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    buckets: bool = False
    bucket_names: tuple[str, ...] = ()
    """Histograms whose ``_bucket`` samples are kept although ``buckets`` is off (latency
    quantiles read from the engine's buckets: a few families, not every histogram)."""
    samples: bool = True
    everything: bool = False
    """Keep every family (``buckets`` still applies)."""
    alternates: tuple[tuple[str, str], ...] = ()
    """``(preferred, fallback)`` pairs: the adapter reads ``fallback`` only where ``preferred``
    has no samples (a renamed family exported under both names for a while). The parse keeps
    both; a poll that asks the engine by name (``name_filter``) asks for the one it reads."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _bucket_names: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = frozenset(v for name in self.names for v in name_variants(name))
        spellings: list[str] = []
        for prefix in self.prefixes:
            spellings.append(prefix)
            if prefix.endswith(":"):
                spellings.append(prefix[:-1] + "_")
        object.__setattr__(self, "_names", names)
        object.__setattr__(
            self,
            "_bucket_names",
            frozenset(v for name in self.bucket_names for v in name_variants(name)),
        )
        object.__setattr__(self, "_prefixes", tuple(spellings))

    def keeps(self, family: str) -> bool:
        """Whether the samples of ``family`` (a name as parsed: no ``_total`` on counters) are
        kept. Every family is listed either way; the others have no samples."""
        if not self.samples:
            return False
        if self.everything:
            return True
        return family in self._names or (bool(self._prefixes) and family.startswith(self._prefixes))

    def _samples_of(self, raw_name: str) -> bool:
        """Whether samples of a raw family named ``raw_name`` are built (``x_total`` may merge
        into the counter ``x``)."""
        if not self.samples or raw_name.endswith("_created"):
            return False  # *_created families are dropped whole
        return self.keeps(raw_name) or (
            raw_name.endswith("_total") and self.keeps(raw_name[: -len("_total")])
        )

    def keeps_buckets(self, family: str) -> bool:
        """Whether the ``_bucket`` samples of the histogram ``family`` are kept."""
        return self.buckets or (family in self._bucket_names and self.keeps(family))

    def union(self, other: FamilySelection) -> FamilySelection:
        return FamilySelection(
            names=(*self.names, *other.names),
            prefixes=(*self.prefixes, *other.prefixes),
            buckets=self.buckets or other.buckets,
            bucket_names=(*self.bucket_names, *other.bucket_names),
            samples=self.samples or other.samples,
            everything=self.everything or other.everything,
            alternates=(*self.alternates, *other.alternates),
        )


EVERYTHING: Final = FamilySelection(everything=True, buckets=True)
NAMES_ONLY: Final = FamilySelection(samples=False)


class _Fallback(Exception):
    """The body leaves the fast grammar: parse it with the reference parser."""


@dataclass
class _Family:
    """One family as the reference parser yields it (before rooftop's merge by name)."""

    name: str
    documentation: str
    type: str
    samples: list[Sample] | None
    count: int
    """Samples not named ``*_created`` (what decides "empty" in the merge)."""
    skipped: list[tuple[int, str]]
    """Bucket lines not built, as ``(number of samples before them, lines)``: kept as text for a
    histogram whose buckets are read (:class:`DeferredBuckets`), else built after all only when
    the family turns out to hold nothing else (an excerpt with buckets only), so that its
    labels can still be read."""

    def parts(self) -> list[Sample | str]:
        """Samples and unbuilt bucket lines in the order of the body."""
        samples = self.samples or []
        out: list[Sample | str] = []
        taken = 0
        for position, chunk in self.skipped:
            out.extend(samples[taken:position])
            taken = position
            out.append(chunk)
        out.extend(samples[taken:])
        return out


class SeriesCapError(ValueError):
    def __init__(self, lines: int, cap: int) -> None:
        self.lines = lines
        super().__init__(f"{lines} series, over the cap of {cap} (label explosion?)")


def parse_selected(
    text: str, selection: FamilySelection, max_series: int
) -> dict[str, Metric] | None:
    """``{family name: Metric}`` of every family, with samples for those ``selection`` keeps,
    exactly as the reference path (prometheus_client + merge) gives them; ``_bucket`` samples
    dropped unless asked for (or unless a family has nothing else).

    ``None`` when the body leaves the fast grammar (or is not valid at all): the caller then
    parses it with the reference parser. Raises :class:`SeriesCapError` over ``max_series``
    sample lines.
    """
    try:
        families = _families(text, selection, max_series)
    except _Fallback:
        return None
    if any(char in text for char in _ODD_LINE_BREAKS):
        # The reference counts lines with str.splitlines, which also breaks on these: never
        # fewer lines than here, so only a body under the cap here needs the second count.
        lines = sum(1 for line in text.splitlines() if line.lstrip()[:1] not in ("", "#"))
        if lines > max_series:
            raise SeriesCapError(lines, max_series)
    return _merge(families, selection)


def _families(text: str, selection: FamilySelection, max_series: int) -> list[_Family]:
    out: list[_Family] = []
    name = ""
    documentation = ""
    typ = "untyped"
    allowed: tuple[str, ...] = ()
    samples: list[Sample] | None = None
    count = 0
    build = False
    buckets = selection.buckets
    bucket_name = ""
    sample_lines = 0
    match_sample = _SAMPLE_LINE.fullmatch
    match_metadata = _METADATA.fullmatch

    skipped: list[tuple[int, str]] = []
    block: _Block | None = None
    """The lines counted, not built: a family nobody reads, or bucket lines kept as text."""
    kept: _Block | None = None
    """The lines built into samples, a run at a time (see :meth:`_Block.kept_run`)."""

    def close() -> None:
        out.append(_family(name, documentation, typ, samples, count, skipped))

    position, size = 0, len(text)
    while position < size:
        if block is not None:
            if samples is None:
                run_end, run = block.run_end(text, position), ""
            else:  # bucket lines of a histogram whose buckets are read: kept
                run_end, run = block.bucket_run(text, position)
            if run_end == NOT_A_RUN:
                block = None
            elif run_end > position:
                # A run of lines nobody reads (or bucket lines), validated, only counted.
                lines = text.count("\n", position, run_end)
                sample_lines += lines
                if sample_lines > max_series:
                    raise SeriesCapError(_count_sample_lines(text), max_series)
                count += lines
                if samples is not None:
                    skipped.append((len(samples), run))
                position = run_end
                continue
        if kept is not None and samples is not None:
            run_end, built = kept.kept_run(text, position)
            if run_end == NOT_A_RUN:
                kept = None
            elif run_end > position:
                sample_lines += len(built)
                if sample_lines > max_series:
                    raise SeriesCapError(_count_sample_lines(text), max_series)
                count += len(built)
                samples.extend(built)
                position = run_end
                continue
        end = text.find("\n", position)
        if end < 0:
            end = size
        line = text[position:end].strip()
        position = end + 1
        if not line:
            continue
        if line[0] == "#":
            meta = match_metadata(line)
            if meta is None:
                if ("HELP" in line or "TYPE" in line) and _second_token(line) in _KEYWORDS:
                    raise _Fallback
                continue  # a comment prometheus_client ignores
            keyword, candidate, rest = meta.groups()
            if keyword == "HELP":
                if candidate != name:
                    if name:
                        close()
                    name, typ, allowed = candidate, "untyped", (candidate,)
                    build = selection._samples_of(candidate)
                    samples, count, skipped = ([] if build else None), 0, []
                documentation = "" if rest is None else _HELP_ESCAPE.sub(_unescape, rest)
            else:
                if rest is None:
                    raise _Fallback  # "# TYPE x" without a type: the reference raises
                if candidate != name:
                    if name:
                        close()
                    name, documentation = candidate, ""
                    build = selection._samples_of(candidate)
                    samples, count, skipped = ([] if build else None), 0, []
                typ = rest
                allowed = tuple(name + s for s in _ALLOWED_SUFFIXES.get(typ, ("",)))
            # Bucket lines stay text: dropped, or read by the few helpers that need them.
            bucket_name = name + "_bucket" if typ == "histogram" and not buckets else ""
            if samples is None:
                block, kept = _block((name, *allowed)), None
            elif bucket_name:
                block = _block((name, bucket_name))
                kept = _block((name, *(n for n in allowed if n != bucket_name)))
            else:
                block, kept = None, _block((name, *allowed))
            continue
        sample_lines += 1
        if sample_lines > max_series:
            raise SeriesCapError(_count_sample_lines(text), max_series)
        found = match_sample(line)
        if found is None:
            raise _Fallback
        sample_name = found.group(1)
        if sample_name in allowed:
            count += 1  # (a *_created family is dropped whole, so its count never matters)
            if samples is not None and sample_name != bucket_name:
                samples.append(_sample(found))
            elif samples is not None:
                skipped.append((len(samples), line + "\n"))
            continue
        if name:
            close()
        name, documentation, typ, allowed, samples, count, bucket_name = (
            "", "", "untyped", (), None, 0, ""
        )  # fmt: skip
        skipped = []
        block = kept = None
        if selection._samples_of(sample_name):
            single: list[Sample] | None = [_sample(found)]
        else:
            single = None
        out.append(
            _family(
                sample_name,
                "",
                "untyped",
                single,
                0 if sample_name.endswith("_created") else 1,
                [],
            )
        )
    if name:
        close()
    return out


_BLOCK_LABELS: Final = (
    rf"(?:\{{(?:(?!__)([a-zA-Z_][a-zA-Z0-9_]*)(?!.*,\1=){_LABEL_VALUE}"
    rf"(?:,(?!__)([a-zA-Z_][a-zA-Z0-9_]*)(?!.*,\2=){_LABEL_VALUE})*)?\}})?"
)
_TAIL: Final = re.compile(rf" {_NUMBER}(?: {_NUMBER})?\n")
"""A line's value and timestamp. On a line of the fast grammar the first match is the true
one: a number holds no quote or brace, so no match can begin inside the labels."""
RUN_LINES: Final = 512
"""The most lines one run holds: a family with more is read as several runs. Each regular
expression call holds the GIL for its whole length (``re`` never lets it go), so a run's
length is what a scrape may wait on; 512 lines cost about half a millisecond at most, and the
series cap is checked after each run, not after a 100 000-line family has been read."""
_VALIDATED: set[int] = set()
"""Hashes of runs' skeletons (the lines less their values) that passed the full grammar."""
_MAX_VALIDATED: Final = 65_536


class _Block:
    """A run of whole lines (each ending in ``\\n``) of one family whose metric name is one of
    ``names``: lines counted, not built (:meth:`run_end`), bucket lines kept as text
    (:meth:`bucket_run`), or lines built into samples (:meth:`kept_run`).

    Checking a run against the full grammar (labels, escapes, repeated label names) costs about
    a microsecond a line; an engine's lines keep their names and labels from poll to poll and
    change only their values. So a run whose skeleton (its text with every value and timestamp
    cut) was checked before needs only its values checked, which one substitution does: a valid
    line with valid numbers in place of valid numbers is valid. The skeletons are remembered by
    hash (64-bit SipHash with the interpreter's random key), a few bytes each.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
        most = f"{{0,{RUN_LINES}}}"
        self._extent = re.compile(rf"(?:(?:{alternatives})[{{ ][^\n]*\n){most}")
        self._full = re.compile(
            rf"(?:(?:{alternatives}){_BLOCK_LABELS} {_NUMBER}(?: {_NUMBER})?\n){most}"
        )

    def run_end(self, text: str, position: int) -> int:
        """Where the run of valid lines starting at ``position`` ends (``position``: none
        there; :data:`NOT_A_RUN`: the line there is not in the run grammar)."""
        extent = self._extent.match(text, position)
        end = position if extent is None else extent.end()
        if end == position:
            return position
        span = text[position:end]
        skeleton, tails = _TAIL.subn("\n", span)
        digest = hash(skeleton) if tails == span.count("\n") else None
        checked_end = self._checked_end(text, position, end, digest)
        return NOT_A_RUN if checked_end == position else checked_end

    def bucket_run(self, text: str, position: int) -> tuple[int, str]:
        """``run_end`` of a run of bucket lines that are kept, and the run as a
        :class:`BucketRun` (its skeleton's hash and its value texts)."""
        end, span, pieces, digest = self._split_run(text, position)
        if end <= position:
            return end, ""
        return end, BucketRun(span, digest, pieces[1::3])

    def kept_run(self, text: str, position: int) -> tuple[int, list[Sample]]:
        """Where the run of valid lines starting at ``position`` ends, and its samples, built
        as the line-by-line reading builds them: the names and labels from the run's layout
        (kept by its skeleton's hash from the poll that first had it), the values from the
        text."""
        end, span, pieces, digest = self._split_run(text, position)
        if end <= position:
            return end, []
        layout = _LAYOUTS.get(digest)
        if layout is None:
            layout = _layout(span)
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                _LAYOUTS.clear()
            _LAYOUTS[digest] = layout
        return end, [
            Sample(
                name,
                labels.copy(),
                _number(value),
                None if stamp is None else _number(stamp) / 1000,
            )
            for (name, labels), value, stamp in zip(layout, pieces[1::3], pieces[2::3], strict=True)
        ]

    def _split_run(self, text: str, position: int) -> tuple[int, str, list[Any], int]:
        """The run of valid lines from ``position``: ``(run_end, its text, its pieces split at
        the tails, its skeleton's hash)``; the pieces are text, value, timestamp (or None),
        text, and so on. The text is empty unless ``run_end > position``. A run cut short by a
        line the run grammar rejects is the valid lines before it (read line by line from
        there)."""
        extent = self._extent.match(text, position)
        end = position if extent is None else extent.end()
        if end == position:
            return position, "", [], 0
        span = text[position:end]
        pieces = _TAIL_SPLIT.split(span)
        digest = hash("\n".join(pieces[::3])) if len(pieces) // 3 == span.count("\n") else None
        checked_end = self._checked_end(text, position, end, digest)
        if checked_end == position:
            return NOT_A_RUN, "", [], 0
        if checked_end != end or digest is None:
            span = text[position:checked_end]
            pieces = _TAIL_SPLIT.split(span)
            digest = hash("\n".join(pieces[::3]))
        return checked_end, span, pieces, digest

    def _checked_end(self, text: str, position: int, end: int, digest: int | None) -> int:
        """How far the lines from ``position`` to ``end`` are valid: all of them at once when
        their skeleton's hash (``digest``: ``None`` unless every line's tail matched) was
        validated before, else checked against the full grammar (and remembered when all
        valid)."""
        if digest in _VALIDATED:
            return end
        checked = self._full.match(text, position)
        checked_end = position if checked is None else checked.end()
        if checked_end == end and digest is not None:
            if len(_VALIDATED) >= _MAX_VALIDATED:
                _VALIDATED.clear()
            _VALIDATED.add(digest)
        return checked_end


NOT_A_RUN: Final = -1
"""What the run readers give when the line at ``position`` has one of the block's names but
not the run grammar (a ``\\r\\n`` line end, a space before it): the family's other lines
are then read line by line (trying a run at each of them would cost a scan of the rest of the
family per line)."""

_LAYOUTS: dict[int, tuple[tuple[str, dict[str, str]], ...]] = {}
"""Skeleton hash of a run of lines that are built -> each line's name and labels (the label
dicts are those of ``_LABELS_READ``, copied for each sample; bounded)."""
_MAX_LAYOUTS: Final = 4096


def _layout(span: str) -> tuple[tuple[str, dict[str, str]], ...]:
    """The name and labels of each line of a run the run grammar accepted."""
    out: list[tuple[str, dict[str, str]]] = []
    for line in span.split("\n")[:-1]:
        found = _SAMPLE_LINE.fullmatch(line)
        if found is None:  # the two grammars accept the same lines; kept as a guard
            raise _Fallback
        name, label_text = found.group(1, 2)
        out.append((name, _read_labels(label_text) if label_text else {}))
    return tuple(out)


_TAIL_SPLIT: Final = re.compile(rf" ({_NUMBER})(?: ({_NUMBER}))?\n")
""":data:`_TAIL` with the value and the timestamp captured: ``split`` gives the pieces between
the tails (joined with ``\\n``, the skeleton :meth:`_Block.run_end` hashes) and each line's
value."""


class BucketRun(str):
    """Bucket lines kept as text, whose skeleton (the lines less their values) was validated:
    ``layout`` is the skeleton's hash, the same from poll to poll while the engine's series
    keep their names, labels and order; ``values`` the lines' value texts, in order. What the
    reading helpers derive from the labels alone is kept per layout (``exposition``'s bucket
    plans), so a poll reads only the values."""

    layout: int
    values: list[str]

    def __new__(cls, text: str, layout: int, values: list[str]) -> BucketRun:
        run = super().__new__(cls, text)
        run.layout = layout
        run.values = values
        return run


_BLOCKS: dict[tuple[str, ...], _Block] = {}
_MAX_BLOCKS: Final = 4096


def _block(key: tuple[str, ...]) -> _Block:
    """The :class:`_Block` of lines named one of ``key[1:]`` (``key[0]``: the family). Compiled
    once per family shape and kept (a bounded cache: engines' family names are stable)."""
    block = _BLOCKS.get(key)
    if block is None:
        if len(_BLOCKS) >= _MAX_BLOCKS:
            _BLOCKS.clear()
        block = _Block(key[1:])
        _BLOCKS[key] = block
    return block


_KEYWORDS: Final = ("HELP", "TYPE")
_WHITESPACE: Final = " \t\n\r\x0b\x0c"


def _second_token(line: str) -> str | None:
    """The second whitespace-separated token of a comment line, quotes respected, as
    prometheus_client's ``_split_quoted(line, None, 3)`` finds it (it decides whether a
    comment is metadata)."""
    tokens = [""]
    x = 0
    while x < len(line) and len(tokens) < 3:
        split = _next_unquoted_space(line, x)
        if split == -1:
            tokens[-1] = line[x:]
            break
        if split == x:
            x += 1
            continue
        tokens[-1] = line[x:split]
        x = split + 1
        tokens.append("")
    return tokens[1] if len(tokens) > 1 else None


def _next_unquoted_space(text: str, start: int) -> int:
    in_quotes = False
    for i in range(start, len(text)):
        char = text[i]
        if char == '"' and not _escaped(text, i):
            in_quotes = not in_quotes
        if not in_quotes and char in _WHITESPACE:
            return i
    return -1


def _escaped(text: str, position: int) -> bool:
    backslashes = 0
    while position > backslashes and text[position - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _count_sample_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip()[:1] not in ("", "#"))


def _built(line: str) -> re.Match[str]:
    found = _SAMPLE_LINE.fullmatch(line)
    assert found is not None  # matched when it was read
    return found


def _sample(found: re.Match[str]) -> Sample:
    name, label_text, value, stamp = found.group(1, 2, 5, 6)
    labels = parse_label_text(label_text) if label_text else {}
    return Sample(name, labels, _number(value), None if stamp is None else _number(stamp) / 1000)


def parse_label_text(label_text: str) -> dict[str, str]:
    """The labels of a line the fast grammar accepted (the text between its braces), values
    unescaped: a new dict each call (callers may change theirs), parsed once per label text
    (an engine's series keep their label text from poll to poll)."""
    return _read_labels(label_text).copy()


def _read_labels(label_text: str) -> dict[str, str]:
    """:func:`parse_label_text`'s labels as kept in ``_LABELS_READ``: never to be changed."""
    known = _LABELS_READ.get(label_text)
    if known is not None:
        return known
    labels: dict[str, str] = {}
    for label, label_value in _LABEL.findall(label_text):
        if label in labels:
            raise _Fallback  # the look-ahead missed nothing; kept as a guard
        labels[label] = _ESCAPE.sub(_unescape, label_value) if "\\" in label_value else label_value
    if len(_LABELS_READ) >= _MAX_LABELS_READ:
        _LABELS_READ.clear()
    _LABELS_READ[label_text] = labels
    return labels


_LABELS_READ: dict[str, dict[str, str]] = {}
"""Label text -> its labels, for the lines rooftop builds (a few hundred per engine; bounded,
about 2 MB at most)."""
_MAX_LABELS_READ: Final = 4096


def parse_number(text: str) -> float:
    """A value of a line the fast grammar accepted, as prometheus_client reads it."""
    return _number(text)


def _family(
    name: str,
    documentation: str,
    typ: str,
    samples: list[Sample] | None,
    count: int,
    skipped: list[tuple[int, str]],
) -> _Family:
    """As prometheus_client's ``build_metric``: counters lose ``_total`` from the family name,
    their samples gain it; an invalid type or empty name is the reference's error."""
    if typ not in _VALID_TYPES:
        raise _Fallback
    if typ == "counter":
        if name.endswith("_total"):
            name = name[: -len("_total")]
        elif samples is not None:
            samples = [s._replace(name=s.name + "_total") for s in samples]
    if not name:
        raise _Fallback
    typ = "unknown" if typ == "untyped" else typ
    return _Family(name, documentation, typ, samples, count, skipped)


def _merge(families: Iterable[_Family], selection: FamilySelection) -> dict[str, Metric]:
    """rooftop's normalisation (``exposition._normalise``) over the families, then the
    selection: ``*_created`` dropped, same-name families merged, a ``x_total`` untyped family
    given back to an empty counter ``x``."""
    by_name: dict[str, _Merged] = {}
    for family in families:
        if family.name.endswith("_created"):
            continue
        parts = [
            part
            for part in family.parts()
            if isinstance(part, str) or not part.name.endswith("_created")
        ]
        known = by_name.get(family.name)
        if known is None:
            by_name[family.name] = _Merged(family.documentation, family.type, parts, family.count)
            continue
        known.count += family.count
        known.parts.extend(parts)
        if known.type == "unknown" and family.type != "unknown":
            known.type = family.type
            known.documentation = family.documentation or known.documentation
    for name, merged in list(by_name.items()):
        if merged.type != "counter" or merged.count:
            continue
        stray = by_name.get(name + "_total")
        if stray is not None and stray.type == "unknown":
            merged.parts = list(stray.parts)
            merged.count = stray.count
            del by_name[name + "_total"]
    out: dict[str, Metric] = {}
    for name, merged in by_name.items():
        metric: Metric
        if not selection.keeps(name):
            metric = Metric(name, merged.documentation, merged.type)
        elif selection.keeps_buckets(name) and any(isinstance(p, str) for p in merged.parts):
            metric = DeferredBuckets(name, merged.documentation, merged.type, merged.parts)
        else:
            metric = Metric(name, merged.documentation, merged.type)
            plain = [p for p in merged.parts if not isinstance(p, str)]
            metric.samples = plain or _built_samples(merged.parts)
        out[name] = metric
    return out


@dataclass
class _Merged:
    documentation: str
    type: str
    parts: list[Sample | str]
    count: int


def _built_samples(parts: Iterable[Sample | str]) -> list[Sample]:
    """Samples of ``parts``, bucket lines built (as the reference parser builds them)."""
    out: list[Sample] = []
    for part in parts:
        if isinstance(part, str):
            out.extend(_sample(_built(line)) for line in part.split("\n") if line)
        else:
            out.append(part)
    return out


class DeferredBuckets(Metric):
    """A histogram whose ``_bucket`` lines are kept as text until something reads ``samples``.

    Equal to the reference parser's family in every way (``samples`` builds the same list on
    first access); the reading helpers in :mod:`~rooftop.exporter.sources.exposition` use
    :meth:`plain_samples` and :meth:`bucket_rows` instead, so that an engine's hundreds of
    bucket lines cost a text scan, not a ``Sample`` each.
    """

    def __init__(self, name: str, documentation: str, typ: str, parts: list[Sample | str]):
        super().__init__(name, documentation, typ)
        self._parts: list[Sample | str] | None = parts

    @property
    def samples(self) -> list[Sample]:
        if self._parts is not None:
            self._built = _built_samples(self._parts)
            self._parts = None
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._built = value
        self._parts = None

    @property
    def deferred(self) -> bool:
        """Whether the bucket lines are still text (``samples`` not read yet)."""
        return self._parts is not None

    def first_sample(self) -> Sample | None:
        """``samples[0]`` (or ``None``), without building the others."""
        if self._parts is None:
            return self._built[0] if self._built else None
        for part in self._parts:
            if not isinstance(part, str):
                return part
            line = part[: part.index("\n")] if "\n" in part else part
            if line:
                return _sample(_built(line))
        return None

    def map_plain(self, change: Callable[[Sample], Sample | None]) -> DeferredBuckets:
        """A copy whose samples other than ``_bucket`` ones are ``change(sample)`` (left out
        where it gives ``None``); the bucket lines stay as they are, text while deferred."""
        bucket = self.name + "_bucket"
        parts: list[Sample | str] = []
        for part in self._parts if self._parts is not None else self._built:
            if isinstance(part, str) or part.name == bucket:
                parts.append(part)
                continue
            changed = change(part)
            if changed is not None:
                parts.append(changed)
        copy = DeferredBuckets(self.name, self.documentation, self.type, parts)
        copy.unit = self.unit
        return copy

    def plain_samples(self) -> list[Sample]:
        """The samples other than ``_bucket`` ones, in order."""
        if self._parts is None:
            bucket = self.name + "_bucket"
            return [s for s in self._built if s.name != bucket]
        return [p for p in self._parts if not isinstance(p, str)]

    def bucket_runs(self) -> list[BucketRun] | None:
        """The bucket lines as :class:`BucketRun` s, in order; ``None`` unless every bucket
        line is in one (only while :attr:`deferred`)."""
        runs: list[BucketRun] = []
        for part in self._parts or ():
            if isinstance(part, BucketRun):
                runs.append(part)
            elif isinstance(part, str):
                return None
        return runs

    def bucket_rows(self) -> Iterator[tuple[str, str | None, str]]:
        """``(labels, le, value)`` of each ``_bucket`` line, in order; only while
        :attr:`deferred`. Where ``le`` is written last and no label value holds a quote or a
        backslash (what client libraries write), ``labels`` is the label text before the
        ``le`` pair; otherwise ``le`` is ``None`` and ``labels`` the whole label text."""
        for part in self._parts or ():
            if isinstance(part, str):
                rows = _BUCKET_LE_LAST.findall(part)
                if len(rows) == part.count("\n"):  # every line, whole (one match a line at most)
                    yield from rows
                else:
                    for label_text, value in _BUCKET_ROW.findall(part):
                        yield label_text, None, value


_BUCKET_ROW: Final = re.compile(r"[^{ \n]+(?:\{(.*)\})? ([^ \n]+)[^\n]*\n")
"""One bucket line already validated by the fast grammar: label text (the last ``}`` closes
the labels: a value and a timestamp hold no brace) and value."""
_BUCKET_LE_LAST: Final = re.compile(
    r'^[^{ \n]+\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",)*)le="([^"\\\n]*)"\} ([^ \n]+)[^\n]*\n',
    re.MULTILINE,
)
"""A whole bucket line with ``le`` last and no quote or backslash in a value: labels before
``le`` (each with its comma), ``le``, value. Without escapes, quotes open and close in turn,
so this reading of a line the fast grammar accepted is the only one."""
