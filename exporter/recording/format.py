"""The recording file: gzip-compressed JSON lines, one header, then one record per cycle.

Layout (each line one JSON object, ``kind`` first)::

    {"kind": "header", "format": 1, "rooftop_version": "0.1.0", "created_unix_seconds": ...,
     "settings": {...redacted...}, "nvml": {"driver_version": ..., "gpus": [...]}, ...}
    {"kind": "setup", "events": {...}}           # what start-up read (nvmlInit, discovery)
    {"kind": "cycle", "n": 0, "events": {...}, "published": {...}}
    {"kind": "cycle", "n": 1, "events": {...}, "late": {"0": {...}}, "published": {...}}
    ...
    {"kind": "end", "cycles": N, "late_events": 0}

``events`` maps a channel (``clock``, ``nvml``, ``http``, ``host``) to ``{key: [outcome,
...]}``: the answers the boundary gave, in call order per key. ``published`` is what the
recording rooftop published after the cycle (the verdict per target and a digest of the
exposition without its timestamp series), so a replay can check itself. ``late`` (optional)
holds, by cycle number, the events of earlier cycles whose answers came in after that cycle
was written (a slow engine); a replay puts them back in their own cycle. A reader that does
not know ``late`` replays those calls as gaps, as recordings without it did.

Compatibility: a reader accepts every format up to :data:`FORMAT_VERSION`; a newer format, or
a recording whose settings this rooftop cannot load, fails with :class:`RecordingError`
naming both rooftop versions. A recording is never trusted beyond its data: values are checked
where they enter the replaying boundaries.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rooftop.exporter.version import VERSION

FORMAT_VERSION: Final = 1
"""Bump when a reader of the previous format could misread a new file."""
MAX_LINE_CHARS: Final = 64 * 1024 * 1024
"""One cycle record above this is refused (a corrupt or hostile file, not a recording)."""


class RecordingError(ValueError):
    """The file is not a recording this rooftop can replay; the message says why and what to do."""


def rooftop_version() -> str:
    """This rooftop's version: the one from package metadata (:mod:`rooftop.exporter.version`)."""
    return VERSION


@dataclass
class Recording:
    """A recording read back: its header, start-up events and cycles, in order."""

    header: dict[str, Any]
    setup: dict[str, Any]
    cycles: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    """False when the file ends without its ``end`` record (the recorder was killed)."""

    @property
    def version(self) -> str:
        return str(self.header.get("rooftop_version", "unknown"))


class RecordingWriter:
    """Appends records to a gzip JSON-lines file; each record is flushed as it is written, so
    a recording cut short (the recorder killed) still reads back up to its last cycle."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._raw = self.path.open("wb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=9)

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), sort_keys=True, allow_nan=True)
        self._gzip.write(line.encode() + b"\n")
        self._gzip.flush()

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                if len(line) > MAX_LINE_CHARS:
                    raise RecordingError(f"{path}: line {number} is over {MAX_LINE_CHARS} chars")
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise RecordingError(f"{path}: line {number} is not JSON ({error})") from None
                if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
                    raise RecordingError(f"{path}: line {number} is not a recording record")
                yield number, record
    except (gzip.BadGzipFile, zlib.error) as error:
        raise RecordingError(f"{path}: not a gzip rooftop recording ({error})") from None
    except EOFError:
        return  # cut short mid-write: keep what was complete
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not a rooftop recording (binary content)") from None


def read_recording(path: str | Path) -> Recording:
    """Read and check a recording. Raises :class:`RecordingError` naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"{path}: no such recording file")
    lines = _lines(path)
    first = next(lines, None)
    if first is None or first[1].get("kind") != "header":
        raise RecordingError(f"{path}: does not start with a rooftop recording header")
    header = first[1]
    check_compatible(header, str(path))
    recording = Recording(header=header, setup={})
    for number, record in lines:
        kind = record["kind"]
        if kind == "setup":
            recording.setup = _events(record, path, number)
        elif kind == "cycle":
            _events(record, path, number)
            late = record.get("late", {})
            if not isinstance(late, dict):
                raise RecordingError(f"{path}: line {number}: 'late' must map cycle -> events")
            for events in late.values():
                _events({"events": events}, path, number)
            recording.cycles.append(record)
        elif kind == "end":
            recording.complete = True
        else:
            raise RecordingError(f"{path}: line {number} has unknown kind {kind!r}")
    return recording


def _events(record: Mapping[str, Any], path: Path, number: int) -> dict[str, Any]:
    events = record.get("events", {})
    if not isinstance(events, dict) or not all(
        isinstance(keys, dict) and all(isinstance(v, list) for v in keys.values())
        for keys in events.values()
    ):
        raise RecordingError(f"{path}: line {number}: 'events' must map channel -> key -> list")
    return events


def check_compatible(header: Mapping[str, Any], where: str) -> None:
    """Raise :class:`RecordingError` when this rooftop cannot read the recording's format."""
    fmt = header.get("format")
    theirs = header.get("rooftop_version", "unknown")
    ours = rooftop_version()
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise RecordingError(f"{where}: header has no integer 'format' (not a rooftop recording)")
    if fmt > FORMAT_VERSION:
        raise RecordingError(
            f"{where}: recording format {fmt} was written by rooftop {theirs}; this rooftop "
            f"{ours} reads formats up to {FORMAT_VERSION}: replay it with rooftop {theirs} "
            "or newer"
        )
    if fmt < 1:
        raise RecordingError(f"{where}: recording format {fmt} is not a valid format number")


__all__ = [
    "FORMAT_VERSION",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "check_compatible",
    "read_recording",
    "rooftop_version",
]
