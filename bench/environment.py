"""What the figures were measured on: machine, versions, date, and whether the machine was otherwise idle."""
from __future__ import annotations

import datetime as dt
import os
import platform
from importlib import metadata
from pathlib import Path

VERSIONED = ("tensorflow", "grpcio", "pillow", "protobuf", "numpy", "opencv-python-headless", "fpdf2")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cores() -> int:
    """CPUs this process may run on (what thread pools see)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def versions() -> dict[str, str]:
    """Python and the packages whose speed the figures depend on."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def load_average() -> tuple[float, float, float]:
    """1/5/15-minute load averages: near 0 means nothing else was running."""
    return os.getloadavg()


def busy_processes(min_cpu_percent: float = 20.0, sample_s: float = 1.0) -> list[str]:
    """Other processes using at least `min_cpu_percent` of a core over a short sample (from /proc)."""
    import time

    def ticks() -> dict[int, tuple[int, str]]:
        out = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                name = stat[stat.index("(") + 1:stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2:].split()
                out[int(d.name)] = (int(fields[11]) + int(fields[12]), name)
            except (OSError, ValueError, IndexError):
                continue
        return out

    hz = os.sysconf("SC_CLK_TCK")
    a = ticks()
    time.sleep(sample_s)
    b = ticks()
    me = os.getpid()
    busy = []
    for pid, (t, name) in b.items():
        if pid == me or pid not in a:
            continue
        pct = 100.0 * (t - a[pid][0]) / hz / sample_s
        if pct >= min_cpu_percent:
            busy.append(f"{name} (pid {pid}, {pct:.0f}% of a core)")
    return busy


def now_utc() -> str:
    """The date and time of the run, UTC."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
