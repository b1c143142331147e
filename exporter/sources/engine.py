"""An inference engine's HTTP metrics endpoint as a source: fetch, parse, detect, extract.

``EngineSource.poll()`` reads the configured URL (and the adapter's declared extra JSON endpoints
on the same origin), and returns one :class:`EngineReading` or raises an
:class:`EngineSourceError` saying what went wrong; the caller marks the source down for that
cycle. The GET itself is :mod:`rooftop.exporter.sources.http` (no redirects, no proxies, one
deadline, a body cap); the URL was validated once, by the settings model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from rooftop.exporter.sources.base import SourceKind
from rooftop.exporter.sources.counter_series import (
    START_TIME_FAMILIES,
    CounterContinuity,
    identity_of,
)
from rooftop.exporter.sources.engines import detect_engine
from rooftop.exporter.sources.engines.base import (
    EngineAdapter,
    EngineReading,
    ExtraEndpoint,
    Families,
    UnrecognisedExpositionError,
)
from rooftop.exporter.sources.exposition import (
    DEFAULT_MAX_SERIES,
    ExpositionError,
    parse_exposition,
)
from rooftop.exporter.sources.http import Fetch, FetchError, describe, fetch_text, on_headers
from rooftop.exporter.sources.name_filter import (
    REFRESH_POLLS,
    REFUSED_STATUSES,
    NameFilter,
    without_unread_alternates,
)
from rooftop.exporter.sources.reading_checks import CUMULATIVE_FIELDS, check_reading
from rooftop.exporter.sources.selective_parser import NAMES_ONLY, FamilySelection

DEFAULT_TIMEOUT_SECONDS: Final = 2.0
DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024
"""A full vLLM exposition is ~100 KB per engine; 16 MiB is generous and still bounded."""
MAX_EXTRA_BODY_BYTES: Final = 1024 * 1024
MAX_BACKOFF_SECONDS: Final = 300.0
"""A 429/503 ``Retry-After`` is honoured up to this (a bad header cannot silence an engine)."""
LANE_WAIT_SECONDS: Final = 0.25
"""How long a poll waits for the reading lane before it reads its body beside the others."""

_READING_LANE: Final = threading.Lock()
"""One engine body read (parse, continuity, extract) at a time. Reading is pure Python: eight
engines reading at once only share the GIL, trading it every switch interval (which `serve`
keeps short for the scrapes), and the trades cost more CPU than the reading. Polls still fetch
in parallel; a body that takes long to read holds the others back at most
:data:`LANE_WAIT_SECONDS`, then they read beside it (no engine waits on another's fault)."""


BODY_SLOTS: Final = 2
_BODY_SLOTS: Final = threading.BoundedSemaphore(BODY_SLOTS)
"""Engine bodies being downloaded or read at once. The polls of a cycle start together and
fetch in parallel, but read one at a time (the lane): without slots every body waits in memory
for its turn (eight 0.5 MB engines: ~5 MB more at the peak of each cycle). A poll takes a slot
once its answer's headers are in (an engine that has not answered holds none) and gives it
back when its reading is done; one that waited :data:`LANE_WAIT_SECONDS` for a slot reads its
body without one (a body that trickles in holds the others back that long at most)."""


class _BodySlot:
    """One poll's body slot, and the timing of its answer (``answered``, called once)."""

    def __init__(self, answered: Callable[[], None] | None) -> None:
        self._answered = answered
        self._again: Callable[[], None] | None = None
        self._held = False

    def time_answer(self) -> None:
        if self._answered is not None:
            answered, self._answered = self._answered, None
            self._again = answered
            answered()

    def rearm(self) -> None:
        """Time the next answer again (a filtered body was set aside for a whole one: the
        reading's counters are those of the later answer)."""
        if self._again is not None and self._answered is None:
            self._answered = self._again

    def headers_in(self) -> None:
        self.time_answer()
        if not self._held:
            self._held = _BODY_SLOTS.acquire(timeout=LANE_WAIT_SECONDS)

    def give_back(self) -> None:
        if self._held:
            self._held = False
            _BODY_SLOTS.release()


@contextmanager
def _reading_lane() -> Iterator[None]:
    held = _READING_LANE.acquire(timeout=LANE_WAIT_SECONDS)
    try:
        yield
    finally:
        if held:
            _READING_LANE.release()


class EngineSourceError(Exception):
    """The engine could not be read this cycle; the message says why."""


class EngineFetchError(EngineSourceError):
    """HTTP-level failure: refused, DNS, timeout, HTTP status, truncated, oversized, not text."""


class EngineParseError(EngineSourceError):
    """The body is not a usable Prometheus exposition."""


class EngineUnrecognisedError(EngineSourceError):
    """No adapter recognises the exposition (or the configured one no longer does)."""


@functools.lru_cache(maxsize=64)
def _with_identity(selection: FamilySelection) -> FamilySelection:
    """The adapter's selection plus the families that tell one engine instance from another
    (process start time): counter continuity restarts the windows when it changes. Made once
    per adapter selection (a selection's set-up spells out every name: 0.1 ms a poll)."""
    missing = tuple(n for n in START_TIME_FAMILIES if n not in selection.names)
    if not missing:
        return selection
    return dataclasses.replace(selection, names=(*selection.names, *missing))


def endpoint_url(base_url: str, endpoint: ExtraEndpoint) -> str:
    """``endpoint.path`` on the scheme, host and port of ``base_url`` (never anywhere else)."""
    parts = urllib.parse.urlsplit(base_url)
    if not endpoint.path.startswith("/") or "//" in endpoint.path or "?" in endpoint.path:
        raise ValueError(f"extra endpoint path {endpoint.path!r} must be a plain absolute path")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, endpoint.path, "", ""))


