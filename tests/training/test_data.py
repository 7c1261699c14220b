"""The three data layouts load into one labelled, grouped list, and the split never cuts a group."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import DataLayoutError, detect_layout, load_samples, split_by_group


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)


def test_kaggle_layout(tmp_path):
    n = 0
    for split in ("Train", "Validation", "Test"):
        for cls in ("Real", "Fake"):
            for i in range(2):
                _png(tmp_path / split / cls / f"{cls}_{i}.jpg", n)
                n += 1
    samples = load_samples(tmp_path)
    assert detect_layout(tmp_path) == "kaggle"
    assert len(samples) == 12
    assert Counter(s.split for s in samples) == {"Train": 4, "Validation": 4, "Test": 4}
    assert all(s.label == (1 if "/Fake/" in s.path else 0) for s in samples)
    assert all(Path(s.path).is_absolute() and Path(s.path).exists() for s in samples)
    assert len({s.group for s in samples}) == 12, "same file name in two splits must not merge groups"


def test_flat_layout(tmp_path):
    for i in range(3):
        _png(tmp_path / "real" / f"r{i}.png", i)
        _png(tmp_path / "fake" / f"f{i}.webp", 10 + i)
    samples = load_samples(tmp_path)
    assert detect_layout(tmp_path) == "flat"
    assert sorted(s.label for s in samples) == [0, 0, 0, 1, 1, 1]
    assert {s.source for s in samples} == {tmp_path.name}


def test_manifest_layout_with_groups(tmp_path):
    rows = []
    for i in range(4):
        for label in ("real", "fake"):
            rel = f"vid/{label}/{i}.png"
            _png(tmp_path / rel, i)
            rows.append((rel, label, "vid", f"g{i}"))
    with (tmp_path / "manifest.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "source", "group"), *rows])
    for where in (tmp_path, tmp_path / "manifest.csv"):
        samples = load_samples(where)
        assert len(samples) == 8
        assert len({s.group for s in samples}) == 4
        assert all(Path(s.path).exists() for s in samples)


def test_unknown_layout_is_an_error(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataLayoutError):
        load_samples(tmp_path)


def _grouped(n_groups: int = 60):
    from training.data import Sample

    out = []
    for g in range(n_groups):
        out += [Sample(f"/x/swap/{g}_r.jpg", 0, "swap", f"swap/{g}"), Sample(f"/x/swap/{g}_f.jpg", 1, "swap", f"swap/{g}")]
        out.append(Sample(f"/x/gan/{g}.jpg", 1, "gan", f"gan/{g}"))
        out.append(Sample(f"/x/photo/{g}.jpg", 0, "photo", f"photo/{g}"))
    return out


def test_a_group_never_straddles_the_split():
    samples = _grouped()
    train, val = split_by_group(samples, 0.2, seed=3)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert len(train) + len(val) == len(samples)


def test_split_is_stratified_and_deterministic():
    samples = _grouped()
    train, val = split_by_group(samples, 0.2, seed=3)
    again, _ = split_by_group(list(reversed(samples)), 0.2, seed=3)
    assert sorted(s.path for s in train) == sorted(s.path for s in again)
    counts = Counter((s.source, s.label) for s in val)
    for key in (("swap", 0), ("swap", 1), ("gan", 1), ("photo", 0)):
        assert counts[key] == 12, key
    other, _ = split_by_group(samples, 0.2, seed=4)
    assert sorted(s.path for s in other) != sorted(s.path for s in train)


def test_shared_manifest_split_keeps_dfdc_identities_apart():
    shared = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "faces" / "manifest.csv"
    if not shared.exists():
        pytest.skip(f"shared data not found at {shared}")
    samples = load_samples(shared)
    train, val = split_by_group(samples, 0.15, 1234)
    assert {s.group for s in train}.isdisjoint({s.group for s in val})
    assert {s.source for s in val} == {s.source for s in samples}
