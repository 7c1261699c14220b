"""Figures of a reliability run: each test records what it tried and saw, for tests/reliability/README.md."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(os.environ.get("RELIABILITY_OUT", REPO / "build" / "reliability"))


def record(name: str, figures: dict) -> Path:
    """Write one test's figures to build/reliability/<name>.json and print them (pytest -s shows them)."""
    OUT.mkdir(parents=True, exist_ok=True)
    figures = {"test": name, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(figures, indent=1, default=str))
    print(f"\n[reliability] {name}: {json.dumps(figures, default=str)}")
    return path


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/PID/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]
