"""``python -m rooftop.dashboards``: ``rooftop dashboards`` writing into this package's folder.

There is one dashboards command (``exporter/commands/dashboards.py``); this entry point only
points its ``--output-dir`` at the folder where the generated files are committed, so that
``python -m rooftop.dashboards`` regenerates them and ``python -m rooftop.dashboards --check``
says which are stale. An ``--output-dir`` given here still wins (argparse keeps the last one).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from rooftop.exporter.cli import main as rooftop_main

PACKAGE_DIR = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    return rooftop_main(["dashboards", "--output-dir", str(PACKAGE_DIR), *arguments])


if __name__ == "__main__":
    sys.exit(main())
