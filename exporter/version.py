"""rooftop's version: the installed distribution's, so ``--version``, ``rooftop_build_info`` and
the wheel always agree with ``pyproject.toml``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def rooftop_version() -> str:
    """The installed ``rooftop`` distribution's version; ``0+unknown`` when the code runs from a
    checkout that was never installed (``pip install -e .`` fixes that)."""
    try:
        return version("rooftop")
    except PackageNotFoundError:
        return "0+unknown"


VERSION = rooftop_version()
