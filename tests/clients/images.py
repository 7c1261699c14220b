"""Real image files made by the client-core tests (every refusal kind, EXIF, modes) and shared faces."""
from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "faces"


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    """Encode an image in memory, the way a user's file would arrive."""
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def noise_photo(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB image with no face."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (8, 10, 3), dtype=np.uint8))
    return small.resize(size, Image.Resampling.BICUBIC)


FACE_CROP_SOURCES = ("dfdc", "utkface", "mobilestylegan")
"""The shared data's sources of face crops, where the face fills most of the frame (0.7 to 1.0 of the long side);
`aaf` and `ffhq` are aligned photos with more around the face (0.5 to 0.7), see ../shared/data/README.md."""


def shared_faces(n: int, seed: int = 0, sources: tuple[str, ...] | None = None) -> list[Image.Image]:
    """n face images from ../shared/data/faces, spread over sources (all, or only `sources`, so a test keeps its
    faces when sources are added); skips (with the reason) without it."""
    manifest = FACES / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"shared face data not found at {FACES.resolve()} (needs ../shared beside the repo)")
    with open(manifest) as f:
        rows = [r for r in csv.DictReader(f) if sources is None or r["source"] in sources]
    by_source: dict[str, list[dict]] = {}
    for r in rows:
        by_source.setdefault(f"{r['source']}-{r['label']}", []).append(r)
    rng = random.Random(seed)
    per = max(1, n // len(by_source))
    picked = [r for g in by_source.values() for r in rng.sample(g, per)][:n]
    return [Image.open(FACES / r["path"]).convert("RGB") for r in picked]


def photo_with_faces(faces: list[tuple[Image.Image, tuple[int, int, int]]], size=(1600, 1200), seed=0) -> Image.Image:
    """A scene of the given size with each face pasted as (image, (x, y, side))."""
    scene = noise_photo(size, seed)
    for face, (x, y, side) in faces:
        scene.paste(face.resize((side, side), Image.Resampling.LANCZOS), (x, y))
    return scene
