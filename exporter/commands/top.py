"""``rooftop top``: a live, top-like screen read from a running exporter's ``/metrics``.

One line of node totals, then a line per GPU and engine: the verdict in its colour (the
Grafana palette of :mod:`rooftop.exporter.roofline_svg`), decode SOL with a sparkline of its
last refreshes, token rates, batch and the reason. Keys: ``s`` cycles the sort key, ``r``
reverses it, ``q`` quits. At 80 columns the model and intensity columns give way to the reason.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import getpass
import os
import select
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from rooftop.exporter.roofline_svg import state_color
from rooftop.exporter.settings import DEFAULT_PORT
from rooftop.exporter.top import (
    SORT_KEYS,
    NotRooftopError,
    TargetKey,
    TopView,
    format_batch,
    format_intensity,
    format_rate,
    format_ratio,
    node_totals,
    parse_top,
    reason_text,
    row_key,
    sort_rows,
    sparkline,
    verdict_text,
)

DEFAULT_URL = f"http://localhost:{DEFAULT_PORT}/metrics"
USER_ENV = "ROOFTOP_TOP_USER"
PASSWORD_ENV = "ROOFTOP_TOP_PASSWORD"
MAX_BODY_BYTES = 32 * 1024 * 1024
SPARK_WIDTH = 10
"""Refreshes of decode SOL each row's sparkline shows."""


