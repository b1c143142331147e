"""``python -m rooftop.dashboards``: write the dashboards' JSON and the rule file, or check them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rooftop.dashboards.generate import PACKAGE_DIR, stale_files, write_generated


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
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.output_dir)
        for relative in stale:
            print(f"stale: {args.output_dir / relative} (run `python -m rooftop.dashboards`)")
        return 1 if stale else 0
    for path in write_generated(args.output_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
