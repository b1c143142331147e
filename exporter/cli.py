"""The ``rooftop`` command line: one sub-command per module in ``exporter.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (``(argparse.Namespace) -> int``, the exit code) as the parser default.
Exit codes: 0 success, 1 runtime failure (a missing extra included), 2 bad input (names what
to fix).

Only the command being run is imported: ``rooftop serve`` never loads the terminal view's
renderer or the dashboard SDK (both are extras, and importing them costs start-up time). The
other commands appear in ``rooftop --help`` with the one-line summaries of :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rooftop.exporter.extras import MissingExtraError, missing_extra
from rooftop.exporter.version import VERSION


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    """The module under ``rooftop.exporter.commands`` whose ``register`` adds it."""
    summary: str
    """The one line ``rooftop --help`` shows; equal to the ``help`` the module registers."""


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        "serve",
        "run the exporter: poll GPUs and engines, serve /metrics",
    ),
    Command(
        "record",
        "record",
        "record what the sources read into a file that serve/probe --replay can replay",
    ),
    Command(
        "probe",
        "probe",
        "read one engine /metrics (URL or file) and show what rooftop extracts",
    ),
    Command(
        "plan",
        "plan",
        "speed-of-light decode for a model on a GPU (roofline, no GPU needed)",
    ),
    Command(
        "gpus",
        "catalogs",
        "list the GPU catalog (dense peaks, bandwidth, ridge point)",
    ),
    Command(
        "models",
        "catalogs",
        "list the built-in model architectures (parameters, KV bytes per token)",
    ),
    Command(
        "dashboards",
        "dashboards",
        "write the Grafana dashboards (JSON) and Prometheus rules (YAML)",
    ),
    Command(
        "top",
        "top",
        "live table of each GPU's bottleneck, read from a running rooftop exporter",
    ),
)


def command_named(argv: Sequence[str]) -> Command | None:
    """The command ``argv`` runs: its first word that is not an option (``None`` for none or an
    unknown word, which argparse then reports with the list of commands)."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return next((command for command in COMMANDS if command.name == word), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. With ``argv``, only the module of the command it names is imported and the
    others are listed by summary; without, every command is registered in full."""
    parser = argparse.ArgumentParser(
        prog="rooftop",
        description="Live roofline bottleneck monitor and Prometheus exporter for LLM inference.",
    )
    parser.add_argument("--version", action="version", version=f"rooftop {VERSION}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    selected = command_named(argv) if argv is not None else None
    registered: set[str] = set()
    for command in COMMANDS:
        full = argv is None or (selected is not None and command.module == selected.module)
        if not full:
            subparsers.add_parser(command.name, help=command.summary, add_help=False)
        elif command.module not in registered:
            module = importlib.import_module(f"rooftop.exporter.commands.{command.module}")
            module.register(subparsers)
            registered.add(command.module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    selected = command_named(arguments)
    feature = f"rooftop {selected.name}" if selected is not None else "rooftop"
    try:
        parser = build_parser(arguments)
        args = parser.parse_args(arguments)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        code: int = func(args)
    except MissingExtraError as error:
        print(f"rooftop: {error}", file=sys.stderr)
        return 1
    except ImportError as error:
        missing = missing_extra(error, feature)
        if missing is None:
            raise
        print(f"rooftop: {missing}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
