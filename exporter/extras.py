"""Optional dependencies: which extra installs which module, and the message when one is missing.

``pip install rooftop`` gives what ``rooftop serve`` needs. The other parts pull in libraries a
node exporter does not need, so they are extras (``pyproject.toml``'s
``[project.optional-dependencies]``); a command that needs a missing one says which to install
instead of ending in a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

EXTRA_FOR_MODULE: Mapping[str, str] = MappingProxyType(
    {
        "grafana_foundation_sdk": "dashboards",
        "grpc": "kubernetes",
        "rich": "top",
    }
)
"""Top-level import name of each optional dependency -> the extra that installs it."""


class MissingExtraError(RuntimeError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the {module!r} module, which is not installed; "
            f"install it with: pip install 'rooftop[{extra}]'"
        )
        self.feature = feature
        self.module = module
        self.extra = extra


def missing_extra(error: ImportError, feature: str) -> MissingExtraError | None:
    """The :class:`MissingExtraError` for ``error`` when it is an optional dependency failing to
    import (``None`` for anything else, which is a real bug and must not be hidden)."""
    name = getattr(error, "name", None) or ""
    module = name.partition(".")[0]
    extra = EXTRA_FOR_MODULE.get(module)
    if extra is None:
        return None
    return MissingExtraError(feature, module, extra)
