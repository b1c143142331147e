"""An inference engine's HTTP metrics endpoint as a source: fetch, parse, detect, extract.

``EngineSource.poll()`` reads the configured URL (and the adapter's declared extra JSON endpoints
on the same origin), and returns one :class:`EngineReading` or raises an
:class:`EngineSourceError` saying what went wrong; the caller marks the source down for that
cycle. It never follows redirects or URLs found in a response, ignores proxy environment
variables, bounds every read by a total deadline and a body-size cap.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Final

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
from rooftop.exporter.sources.selective_parser import NAMES_ONLY

DEFAULT_TIMEOUT_SECONDS: Final = 2.0
DEFAULT_MAX_BODY_BYTES: Final = 16 * 1024 * 1024
"""A full vLLM exposition is ~100 KB per engine; 16 MiB is generous and still bounded."""
MAX_EXTRA_BODY_BYTES: Final = 1024 * 1024
_CHUNK_BYTES: Final = 64 * 1024
_ACCEPT: Final = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"


class EngineSourceError(Exception):
    """The engine could not be read this cycle; the message says why."""


class EngineFetchError(EngineSourceError):
    """HTTP-level failure: refused, DNS, timeout, HTTP status, truncated, oversized, not text."""


class EngineParseError(EngineSourceError):
    """The body is not a usable Prometheus exposition."""


class EngineUnrecognisedError(EngineSourceError):
    """No adapter recognises the exposition (or the configured one no longer does)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> urllib.request.Request | None:
        raise EngineFetchError(
            f"{req.full_url} redirects (HTTP {code}) to {newurl}; configure that URL instead"
        )


_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _check_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EngineFetchError(f"{url!r} is not an http:// or https:// URL with a host")
    return parts


def fetch_bytes(url: str, timeout_seconds: float, max_bytes: int) -> bytes:
    """GET ``url`` and return at most ``max_bytes`` of body, within ``timeout_seconds`` in all.

    Raises :class:`EngineFetchError` naming the cause: refused, DNS, timeout, HTTP status,
    truncated body, body over the cap.
    """
    parts = _check_url(url)
    deadline = time.monotonic() + timeout_seconds
    headers = {"Accept": _ACCEPT, "User-Agent": "rooftop"}
    if parts.username is not None:
        # ``http://user:pass@host/metrics``: sent as basic auth, never as part of the host.
        credentials = f"{urllib.parse.unquote(parts.username)}:"
        credentials += urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    request = urllib.request.Request(url, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout_seconds) as response:
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise EngineFetchError(f"{url}: body not complete within {timeout_seconds} s")
                # read1: at most one recv, so the deadline is checked between chunks.
                chunk = response.read1(min(_CHUNK_BYTES, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise EngineFetchError(f"{url}: body over {max_bytes} bytes")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and size < int(declared):
                raise EngineFetchError(
                    f"{url}: response truncated after {size} of {declared} bytes"
                )
            return b"".join(chunks)
    except EngineFetchError:
        raise
    except urllib.error.HTTPError as err:
        raise EngineFetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise EngineFetchError(f"{url}: {_describe(err.reason)}") from None
    except http.client.IncompleteRead as err:
        raise EngineFetchError(
            f"{url}: response truncated after {len(err.partial)} bytes"
        ) from None
    except TimeoutError:
        raise EngineFetchError(f"{url}: no answer within {timeout_seconds} s") from None
    except (http.client.HTTPException, OSError, ValueError) as err:
        raise EngineFetchError(f"{url}: {_describe(err)}") from None


def _describe(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the engine running, and on this port?)"
    if isinstance(reason, socket.gaierror):
        return f"host name does not resolve ({reason.strerror or reason})"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, http.client.IncompleteRead):
        return f"response truncated after {len(reason.partial)} bytes"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "server closed the connection without a response"
    if isinstance(reason, ConnectionResetError):
        return "connection reset by the server"
    text = str(reason) or type(reason).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def fetch_text(url: str, timeout_seconds: float, max_bytes: int) -> str:
    """GET ``url`` and return its body as UTF-8 text (see :func:`fetch_bytes` for the limits)."""
    body = fetch_bytes(url, timeout_seconds, max_bytes)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise EngineFetchError(f"{url}: body is not UTF-8 text (binary data?)") from None


Fetch = Callable[[str, float, int], str]
"""``(url, timeout_seconds, max_bytes) -> text``; :func:`fetch_text` or a test fake."""


def endpoint_url(base_url: str, endpoint: ExtraEndpoint) -> str:
    """``endpoint.path`` on the scheme, host and port of ``base_url`` (never anywhere else)."""
    parts = _check_url(base_url)
    if not endpoint.path.startswith("/") or "//" in endpoint.path or "?" in endpoint.path:
        raise ValueError(f"extra endpoint path {endpoint.path!r} must be a plain absolute path")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, endpoint.path, "", ""))


class EngineSource:
    """One engine's metrics endpoint.

    ``adapter=None`` detects the engine on the first good read and keeps that adapter; if the
    exposition stops matching it (the engine was replaced), it detects again. A configured
    adapter is never swapped: a mismatch is an :class:`EngineUnrecognisedError`.
    """

    def __init__(
        self,
        name: str,
        url: str,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        adapter: EngineAdapter | None = None,
        fetch: Fetch = fetch_text,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        _check_url(url)
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

    @property
    def adapter(self) -> EngineAdapter | None:
        """The adapter in use (``None`` until the first successful auto-detection)."""
        return self._adapter

    def poll(self) -> EngineReading:
        """Read the engine once. Raises :class:`EngineSourceError` on any failure."""
        try:
            text = self._fetch(self.url, self.timeout_seconds, self.max_body_bytes)
        except EngineSourceError:
            raise
        except Exception as err:
            raise EngineFetchError(f"{self.url}: {_describe(err)}") from None
        try:
            adapter, families = self._parse(text)
        except ExpositionError as err:
            raise EngineParseError(f"{self.url}: {err}") from None
        extras = self._fetch_extras(adapter)
        try:
            return adapter.extract(families, extras)
        except Exception as err:  # an adapter bug must not take the sampler down
            raise EngineParseError(
                f"{self.url}: {adapter.family} adapter failed on this exposition: {err!r}"
            ) from None

    def _parse(self, text: str) -> tuple[EngineAdapter, Families]:
        """The adapter for ``text`` and the families it reads, parsed with its selection.

        The adapter in use is asked first, on its own selection (recognition reads only
        names it selects); detection, on the first read or when that adapter no longer
        recognises the body, runs on a names-only parse.
        """
        if self._adapter is not None:
            families = parse_exposition(text, self.max_series, select=self._adapter.reads)
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
        return adapter, parse_exposition(text, self.max_series, select=adapter.reads)

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
            except (EngineSourceError, ValueError):
                continue  # optional: its quantities stay None and are listed as missing
            extras[endpoint.name] = document
            if not endpoint.every_poll:
                self._static_extras[endpoint.name] = document
        return extras
