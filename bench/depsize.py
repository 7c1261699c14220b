"""Installed size of the client's dependencies: the base (no extras) dependency closure, read from site-packages."""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECT = "deepfake-detector"
METHOD = ("sum of the files each installed distribution lists in its RECORD (dist-info), over the closure of "
          f"`{PROJECT}`'s base Requires-Dist (markers evaluated, extras excluded), in this venv's site-packages")


@dataclass(frozen=True)
class DepSize:
    """Total MiB and the largest packages."""

    total_mb: float
    packages: dict[str, float]


def _norm(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _size_mb(dist: metadata.Distribution) -> float:
    """MiB on disk of the files a distribution installed."""
    total = 0
    for f in dist.files or []:
        p = Path(dist.locate_file(f))
        try:
            total += p.stat().st_size
        except OSError:
            continue
    return total / (1024 * 1024)


def closure(root: str = PROJECT) -> list[metadata.Distribution]:
    """The installed distributions `root` needs without extras (root excluded)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [(root, True)]
    while todo:
        name, is_root = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = _norm(req.name)
            if key not in seen:
                try:
                    seen[key] = metadata.distribution(req.name)
                except metadata.PackageNotFoundError:
                    continue
                todo.append((req.name, False))
    return list(seen.values())


def measure() -> DepSize:
    """Sizes of the closure, largest first."""
    sizes = {_norm(d.metadata["Name"]): _size_mb(d) for d in closure()}
    ordered = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    return DepSize(sum(sizes.values()), ordered)
