"""``python -m rooftop.dashboards``: write the dashboards' JSON and the rule file, or check them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rooftop.dashboards.generate import PACKAGE_DIR, stale_files, write_generated
from rooftop.dashboards.prometheus_rules import DEFAULT_RUNBOOK_BASE_URL, RuleParameters


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rooftop.dashboards",
        description="Generate rooftop's Grafana dashboards (JSON) and Prometheus rules (YAML).",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=PACKAGE_DIR,
        help="directory to write into (default: the dashboards package, where they are committed)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file is missing or differs from what the code generates",
    )
    parser.add_argument(
        "--runbook-base-url",
        default=DEFAULT_RUNBOOK_BASE_URL,
        metavar="URL",
        help="absolute URL of the alerts runbook (default %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        params = RuleParameters(runbook_base_url=args.runbook_base_url)
    except ValueError as error:
        parser.error(str(error))
    if args.check:
        stale = stale_files(args.output_dir, params)
        for relative in stale:
            print(f"stale: {args.output_dir / relative} (run `python -m rooftop.dashboards`)")
        return 1 if stale else 0
    for path in write_generated(args.output_dir, params):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
