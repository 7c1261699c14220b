"""Summaries of repeated measurements: median and spread, percentiles."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Summary:
    """Median and spread (min..max) of repeated measurements of one figure, plus p99 where it means something."""

    median: float
    low: float
    high: float
    n: int
    p99: float | None = None

    def fmt(self, digits: int = 1) -> str:
        """'12.3 (11.9-13.0)' for the table."""
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; the nearest rank for tiny samples."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarise(values: list[float]) -> Summary:
    """Median, min, max and p99 of a list of measurements."""
    if not values:
        raise ValueError("no measurements")
    return Summary(statistics.median(values), min(values), max(values), len(values), percentile(values, 99))


def timed_ms(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall time of one call in milliseconds, and its result."""
    t0 = time.perf_counter()
    out = fn()
    return 1000.0 * (time.perf_counter() - t0), out


def rate(fn: Callable[[], object], calls: int, images_per_call: int) -> float:
    """Images per second over `calls` back-to-back calls."""
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls * images_per_call / (time.perf_counter() - t0)
