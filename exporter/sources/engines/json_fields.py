"""Typed, never-raising reads from the JSON bodies of extra endpoints (`/info`, `/props`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def json_path(document: object, *keys: str | int) -> object:
    """``document[k1][k2]...`` or ``None`` where a key is absent or a level has the wrong type."""
    node = document
    for key in keys:
        if isinstance(key, int):
            if not isinstance(node, Sequence) or isinstance(node, str | bytes):
                return None
            if not -len(node) <= key < len(node):
                return None
            node = node[key]
        else:
            if not isinstance(node, Mapping):
                return None
            node = node.get(key)
    return node


def json_number(document: object, *keys: str | int) -> float | None:
    """A finite number at ``keys`` (booleans are not numbers), else ``None``."""
    value = json_path(document, *keys)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def json_text(document: object, *keys: str | int) -> str | None:
    """A non-empty string at ``keys``, else ``None``."""
    value = json_path(document, *keys)
    return value if isinstance(value, str) and value.strip() else None


def json_list(document: object, *keys: str | int) -> list[object]:
    """The list at ``keys``, else an empty list."""
    value = json_path(document, *keys)
    return list(value) if isinstance(value, list) else []
