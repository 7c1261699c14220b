"""Labelled, grouped image lists from three layouts, and a group-disjoint split.

Layouts (auto-detected by `load_samples`):
- Kaggle "Deepfake and real images": `Train/`, `Validation/`, `Test/`, each with `Real/` and `Fake/`;
- flat `real/` and `fake/` folders;
- a `manifest.csv` with columns `path,label,source,group` (paths relative to the CSV's folder).

The split is made by `group` so that images of one source video never sit on both sides.
"""
from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
KAGGLE_SPLITS = ("Train", "Validation", "Test")
LABELS = {"real": 0, "fake": 1, "0": 0, "1": 1}


class DataLayoutError(ValueError):
    """The folder or file is none of the three layouts we read."""


@dataclass(frozen=True)
class Sample:
    """One image: absolute path, label (1 fake, 0 real), where it came from, and its split group."""

    path: str
    label: int
    source: str
    group: str
    split: str = ""
    """The split the dataset itself assigns (Kaggle's Train/Validation/Test), empty otherwise."""


def _images_in(folder: Path) -> list[Path]:
    """Image files under a folder, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _child(folder: Path, name: str) -> Path | None:
    """A sub-folder matched case-insensitively (Kaggle uses Real/Fake, others real/fake)."""
    for p in folder.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def load_manifest(csv_path: Path) -> list[Sample]:
    """Read `path,label,source,group` rows; labels may be real/fake or 0/1."""
    root = csv_path.parent
    samples = []
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            label = LABELS.get(str(row["label"]).strip().lower())
            if label is None:
                raise DataLayoutError(f"unknown label {row['label']!r} in {csv_path}")
            path = Path(row["path"])
            path = path if path.is_absolute() else root / path
            source = (row.get("source") or "unknown").strip()
            group = (row.get("group") or "").strip() or str(path)
            samples.append(Sample(str(path.resolve()), label, source, f"{source}/{group}"))
    return samples


def load_flat(root: Path, source: str | None = None) -> list[Sample]:
    """Read `real/` and `fake/` folders; every image is its own group."""
    source = source or root.name
    samples = []
    for name, label in (("real", 0), ("fake", 1)):
        folder = _child(root, name)
        if folder is None:
            continue
        for p in _images_in(folder):
            samples.append(Sample(str(p.resolve()), label, source, f"{source}/{p.stem}"))
    return samples


def load_kaggle(root: Path, source: str = "kaggle") -> list[Sample]:
    """Read Kaggle's Train/Validation/Test folders, keeping the dataset's split name."""
    samples = []
    for split in KAGGLE_SPLITS:
        folder = _child(root, split)
        if folder is None:
            continue
        for s in load_flat(folder, source):
            samples.append(Sample(s.path, s.label, source, f"{source}/{split}/{Path(s.path).stem}", split))
    return samples


def detect_layout(path: Path) -> str:
    """'manifest', 'kaggle' or 'flat', from what is at `path`."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return "manifest"
    if not path.is_dir():
        raise DataLayoutError(f"no such data folder or manifest: {path}")
    if (path / "manifest.csv").is_file():
        return "manifest"
    if any(_child(path, s) is not None for s in KAGGLE_SPLITS):
        return "kaggle"
    if _child(path, "real") is not None or _child(path, "fake") is not None:
        return "flat"
    raise DataLayoutError(f"{path}: expected manifest.csv, Train/Validation/Test, or real/ and fake/")


def load_samples(path: str | Path) -> list[Sample]:
    """Load any of the three layouts into one labelled, grouped list."""
    path = Path(path).expanduser().resolve()
    layout = detect_layout(path)
    if layout == "manifest":
        samples = load_manifest(path if path.is_file() else path / "manifest.csv")
    elif layout == "kaggle":
        samples = load_kaggle(path)
    else:
        samples = load_flat(path)
    if not samples:
        raise DataLayoutError(f"{path}: no images found")
    return samples


def split_by_group(samples: list[Sample], val_fraction: float = 0.15,
                   seed: int = 1234) -> tuple[list[Sample], list[Sample]]:
    """Group-disjoint train/validation split, stratified by (source, label), deterministic for a seed.

    Each group is put in the stratum of its first sample's (source, majority label); groups of each
    stratum are shuffled with the seed and the first `val_fraction` of them go to validation.
    """
    by_group: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_group[s.group].append(s)
    strata: dict[tuple[str, int], list[str]] = defaultdict(list)
    for group, members in by_group.items():
        label = int(round(sum(m.label for m in members) / len(members)))
        strata[(members[0].source, label)].append(group)
    val_groups: set[str] = set()
    for key in sorted(strata):
        groups = sorted(strata[key])
        random.Random(f"{seed}/{key[0]}/{key[1]}").shuffle(groups)
        n_val = int(round(len(groups) * val_fraction))
        if val_fraction > 0 and n_val == 0 and len(groups) > 1:
            n_val = 1
        val_groups.update(groups[:n_val])
    train = [s for s in samples if s.group not in val_groups]
    val = [s for s in samples if s.group in val_groups]
    return train, val


def limit_per_source(samples: list[Sample], max_per_source: int | None, seed: int = 1234) -> list[Sample]:
    """At most `max_per_source` images per (source, label), chosen by whole groups where possible, deterministic."""
    if not max_per_source:
        return samples
    by_key: dict[tuple[str, int], list[Sample]] = defaultdict(list)
    for s in samples:
        by_key[(s.source, s.label)].append(s)
    kept: set[str] = set()
    for key in sorted(by_key):
        items = sorted(by_key[key], key=lambda s: s.path)
        random.Random(f"{seed}/limit/{key[0]}/{key[1]}").shuffle(items)
        kept.update(s.path for s in items[:max_per_source])
    return [s for s in samples if s.path in kept]


def summarize(samples: list[Sample]) -> dict[str, dict[str, int]]:
    """Counts per source and label, for logs and the model card."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"real": 0, "fake": 0})
    for s in samples:
        out[s.source]["fake" if s.label else "real"] += 1
    return {k: dict(v) for k, v in sorted(out.items())}
