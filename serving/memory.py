"""The embedded server's resident memory: fewer malloc arenas, freed heap handed back, cold library code dropped.

Linux and glibc specific; where either is missing (another C library, an old kernel, a sandbox that
refuses madvise) each step quietly does nothing, and the server behaves the same with more memory.

Most of a TensorFlow server's RSS is not its model: it is the native library itself. The pip wheel's
libtensorflow_cc.so is ~1 GiB (its CUDA kernels included), and loading a SavedModel and running the first
requests fault in hundreds of MiB of it (graph construction, restore, optimisation passes; on kernels that
map whole large folios on a fault, nearly all of its code) that no request touches again.
`page_out_libraries` asks the kernel to reclaim those pages (MADV_PAGEOUT) once a session is loaded; the
ones serving needs come back on their next use, which the warm-up requests that follow trigger at once."""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""glibc mallopt() parameter: the most malloc arenas threads may spread over."""
SERVER_MALLOC_ARENAS = 2
"""One arena per core: glibc's default (8 per core) lets the gRPC, batch and TensorFlow threads each keep
their own partly free heap, which shows up as resident memory and buys nothing on 2 cores."""
MADV_PAGEOUT = 21
"""Linux >= 5.4 madvise() advice: reclaim these pages now. It never loses data: clean file pages are
re-read from the file on their next use, and pages a process changed (relocations) stay where no swap is."""
TENSORFLOW_LIBRARIES = "/tensorflow/"
"""Mappings whose path holds this are TensorFlow's native libraries (libtensorflow_cc, _framework, ...)."""


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """glibc's functions via ctypes (opened once: the server trims after every burst), or None where the C
    library is not glibc (then memory tuning is skipped)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if not all(hasattr(libc, f) for f in ("malloc_trim", "mallopt", "madvise")):
        return None
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc


def limit_arenas() -> None:
    """Cap malloc arenas at one per core; must run before the threads that would create more."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, SERVER_MALLOC_ARENAS)


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise): after a load, an unload or a burst."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def file_mappings(maps: str, path_part: str) -> list[tuple[int, int]]:
    """(start, end) of every mapping in a /proc/PID/maps text whose file path contains `path_part`."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and path_part in fields[5]:
            start, end = fields[0].split("-")
            ranges.append((int(start, 16), int(end, 16)))
    return ranges


def status_mib(pid: int | str, fields: tuple[str, ...]) -> dict[str, float]:
    """The named kB fields of /proc/PID/status (VmRSS, VmHWM, RssAnon, ...) in MiB; raises OSError without /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in fields:
            out[key] = int(rest.split()[0]) / 1024
    return out


def resident_mib() -> float:
    """This process's VmRSS in MiB (0 where /proc is missing), for the log line that says what a drop bought."""
    try:
        return status_mib("self", ("VmRSS",)).get("VmRSS", 0.0)
    except OSError:
        return 0.0


def page_out_libraries(path_part: str = TENSORFLOW_LIBRARIES) -> int:
    """Ask the kernel to reclaim the resident pages of the mapped files whose path holds `path_part`.

    Returns how many mappings it was accepted for (0: nothing to do, or not supported here)."""
    libc = _libc()
    if libc is None:
        return 0
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return 0
    done = 0
    for start, end in file_mappings(maps, path_part):
        if libc.madvise(start, end - start, MADV_PAGEOUT) == 0:
            done += 1
        else:  # EINVAL before Linux 5.4 or where a sandbox filters it; ENOMEM if it was unmapped meanwhile
            log.debug("madvise(MADV_PAGEOUT) refused (errno %d): those pages stay resident", ctypes.get_errno())
    return done


def drop_load_only_code() -> str:
    """Reclaim the TensorFlow library code that building and restoring a session faulted in (most of the
    server's RSS, never run again): call it between loading and warm-up, which brings back what serving runs.

    Returns what it bought, for the AVAILABLE log line."""
    before = resident_mib()
    if not page_out_libraries():
        return ""
    return f"; RSS {before:.0f} -> {resident_mib():.0f} MiB after dropping load-only library pages"
