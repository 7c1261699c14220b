"""One small process-wide thread pool for work that overlaps other work within a single check.

Decoding, PNG/JPEG encoding and image resampling release the GIL, so on two cores a working-image decode
can run beside face detection, and the report's images can be encoded while its page is laid out.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

MAX_WORKERS = 4
"""Enough for the overlapped jobs of two checks at once (the CLI's default --jobs); more only queue."""

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def background() -> ThreadPoolExecutor:
    """The shared pool, made on first use (nothing starts at import time)."""
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="overlap")
        return _POOL
