"""A streaming text-format (0.0.4) parser that builds objects only for the families asked for.

An engine exports thousands of series; an adapter reads a few dozen (a vLLM with 4 models and 3
LoRA adapters: 4,192 samples, ~90 % of them histogram ``_bucket`` lines nobody reads). This
parser walks the body line by line and, for a line of a family nobody asked for, does one
compiled-regex match (which validates the line and yields its metric name) and nothing else: no
label dict, no float, no ``Sample``. Lines of the families in a :class:`FamilySelection` become
the same ``Metric``/``Sample`` objects ``prometheus_client``'s parser would build.

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

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

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


def _variants(name: str) -> tuple[str, ...]:
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
    accepts) or by name prefix, and whether it reads histogram ``_bucket`` samples (none does
    today). Every family is listed whatever the selection (names cost nothing more to know);
    the families left out have no samples.

    ``prefixes`` ending in ``:`` also cover the underscore spelling (``vllm:`` and ``vllm_``),
    as ``exposition.names_with_prefix`` does. ``samples=False``: names only, what recognition
    needs.
    """

    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    buckets: bool = False
    samples: bool = True
    everything: bool = False
    """Keep every family (``buckets`` still applies)."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = frozenset(v for name in self.names for v in _variants(name))
        spellings: list[str] = []
        for prefix in self.prefixes:
            spellings.append(prefix)
            if prefix.endswith(":"):
                spellings.append(prefix[:-1] + "_")
        object.__setattr__(self, "_names", names)
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

    def union(self, other: FamilySelection) -> FamilySelection:
        return FamilySelection(
            names=(*self.names, *other.names),
            prefixes=(*self.prefixes, *other.prefixes),
            buckets=self.buckets or other.buckets,
            samples=self.samples or other.samples,
            everything=self.everything or other.everything,
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
    skipped: list[str]
    """Bucket lines not built: built after all when the family turns out to hold nothing else
    (an excerpt with buckets only), so that its labels can still be read."""


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

    skipped: list[str] = []
    block: re.Pattern[str] | None = None

    def close() -> None:
        out.append(_family(name, documentation, typ, samples, count, skipped))

    position, size = 0, len(text)
    while position < size:
        if block is not None:
            run = block.match(text, position)
            if run is not None and run.end() > position:
                # A run of lines nobody reads, validated in one regex call: only counted.
                lines = text.count("\n", position, run.end())
                sample_lines += lines
                if sample_lines > max_series:
                    raise SeriesCapError(_count_sample_lines(text), max_series)
                count += lines
                if samples is not None:
                    skipped.append(text[position : run.end()])
                position = run.end()
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
            bucket_name = name + "_bucket" if typ == "histogram" and not buckets else ""
            if samples is None:
                block = _block((name, *allowed))
            elif bucket_name:
                block = _block((name, bucket_name))
            else:
                block = None
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
                skipped.append(line)  # built only if the family has nothing else
            continue
        if name:
            close()
        name, documentation, typ, allowed, samples, count, bucket_name = (
            "", "", "untyped", (), None, 0, ""
        )  # fmt: skip
        skipped = []
        block = None
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
_BLOCKS: dict[tuple[str, ...], re.Pattern[str]] = {}
_MAX_BLOCKS: Final = 4096


def _block(key: tuple[str, ...]) -> re.Pattern[str]:
    """A regex matching a run of whole lines (each ending in ``\\n``) in the fast grammar whose
    metric name is one of ``key[1:]``: the lines of a family that are only counted. Compiled
    once per family shape and kept (a bounded cache: engines' family names are stable)."""
    pattern = _BLOCKS.get(key)
    if pattern is None:
        if len(_BLOCKS) >= _MAX_BLOCKS:
            _BLOCKS.clear()
        names = "|".join(re.escape(n) for n in sorted(set(key[1:]), key=len, reverse=True))
        pattern = re.compile(rf"(?:(?:{names}){_BLOCK_LABELS} {_NUMBER}(?: {_NUMBER})?\n)*")
        _BLOCKS[key] = pattern
    return pattern


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
    labels: dict[str, str] = {}
    if label_text:
        for label, label_value in _LABEL.findall(label_text):
            if label in labels:
                raise _Fallback  # the look-ahead missed nothing; kept as a guard
            labels[label] = (
                _ESCAPE.sub(_unescape, label_value) if "\\" in label_value else label_value
            )
    return Sample(name, labels, _number(value), None if stamp is None else _number(stamp) / 1000)


def _family(
    name: str,
    documentation: str,
    typ: str,
    samples: list[Sample] | None,
    count: int,
    skipped: list[str],
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
    by_name: dict[str, _Family] = {}
    for family in families:
        if family.name.endswith("_created"):
            continue
        samples = (
            None
            if family.samples is None
            else [s for s in family.samples if not s.name.endswith("_created")]
        )
        known = by_name.get(family.name)
        if known is None:
            by_name[family.name] = _Family(
                family.name,
                family.documentation,
                family.type,
                samples,
                family.count,
                list(family.skipped),
            )
            continue
        known.count += family.count
        known.skipped.extend(family.skipped)
        if samples:
            if known.samples is None:
                known.samples = []
            known.samples.extend(samples)
        if known.type == "unknown" and family.type != "unknown":
            known.type = family.type
            known.documentation = family.documentation or known.documentation
    for name, family in list(by_name.items()):
        if family.type != "counter" or family.count:
            continue
        stray = by_name.get(name + "_total")
        if stray is not None and stray.type == "unknown":
            family.samples = None if stray.samples is None else list(stray.samples)
            family.count = stray.count
            del by_name[name + "_total"]
    out: dict[str, Metric] = {}
    for name, family in by_name.items():
        metric = Metric(name, family.documentation, family.type)
        if selection.keeps(name):
            if family.samples:
                metric.samples = family.samples
            elif family.skipped:
                metric.samples = [
                    _sample(_built(line))
                    for chunk in family.skipped
                    for line in chunk.split("\n")
                    if line
                ]
        out[name] = metric
    return out
