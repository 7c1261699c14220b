"""Process-wide thread pools for work that overlaps other work within a single check.

Decoding, PNG/JPEG encoding, image resampling and OpenCV's nets release the GIL, so on two cores a
working-image decode can run beside face detection, and the report's images can be encoded while its
page is laid out. Pools are made on first use: nothing starts at import time.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

MAX_WORKERS = 4
"""Enough for the overlapped jobs of two checks at once (the CLI's default --jobs); more only queue."""


def lazy_pool(workers: int, prefix: str) -> Callable[[], ThreadPoolExecutor]:
    """A function returning one shared pool of `workers` threads, made the first time it is called."""
    lock = threading.Lock()
    made: list[ThreadPoolExecutor] = []

    def get() -> ThreadPoolExecutor:
        with lock:
            if not made:
                made.append(ThreadPoolExecutor(workers, thread_name_prefix=prefix))
            return made[0]

    return get


background = lazy_pool(MAX_WORKERS, "overlap")
"""The pool for decodes, quality checks and report images that run beside other work."""
