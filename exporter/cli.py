"""The ``rooftop`` command line: one sub-command per module in ``exporter.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (``(argparse.Namespace) -> int``, the exit code) as the parser default.
Exit codes: 0 success, 1 runtime failure, 2 bad input (names what to fix).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rooftop.exporter.version import VERSION

COMMAND_MODULES: tuple[str, ...] = (
    "serve",
    "record",
    "probe",
    "plan",
    "catalogs",
    "dashboards",
    "top",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rooftop",
        description="Live roofline bottleneck monitor and Prometheus exporter for LLM inference.",
    )
    parser.add_argument("--version", action="version", version=f"rooftop {VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"rooftop.exporter.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
