"""``rooftop top``: a live terminal table read from a running exporter's ``/metrics``."""

from __future__ import annotations

import argparse
import base64
import getpass
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from rooftop.exporter.settings import DEFAULT_PORT
from rooftop.exporter.top import (
    NotRooftopError,
    TopView,
    format_batch,
    format_intensity,
    format_rate,
    format_ratio,
    parse_top,
    reason_text,
    verdict_text,
)

DEFAULT_URL = f"http://localhost:{DEFAULT_PORT}/metrics"
USER_ENV = "ROOFTOP_TOP_USER"
PASSWORD_ENV = "ROOFTOP_TOP_PASSWORD"
MAX_BODY_BYTES = 32 * 1024 * 1024
STATE_STYLES = {"idle": "dim", "memory": "cyan", "compute": "green", "latency": "yellow"}


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
        help="the exporter's URL; /metrics is added to a base URL (default %(default)s)",
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


def render_table(view: TopView, url: str) -> Group:
    """The rich renderable for one view: a header line and the table."""
    title = Text(f"rooftop {view.version}  {url}", style="bold")
    if view.demo:
        title.append("  DEMO: simulated data", style="bold magenta")
    if view.snapshot_age_seconds is not None:
        title.append(f"  snapshot age {view.snapshot_age_seconds:.1f} s", style="dim")
    table = Table(expand=True, header_style="bold")
    table.add_column("GPU", no_wrap=True)
    table.add_column("engine", no_wrap=True)
    table.add_column("model", overflow="fold", max_width=32)
    table.add_column("prefill tok/s", justify="right", no_wrap=True)
    table.add_column("decode tok/s", justify="right", no_wrap=True)
    table.add_column("batch", justify="right", no_wrap=True)
    table.add_column("SOL", justify="right", no_wrap=True)
    table.add_column("AI vs ridge", justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=1)
    for row in view.rows:
        verdict = verdict_text(row)
        style = STATE_STYLES.get(verdict, "bold red" if row.gpu_up is False else "")
        table.add_row(
            row.gpu or "–",
            row.engine or "–",
            row.model or "–",
            format_rate(row.prefill_tokens_per_second),
            format_rate(row.decode_tokens_per_second),
            format_batch(row.batch),
            format_ratio(row.decode_speed_of_light_ratio),
            format_intensity(row),
            Text(verdict, style=style),
            reason_text(row),
        )
    if not view.rows:
        why = (
            "sources down: " + ", ".join(view.sources_down)
            if view.sources_down
            else "no GPU source and no engine found yet"
        )
        table.add_row("–", "–", "–", "", "", "", "", "", "none", why)
    parts: list[Any] = [title, table]
    if view.sources_down:
        parts.append(Text("down: " + ", ".join(view.sources_down), style="red"))
    return Group(*parts)


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


def metrics_url(url: str) -> str:
    """The ``/metrics`` URL for ``url``: an exporter's base URL (``http://host:9753`` or with a
    trailing ``/``) gets ``/metrics`` appended; any other path is used as given (a proxy may
    serve the exposition elsewhere). Raises ValueError for anything but an http(s) URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f" (did you mean http://{url}?)" if "://" not in url else ""
        raise ValueError(f"--url {url!r} is not an http(s) URL such as {DEFAULT_URL}{hint}")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urllib.parse.urlunsplit(parts)


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        url = metrics_url(args.url)
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

    def snapshot() -> Group:
        text = fetch_metrics(url, args.timeout, authorization, context)
        return render_table(parse_top(text), url)

    try:
        if args.once:
            console.print(snapshot())
            return 0
        with Live(snapshot(), console=console, screen=False, auto_refresh=False) as live:
            while True:
                time.sleep(args.interval)
                try:
                    live.update(snapshot(), refresh=True)
                except TopError as error:  # keep going: the exporter may be restarting
                    live.update(Text(f"rooftop top: {error}", style="red"), refresh=True)
    except (TopError, NotRooftopError) as error:
        print(f"rooftop top: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