class TopError(Exception):
    """The exporter could not be read; the message says why and what to try."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "top",
        help="live table of each GPU's bottleneck, read from a running rooftop exporter",
        description="Read a rooftop exporter's /metrics and show, per GPU and engine: token "
        "rates, batch, decode speed-of-light share, arithmetic intensity against the ridge "
        f"point, and the verdict with its reason. Basic auth: --user (or ${USER_ENV}) with "
        f"the password in ${PASSWORD_ENV} (asked for on a terminal when unset).",
    )
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help="the exporter's base or metrics URL (default %(default)s; "
        "http://host:9753 means http://host:9753/metrics)",
    )
    parser.add_argument(
        "--sort",
        default="gpu",
        choices=SORT_KEYS,
        help="row order (default gpu; the others largest first); the s key cycles it",
    )
    parser.add_argument(
        "--reverse", action="store_true", help="reverse the order (the r key toggles it)"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="refresh interval (default %(default)s)",
    )
    parser.add_argument("--once", action="store_true", help="print one table and exit")
    parser.add_argument("--user", help=f"basic-auth user (default ${USER_ENV})")
    parser.add_argument(
        "--ca-file", metavar="FILE", help="CA certificate to trust for an https:// exporter"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="per-scrape timeout"
    )
    parser.set_defaults(func=run)


def fetch_metrics(
    url: str,
    timeout_seconds: float,
    authorization: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """GET ``url``; raise :class:`TopError` saying what went wrong."""
    headers = {"Accept": "text/plain", "User-Agent": "rooftop-top"}
    if authorization:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds, context=ssl_context) as reply:
            body: bytes = reply.read(MAX_BODY_BYTES + 1)
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise TopError(
                f"{url}: 401 Unauthorized; pass --user (or ${USER_ENV}) and set ${PASSWORD_ENV}"
            ) from None
        raise TopError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise TopError(
            f"{url}: cannot connect ({error.reason}); is `rooftop serve` running?"
        ) from None
    except (TimeoutError, OSError) as error:
        raise TopError(f"{url}: {error}") from None
    if len(body) > MAX_BODY_BYTES:
        raise TopError(f"{url}: body over {MAX_BODY_BYTES} bytes; not a rooftop exporter")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise TopError(f"{url}: body is not UTF-8 text; not a rooftop exporter") from None


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    right: bool = False
    wide_only: bool = False
    """Shown only on terminals of at least :data:`WIDE_COLUMNS` columns."""


WIDE_COLUMNS = 110
COLUMNS = (
    Column("GPU", 3, right=True),
    Column("ENGINE", 12),
    Column("MODEL", 26, wide_only=True),
    Column("VERDICT", 8),
    Column("SOL", 4, right=True),
    Column("SOL TREND", SPARK_WIDTH),
    Column("DEC/s", 6, right=True),
    Column("PRE/s", 6, right=True),
    Column("BATCH", 5, right=True),
    Column("AI VS RIDGE", 11, right=True, wide_only=True),
)
MIN_REASON_WIDTH = 8


def _fit(text: str, width: int, right: bool = False) -> str:
    if len(text) > width:
        text = text[: max(0, width - 1)] + "…" if width > 1 else text[:width]
    return text.rjust(width) if right else text.ljust(width)


def _state_style(state: str | None, gpu_up: bool | None) -> str:
    if state is None and gpu_up is False:
        return "bold red"
    return f"bold {state_color(state)}"


def header_line(view: TopView, width: int) -> Text:
    """One line of node totals: GPUs, engines, token rates, verdicts per state, snapshot age."""
    totals = node_totals(view)
    narrow = width < 100
    sep = " " if narrow else "  "
    line = Text(f"rooftop {view.version}", style="bold")
    if view.demo:
        line.append(" DEMO: simulated data" if width >= 100 else " DEMO", style="bold magenta")
    down = f" ({totals.gpus_down} down)" if totals.gpus_down else ""
    line.append(
        f"{sep}{totals.gpus} GPU{'s' * (totals.gpus != 1)}{down}", style="bold red" if down else ""
    )
    engines = "eng" if narrow else "engine" + "s" * (totals.engines != 1)
    line.append(f"{sep}{totals.engines} {engines}")
    line.append(
        f"{sep}dec {format_rate(totals.decode_tokens_per_second)}/s"
        f"{sep}pre {format_rate(totals.prefill_tokens_per_second)}/s"
        if narrow
        else f"{sep}decode {format_rate(totals.decode_tokens_per_second)} tok/s"
        f"{sep}prefill {format_rate(totals.prefill_tokens_per_second)} tok/s"
    )
    for state in ("compute", "memory", "latency", "idle", "unknown"):
        if totals.states.get(state):
            name = state[:3] if narrow else state
            line.append(f"{sep}{name} {totals.states[state]}", style=_state_style(state, True))
    if view.snapshot_age_seconds is not None:
        age = f"{view.snapshot_age_seconds:.1f}s"
        line.append(f"{sep}{age}" if narrow else f"{sep}age {age}", style="dim")
    line.truncate(width, overflow="ellipsis")
    return line


def render_table(
    view: TopView,
    url: str,
    width: int = 120,
    history: Mapping[TargetKey, Sequence[float | None]] | None = None,
    sort: str = "gpu",
    reverse: bool = False,
    keys_help: bool = False,
) -> Group:
    """The screen for one view at ``width`` columns: the totals line, a status line, the column
    header, one line per target sorted by ``sort``, and the sources that are down."""
    columns = [c for c in COLUMNS if width >= WIDE_COLUMNS or not c.wide_only]
    # A wide terminal gives the model its whole name (HF names run to ~40 characters).
    columns = [
        dataclasses.replace(c, width=min(44, max(c.width, width // 5))) if c.title == "MODEL" else c
        for c in columns
    ]
    used = sum(c.width for c in columns) + len(columns)
    reason_width = width - used
    show_reason = reason_width >= MIN_REASON_WIDTH
    status = Text(url, style="dim")
    status.append(f"  sort: {sort}{' (reversed)' if reverse else ''}", style="dim")
    if keys_help:
        status.append("  s sort · r reverse · q quit", style="dim")
    status.truncate(width, overflow="ellipsis")
    head = Text(" ".join(_fit(c.title, c.width, c.right) for c in columns), style="reverse bold")
    if show_reason:
        head.append(" " + _fit("REASON", reason_width), style="reverse bold")
    lines: list[Any] = [header_line(view, width), status, head]
    for row in sort_rows(view.rows, sort, reverse):
        verdict = verdict_text(row)
        cells = {
            "GPU": row.gpu or "–",
            "ENGINE": row.engine or "–",
            "MODEL": row.model or "–",
            "VERDICT": verdict,
            "SOL": format_ratio(row.decode_speed_of_light_ratio),
            "SOL TREND": sparkline(list((history or {}).get(row_key(row), ())), SPARK_WIDTH),
            "DEC/s": format_rate(row.decode_tokens_per_second),
            "PRE/s": format_rate(row.prefill_tokens_per_second),
            "BATCH": format_batch(row.batch),
            "AI VS RIDGE": format_intensity(row),
        }
        line = Text()
        for index, column in enumerate(columns):
            if index:
                line.append(" ")
            text = _fit(cells[column.title], column.width, column.right)
            if column.title == "VERDICT":
                line.append(text, style=_state_style(row.state, row.gpu_up))
            elif column.title == "SOL TREND":
                line.append(text, style=state_color(row.state))
            else:
                line.append(text)
        if show_reason:
            line.append(" " + _fit(reason_text(row), reason_width), style="dim")
        lines.append(line)
    if not view.rows:
        lines.append(Text("waiting: no GPU or engine yet", style="dim"))
    if view.sources_down:
        down = Text("down: " + ", ".join(view.sources_down), style="red")
        down.truncate(width, overflow="ellipsis")
        lines.append(down)
    return Group(*lines)


class KeyReader:
    """Single keys from a terminal's stdin in cbreak mode (restored on exit); on anything but a
    terminal, :meth:`read` only waits."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._saved: Any = None
        self.interactive = False

    def __enter__(self) -> KeyReader:
        try:
            fd = self._stream.fileno()
            self.interactive = os.isatty(fd)
        except (AttributeError, OSError, ValueError):
            self.interactive = False
        if self.interactive:
            import termios
            import tty

            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.interactive and self._saved is not None:
            import termios

            termios.tcsetattr(self._stream.fileno(), termios.TCSADRAIN, self._saved)

    def read(self, timeout_seconds: float) -> str | None:
        """The next key, or ``None`` after ``timeout_seconds``."""
        if not self.interactive:
            time.sleep(max(0.0, timeout_seconds))
            return None
        ready, _, _ = select.select([self._stream], [], [], max(0.0, timeout_seconds))
        if not ready:
            return None
        return os.read(self._stream.fileno(), 1).decode(errors="replace")


