"""A fake NVML backend driven by a JSON file that another process rewrites.

The validation script's dry run (``scripts/validate_gpu.py --dry-run``) starts ``rooftop serve``
and ``rooftop record`` as processes, as on a GPU machine, and plays its stand-in workloads by
rewriting this file: ``{"gpus": [{FakeGpu fields}], "activity": [{"index": 0,
"dram_active": 0.9, ...}]}``. The devices come from the file at start; each later change of
the file's ``activity`` list is applied through :meth:`FakeNvmlBackend.set_activity` (base
units: ratios 0-1, bytes/s, Hz, W) when the source next counts the GPUs (every cycle). A file
caught mid-write is ignored until the next change.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rooftop.exporter.demo.nvml_fake import FakeNvmlBackend

log = logging.getLogger(__name__)


class ScriptedFakeNvmlBackend(FakeNvmlBackend):
    """:class:`FakeNvmlBackend` whose activity follows ``path`` (see the module doc)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(FakeNvmlBackend.from_json(self.path).gpus)
        self._seen: tuple[int, int] | None = None
        self._apply()

    def nvmlDeviceGetCount(self) -> int:
        self._apply()
        return super().nvmlDeviceGetCount()

    def _apply(self) -> None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._seen:
            return
        try:
            data: Any = json.loads(self.path.read_text())
            activity = data.get("activity", []) if isinstance(data, dict) else []
            for entry in activity:
                entry = dict(entry)
                self.set_activity(int(entry.pop("index", 0)), **entry)
        except (ValueError, TypeError, IndexError, AttributeError) as error:
            log.warning("%s: activity not applied: %s", self.path, error)
            return
        self._seen = stamp


__all__ = ["ScriptedFakeNvmlBackend"]
