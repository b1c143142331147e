"""``rooftop dashboards``: write (or check) the Grafana dashboards and the Prometheus rules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rooftop.dashboards.generate import PACKAGE_DIR, stale_files, write_generated


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "dashboards",
        help="write the Grafana dashboards (JSON) and Prometheus rules (YAML)",
        description=(
            "Write rooftop's Grafana dashboards and Prometheus recording/alerting rules, "
            "generated from the dashboards package, into a directory (default: where they "
            "are committed)."
        ),
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=PACKAGE_DIR,
        help="directory to write into (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file is missing or out of date",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output_dir: Path = args.output_dir
    if args.check:
        stale = stale_files(output_dir)
        for relative in stale:
            regenerate = f"rooftop dashboards --output-dir {output_dir}"
            print(f"stale: {output_dir / relative} (run `{regenerate}`)")
        return 1 if stale else 0
    for path in write_generated(output_dir):
        print(f"wrote {path}")
    return 0
