"""JSON forms of what the boundaries return, and line deltas for repeated HTTP bodies.

NVML values: the backend's plain frozen types (:class:`PciInfo`, :class:`MemoryInfo`,
:class:`Utilization`, :class:`GpmMetricValue`) become ``{"$": "<type>", <fields>}``; tuples
``{"$": "tuple", "v": [...]}``; opaque handles ``{"$": "handle", "token": "gpu0"}``. Floats
keep NaN and infinities (Python's JSON reads them back), since NVML can hand those out and the
source must see them as it did live.

Bodies: an engine's exposition changes in a few lines between polls (its counters), so a body
is stored as the lines that differ from the previous body of the same key when that is
smaller: ``{"delta": [[line, text], ...], "lines": n}``. :class:`TextDeltas` both ways.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

from rooftop.exporter.sources.nvml_api import GpmMetricValue, MemoryInfo, PciInfo, Utilization

VALUE_TYPES: Final[dict[str, type[Any]]] = {
    "PciInfo": PciInfo,
    "MemoryInfo": MemoryInfo,
    "Utilization": Utilization,
    "GpmMetricValue": GpmMetricValue,
}


class CodecError(ValueError):
    """A recorded value has a shape no backend call returns."""


def encode_value(value: Any, handle_token: Callable[[Any], str | None]) -> Any:
    """``value`` as JSON; ``handle_token`` names opaque handles (None: not a handle)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    token = handle_token(value)
    if token is not None:
        return {"$": "handle", "token": token}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [encode_value(item, handle_token) for item in value]}
    if isinstance(value, list):
        return [encode_value(item, handle_token) for item in value]
    name = type(value).__name__
    if name in VALUE_TYPES and dataclasses.is_dataclass(value):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"$": name, **fields}
    raise CodecError(f"cannot record a {name} returned by NVML")


def decode_value(data: Any, make_handle: Callable[[str], Any]) -> Any:
    """The inverse of :func:`encode_value`; ``make_handle`` turns a token into a handle."""
    if data is None or isinstance(data, bool | int | float | str):
        return data
    if isinstance(data, list):
        return [decode_value(item, make_handle) for item in data]
    if not isinstance(data, dict):
        raise CodecError(f"unexpected recorded value {data!r}")
    kind = data.get("$")
    if kind == "handle" and isinstance(data.get("token"), str):
        return make_handle(data["token"])
    if kind == "tuple" and isinstance(data.get("v"), list):
        return tuple(decode_value(item, make_handle) for item in data["v"])
    cls = VALUE_TYPES.get(str(kind))
    if cls is None:
        raise CodecError(f"unknown recorded value type {kind!r}")
    fields = {key: value for key, value in data.items() if key != "$"}
    try:
        return cls(**fields)
    except TypeError as error:
        raise CodecError(f"recorded {kind} does not fit this rooftop: {error}") from None


class TextDeltas:
    """Encodes successive bodies of each key as line deltas (and decodes them back)."""

    def __init__(self) -> None:
        self._last: dict[str, list[str]] = {}

    def encode(self, key: str, text: str) -> dict[str, Any]:
        lines = text.split("\n")
        previous = self._last.get(key)
        self._last[key] = lines
        if previous is not None and len(previous) == len(lines):
            changed = [(i, line) for i, line in enumerate(lines) if line != previous[i]]
            if sum(len(line) for _, line in changed) * 2 < len(text):
                return {"delta": [list(item) for item in changed], "lines": len(lines)}
        return {"text": text}

    def decode(self, key: str, data: dict[str, Any]) -> str:
        if "text" in data:
            if not isinstance(data["text"], str):
                raise CodecError(f"{key}: recorded body is not text")
            self._last[key] = data["text"].split("\n")
            return data["text"]
        previous = self._last.get(key)
        delta, count = data.get("delta"), data.get("lines")
        if previous is None or not isinstance(delta, list) or count != len(previous):
            raise CodecError(f"{key}: a body delta without the body it applies to")
        lines = list(previous)
        for item in delta:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], int)
                or not 0 <= item[0] < len(lines)
                or not isinstance(item[1], str)
            ):
                raise CodecError(f"{key}: malformed body delta entry {item!r}")
            lines[item[0]] = item[1]
        self._last[key] = lines
        return "\n".join(lines)


__all__ = ["CodecError", "TextDeltas", "decode_value", "encode_value"]