class EngineSource:
    """One engine's metrics endpoint.

    ``adapter=None`` detects the engine on the first good read and keeps that adapter; if the
    exposition stops matching it (the engine was replaced), it detects again. A configured
    adapter is never swapped: a mismatch is an :class:`EngineUnrecognisedError`. A
    :class:`~rooftop.exporter.sources.base.Source` of kind ``engine``.
    """

    kind: SourceKind = "engine"

    def __init__(
        self,
        name: str,
        url: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        adapter: EngineAdapter | None = None,
        fetch: Fetch = fetch_text,
        max_series: int = DEFAULT_MAX_SERIES,
        *,
        correct_resets: bool = True,
        name_filter: bool = False,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"engine {name}: timeout_seconds must be > 0, got {timeout_seconds}")
        if max_body_bytes <= 0:
            raise ValueError(f"engine {name}: max_body_bytes must be > 0, got {max_body_bytes}")
        self.name = name
        self.url = url
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.max_series = max_series
        self._configured = adapter
        self._adapter = adapter
        self._fetch = fetch
        self._static_extras: dict[str, object] = {}
        self._continuity = CounterContinuity() if correct_resets else None
        self._backoff_until = 0.0
        self._backoff_reason = ""
        self._name_filter_wanted = name_filter
        self._name_filter: NameFilter | None = None
        self._name_filter_rest = 0
        """Whole polls before the next filter is learned: a filtered answer set aside (a
        server that answers ``name[]`` with nothing, as prometheus_client's multiprocess
        mode does) rests the filter for :data:`REFRESH_POLLS` polls, not for good."""
        """Set after a whole body was read (see :mod:`~rooftop.exporter.sources.name_filter`);
        ``name_filter=False`` (the default: ``probe`` compares whole bodies) never asks by name."""

    @property
    def adapter(self) -> EngineAdapter | None:
        """The adapter in use (``None`` until the first successful auto-detection)."""
        return self._adapter

    def poll(self, answered: Callable[[], None] | None = None) -> EngineReading:
        """Read the engine once. Raises :class:`EngineSourceError` on any failure.

        ``answered`` is called as soon as the answer is in (its headers, over HTTP), before the
        body waits for a body slot or the reading lane, or is parsed: the engine rendered its
        counters then, and its rates are timed there."""
        now = time.monotonic()
        if now < self._backoff_until:
            raise EngineFetchError(
                f"{self.url}: backing off {self._backoff_until - now:.0f} s more, "
                f"as the engine asked ({self._backoff_reason})"
            )
        slot = _BodySlot(answered)
        try:
            return self._poll(slot)
        finally:
            slot.give_back()

    def _poll(self, slot: _BodySlot) -> EngineReading:
        name_filter = self._name_filter
        if name_filter is not None and name_filter.due and self._adapter is not None:
            reading = self._poll_filtered(slot, self._adapter, name_filter)
            if reading is not None:
                return reading
            slot.rearm()
            self._name_filter_rest = REFRESH_POLLS  # set aside: rest the filter
        self._name_filter = None
        text = self._download(slot, self.url)
        with _reading_lane():
            try:
                adapter, families = self._parse(text)
            except ExpositionError as err:
                raise EngineParseError(f"{self.url}: {err}") from None
            if self._name_filter_rest > 0:
                self._name_filter_rest -= 1
            elif self._name_filter_wanted:
                self._name_filter = NameFilter.learn(
                    self.url, families, _with_identity(adapter.reads)
                )
        extras = self._fetch_extras(adapter)  # HTTP: outside the lane
        with _reading_lane():
            return self._read(adapter, families, extras)

    def _poll_filtered(
        self, slot: _BodySlot, adapter: EngineAdapter, name_filter: NameFilter
    ) -> EngineReading | None:
        """A poll of only the series read; ``None`` when the answer is not to be trusted (the
        caller then reads the whole body, in the same poll)."""
        try:
            with on_headers(slot.headers_in):
                text = self._fetch(name_filter.url, self.timeout_seconds, self.max_body_bytes)
        except FetchError as err:
            if err.status in REFUSED_STATUSES:
                self._name_filter_wanted = False  # the server refuses the query: ask whole
                return None
            failure = self._fetch_failure(err)
            raise EngineFetchError(str(failure).replace(name_filter.url, self.url)) from None
        except Exception as err:
            raise EngineFetchError(f"{self.url}: {describe(err)}") from None
        slot.time_answer()
        with _reading_lane():
            try:
                parsed = parse_exposition(
                    text, self.max_series, select=_with_identity(adapter.reads)
                )
            except ExpositionError:
                return None  # the whole body says what is wrong, if anything is
            families = name_filter.overlay(parsed)
            if families is None or not adapter.recognise(families):
                return None
        extras = self._fetch_extras(adapter)
        with _reading_lane():
            return self._read(adapter, families, extras)

    def _download(self, slot: _BodySlot, url: str) -> str:
        try:
            with on_headers(slot.headers_in):
                text = self._fetch(url, self.timeout_seconds, self.max_body_bytes)
        except FetchError as err:
            raise self._fetch_failure(err) from None
        except EngineSourceError:
            raise
        except Exception as err:
            raise EngineFetchError(f"{self.url}: {describe(err)}") from None
        slot.time_answer()  # a fetch that is not HTTP has no headers
        return text

    def _fetch_failure(self, err: FetchError) -> EngineFetchError:
        """The poll's error for a failed GET; a 429/503 with ``Retry-After`` starts a back-off."""
        if err.status in (429, 503) and err.retry_after_seconds is not None:
            wait = min(err.retry_after_seconds, MAX_BACKOFF_SECONDS)
            self._backoff_until = time.monotonic() + wait
            self._backoff_reason = f"HTTP {err.status}, Retry-After {wait:.0f} s"
            return EngineFetchError(f"{err}; backing off {wait:.0f} s (Retry-After)")
        return EngineFetchError(str(err))

    def _read(
        self, adapter: EngineAdapter, families: Families, extras: dict[str, object]
    ) -> EngineReading:
        """The reading of one parsed body: reset-corrected, extracted, checked."""
        if self._continuity is None:  # raw values as exposed (``probe`` compares them itself)
            try:
                return check_reading(adapter.extract(families, extras))
            except Exception as err:
                raise EngineParseError(
                    f"{self.url}: {adapter.family} adapter failed on this exposition: {err!r}"
                ) from None
        changed = self._continuity.identity_changed(identity_of(adapter.family, families))
        continuity = self._continuity.apply(families)
        try:
            reading = adapter.extract(continuity.families, extras)
        except Exception as err:  # an adapter bug must not take the sampler down
            raise EngineParseError(
                f"{self.url}: {adapter.family} adapter failed on this exposition: {err!r}"
            ) from None
        restart = changed or continuity.restart_reason
        if restart is not None or continuity.poisoned:
            held: dict[str, object] = {}
            if continuity.counters_poisoned:
                # A rank held at its last value would make the sum lag, then catch up in one
                # poll: hold every counter this poll; the next good one spans the real time.
                held = {
                    name: None for name in CUMULATIVE_FIELDS if getattr(reading, name) is not None
                }
            notes = tuple(f"{name}: held (a series is poisoned)" for name in held)
            reading = dataclasses.replace(
                reading,
                restart_reason=restart,
                rejected=reading.rejected + continuity.poisoned + notes,
                **held,  # type: ignore[arg-type]
            )
        return check_reading(reading)

    def _parse(self, text: str) -> tuple[EngineAdapter, Families]:
        adapter, families = self._parse_whole(text)
        return adapter, without_unread_alternates(families, adapter.reads)

    def _parse_whole(self, text: str) -> tuple[EngineAdapter, Families]:
        """The adapter for ``text`` and the families it reads, parsed with its selection.

        The adapter in use is asked first, on its own selection (recognition reads only
        names it selects); detection, on the first read or when that adapter no longer
        recognises the body, runs on a names-only parse.
        """
        if self._adapter is not None:
            families = parse_exposition(
                text, self.max_series, select=_with_identity(self._adapter.reads)
            )
            if self._adapter.recognise(families):
                return self._adapter, families
        if self._configured is not None:
            raise EngineUnrecognisedError(
                f"{self.url}: no longer looks like {self._configured.family} "
                "(configured engine); check the URL or the engine setting"
            )
        names = parse_exposition(text, self.max_series, select=NAMES_ONLY)
        try:
            adapter, _reason = detect_engine(names)
        except UnrecognisedExpositionError as err:
            raise EngineUnrecognisedError(f"{self.url}: {err}") from None
        if self._adapter is not adapter:
            self._static_extras.clear()
        self._adapter = adapter
        return adapter, parse_exposition(
            text, self.max_series, select=_with_identity(adapter.reads)
        )

    def _fetch_extras(self, adapter: EngineAdapter) -> dict[str, object]:
        extras: dict[str, object] = {}
        for endpoint in adapter.extra_endpoints:
            if not endpoint.every_poll and endpoint.name in self._static_extras:
                extras[endpoint.name] = self._static_extras[endpoint.name]
                continue
            try:
                text = self._fetch(
                    endpoint_url(self.url, endpoint), self.timeout_seconds, MAX_EXTRA_BODY_BYTES
                )
                document: object = json.loads(text)
            except (FetchError, EngineSourceError, ValueError):
                continue  # optional: its quantities stay None and are listed as missing
            extras[endpoint.name] = document
            if not endpoint.every_poll:
                self._static_extras[endpoint.name] = document
        return extras
