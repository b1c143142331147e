"""``rooftop dashboards``: write (or check) the Grafana dashboards and the Prometheus rules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rooftop.dashboards.generate import stale_files, write_generated
from rooftop.dashboards.prometheus_rules import DEFAULT_RUNBOOK_BASE_URL, RuleParameters


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "dashboards",
        help="write the Grafana dashboards (JSON) and Prometheus rules (YAML)",
        description=(
            "Write rooftop's Grafana dashboards and Prometheus recording/alerting rules, "
            "generated from the dashboards package, into a directory (default: the current "
            "one): rooftop-*.json and rules/rooftop.rules.yaml."
        ),
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("."),
        help="directory to write into (default: the current directory)",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=DEFAULT_RUNBOOK_BASE_URL,
        metavar="URL",
        help="absolute URL of the alerts runbook; each alert's runbook_url is "
        "<URL>#<alert name> (default %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file is missing or out of date",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output_dir: Path = args.output_dir
    try:
        params = RuleParameters(runbook_base_url=args.runbook_base_url)
    except ValueError as error:
        print(f"rooftop dashboards: {error}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(output_dir, params)
        for relative in stale:
            regenerate = f"rooftop dashboards --output-dir {output_dir}"
            print(f"stale: {output_dir / relative} (run `{regenerate}`)")
        return 1 if stale else 0
    try:
        written = write_generated(output_dir, params)
    except OSError as error:
        print(f"rooftop dashboards: cannot write into {output_dir}: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0
