"""Process-wide memory settings for the exporter daemon.

Each engine is polled on its own thread, and glibc gives every thread that allocates its own
malloc arena (up to 8 per core), which keeps the pages of every ~0.5 MB exposition body it once
held. Two arenas are enough for a process whose threads mostly wait on sockets; measured with
eight 4,160-series engines (benchmarks/side_by_side.py): RSS 62.6 MB with the default, 58.8 MB
with two arenas, same CPU. (A fixed mmap threshold saved 5 MB more but cost ~40 % more CPU in
page faults, so it is not set.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt`` parameter number in glibc's ``malloc.h``."""


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas; call before the worker threads start. ``False`` where the C
    library is not glibc (musl, macOS) or refuses; nothing changes then."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", arenas)
    return done
