"""Asking an engine for only the series rooftop reads: ``/metrics?name[]=...``.

prometheus_client's exposition handlers (``make_asgi_app``, ``make_wsgi_app``,
``start_http_server``), which serve vLLM's and most Python engines' ``/metrics``, answer
``name[]`` query parameters with only the samples so named (its ``restricted_registry``): the
engine renders, and rooftop downloads and parses, a few dozen families instead of all of them.
A vLLM with 4 models and 3 LoRA adapters answers 506 kB whole and 168 kB filtered, most of it
the latency buckets rooftop reads. In multiprocess mode (SGLang; vLLM with several API
servers) the registry knows no names, and the answer is empty: see below.

Semantics kept exact: the names asked for are the sample names of the families the adapter
reads, as the last whole body showed them (``_bucket`` only where buckets are read, never
``_created``, not a renamed family's old name while the new one has samples:
``FamilySelection.alternates``), and a filtered body is laid over that whole body's families
(every family listed, no samples for those not read), so an adapter sees what a whole-body
parse would give. The whole body is read again every :data:`REFRESH_POLLS` polls (a family
that appears later; a new label set of a kept family is in the filtered body anyway), and at
once when a filtered body lacks a family that had samples (another engine at the URL, a server
that filters by something else). A server that does not know ``name[]`` answers the whole
body: parsed as usual, nothing lost. One that answers it with nothing (prometheus_client's
multiprocess mode) is asked whole for :data:`REFRESH_POLLS` polls before the next try; one
that refuses the query (HTTP 4xx) is asked whole from then on.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from prometheus_client.metrics_core import Metric

from rooftop.exporter.sources.exposition import Families, get_family
from rooftop.exporter.sources.selective_parser import DeferredBuckets, FamilySelection

REFRESH_POLLS: Final = 30
"""Filtered polls between two whole bodies (by count, not time, so that a replayed recording
asks the same URLs in the same order)."""
MAX_QUERY_CHARS: Final = 6000
"""Longer queries are not sent: uvicorn (h11) refuses request heads over 16 KiB, other
servers at 8 KiB; a selection this wide saves little anyway."""
REFUSED_STATUSES: Final = frozenset((400, 404, 405, 413, 414, 422, 431))
"""Answers to a filtered URL that mean "not with that query": the engine is asked whole."""


def _has_samples(metric: Metric) -> bool:
    if isinstance(metric, DeferredBuckets) and metric.deferred:
        return metric.first_sample() is not None
    return bool(metric.samples)


def without_unread_alternates(families: Families, selection: FamilySelection) -> Families:
    """``families`` with the fallback of each ``selection.alternates`` pair emptied where its
    preferred family has samples (the adapter reads the preferred one then). Every poll reads
    this way, whole or filtered, so that a filtered body, which lacks the fallback, tracks the
    same counter series as a whole one."""
    unread: list[Metric] = []
    for preferred, fallback in selection.alternates:
        found = get_family(families, preferred)
        dropped = get_family(families, fallback)
        if found is not None and _has_samples(found) and dropped and _has_samples(dropped):
            unread.append(dropped)
    if not unread:
        return families
    out = dict(families)
    for metric in unread:
        out[metric.name] = Metric(metric.name, metric.documentation, metric.type, metric.unit)
    return out


def sample_names(families: Families, selection: FamilySelection) -> frozenset[str]:
    """The sample names to ask for: those of every family ``selection`` keeps, as parsed from a
    whole body (``_bucket`` lines only for the families whose buckets are kept or that hold
    nothing else; ``*_created`` never, rooftop drops them)."""
    names: set[str] = set()
    for name, metric in families.items():
        if not selection.keeps(name):
            continue
        if isinstance(metric, DeferredBuckets) and metric.deferred:
            names.update(sample.name for sample in metric.plain_samples())
            if metric.first_sample() is not None:
                names.add(name + "_bucket")
        else:
            names.update(sample.name for sample in metric.samples)
    return frozenset(n for n in names if not n.endswith("_created"))


def filtered_url(url: str, names: Iterable[str]) -> str | None:
    """``url`` with one ``name[]`` parameter per name (after any query it has), or ``None``
    when there is nothing to ask for or the query would be too long."""
    ordered = sorted(names)
    if not ordered:
        return None
    query = "&".join("name[]=" + urllib.parse.quote(name, safe=":") for name in ordered)
    if len(query) > MAX_QUERY_CHARS:
        return None
    parts = urllib.parse.urlsplit(url)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urllib.parse.urlunsplit(parts._replace(query=joined, fragment=""))


@dataclass
class NameFilter:
    """What a whole body taught about one engine: the filtered URL, and that body's families
    without their samples (the layer a filtered body is laid over)."""

    url: str
    skeleton: dict[str, Metric]
    expected: frozenset[str]
    """Families read that had samples: a filtered body without one of them is not trusted."""
    polls_left: int = REFRESH_POLLS

    @classmethod
    def learn(cls, url: str, families: Families, selection: FamilySelection) -> NameFilter | None:
        """The filter for ``url`` after a whole body parsed with ``selection`` and passed
        through :func:`without_unread_alternates` (``None`` when nothing can be asked for by
        name)."""
        if selection.everything:
            return None
        target = filtered_url(url, sample_names(families, selection))
        if target is None:
            return None
        skeleton: dict[str, Metric] = {}
        expected: set[str] = set()
        for name, metric in families.items():
            if selection.keeps(name) and _has_samples(metric):
                expected.add(name)
                skeleton[name] = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            else:
                skeleton[name] = metric  # no samples: shared, never changed
        return cls(target, skeleton, frozenset(expected))

    @property
    def due(self) -> bool:
        """Whether the next poll may use the filtered URL (else a whole body is due)."""
        return self.polls_left > 0

    def overlay(self, filtered: Families) -> dict[str, Metric] | None:
        """The families a whole-body parse would give: the skeleton, with the filtered body's
        families in their place. ``None`` when the filtered body lacks a family that had
        samples (read the whole body instead)."""
        for name in self.expected:
            metric = filtered.get(name)
            if metric is None or not _has_samples(metric):
                return None
        out = dict(self.skeleton)
        for name, metric in filtered.items():
            if name in out and not _has_samples(metric) and name not in self.expected:
                continue  # an empty family: the whole body's entry says the same
            out[name] = metric
        self.polls_left -= 1
        return out


__all__ = [
    "MAX_QUERY_CHARS",
    "REFRESH_POLLS",
    "REFUSED_STATUSES",
    "NameFilter",
    "filtered_url",
    "sample_names",
    "without_unread_alternates",
]