def metrics_url(url: str) -> str:
    """``http://host:9753`` or ``http://host:9753/`` → ``http://host:9753/metrics``; a URL with
    any other path is taken as given (an exporter behind a path prefix)."""
    parts = urllib.parse.urlsplit(url)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit(parts._replace(path="/metrics"))
    return url


def _authorization(args: argparse.Namespace) -> str | None:
    user = args.user or os.environ.get(USER_ENV)
    if not user:
        return None
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        if not sys.stdin.isatty():
            raise ValueError(f"--user {user} needs the password in ${PASSWORD_ENV}")
        password = getpass.getpass(f"password for {user}: ")
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url {url!r} is not an http(s) URL such as {DEFAULT_URL}")


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        _check_url(args.url)
        if not 0.1 <= args.interval <= 3600:
            raise ValueError(f"--interval {args.interval} must be between 0.1 and 3600 seconds")
        authorization = _authorization(args)
        context = None
        if args.ca_file:
            try:
                context = ssl.create_default_context(cafile=args.ca_file)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"--ca-file {args.ca_file}: {error}") from None
    except ValueError as error:
        print(f"rooftop top: {error}", file=sys.stderr)
        return 2

    url = metrics_url(args.url)
    history: dict[TargetKey, deque[float | None]] = {}
    sort, reverse = args.sort, args.reverse

    def fetch() -> TopView:
        view = parse_top(fetch_metrics(url, args.timeout, authorization, context))
        for row in view.rows:
            history.setdefault(row_key(row), deque(maxlen=SPARK_WIDTH)).append(
                row.decode_speed_of_light_ratio
            )
        for gone in set(history) - {row_key(row) for row in view.rows}:
            del history[gone]  # bounded: only the rows on screen keep a sparkline
        return view

    try:
        if args.once:
            console.print(render_table(fetch(), url, console.width, history, sort, reverse))
            return 0
        view: TopView | None = fetch()
        problem: str | None = None
        with (
            KeyReader(sys.stdin) as keys,
            Live(console=console, screen=console.is_terminal, auto_refresh=False) as live,
        ):
            while True:
                if view is not None:
                    screen: Any = render_table(
                        view, url, console.width, history, sort, reverse, keys.interactive
                    )
                    if problem:
                        screen = Group(screen, Text(f"rooftop top: {problem}", style="red"))
                    live.update(screen, refresh=True)
                deadline = time.monotonic() + args.interval
                redraw = False
                while not redraw:
                    key = keys.read(deadline - time.monotonic())
                    if key is None:
                        break
                    if key in ("q", "Q"):
                        return 0
                    if key == "s":
                        sort = SORT_KEYS[(SORT_KEYS.index(sort) + 1) % len(SORT_KEYS)]
                        redraw = True
                    elif key == "r":
                        reverse, redraw = not reverse, True
                if redraw:
                    continue
                try:
                    view, problem = fetch(), None
                except TopError as exc:  # keep going: the exporter may be restarting
                    problem = str(exc)
    except (TopError, NotRooftopError) as error:
        print(f"rooftop top: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
