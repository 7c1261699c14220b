"""Fixtures of the web page's tests: upload material (made here, or real faces from ../shared)."""
from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SHARED_FACES = REPO / ".." / "shared" / "data" / "faces"
PAGE = REPO / "clients" / "web" / "page.py"


def synthetic_png(seed: int = 0, size: tuple[int, int] = (320, 240)) -> bytes:
    """A faceless but valid photo-like PNG (gradient plus noise), made fresh for each test."""
    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    base = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    pixels = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def plain_png() -> bytes:
    """A valid PNG without a face (the page judges the whole image)."""
    return synthetic_png()


@pytest.fixture
def corrupt_jpeg() -> bytes:
    """The first part of a real JPEG: a file a user gets when an upload is cut off."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(synthetic_png(1))).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    return data[: len(data) // 3]


@pytest.fixture
def junk_jpg() -> bytes:
    """Bytes that are no image at all, under a .jpg name."""
    return bytes(random.Random(7).getrandbits(8) for _ in range(4000))


def shared_face_path() -> Path:
    """A real face photo from ../shared (skip, with the reason, where it is absent)."""
    manifest = SHARED_FACES / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"no shared face data at {SHARED_FACES.resolve()} (../shared is absent)")
    for line in manifest.read_text().splitlines()[1:]:
        path = line.split(",")[0]
        if path.startswith("utkface/"):
            candidate = SHARED_FACES / path
            if candidate.exists():
                return candidate
    pytest.skip("no utkface image listed in ../shared/data/faces/manifest.csv")


@pytest.fixture
def face_jpeg() -> bytes:
    """A real face photo (JPEG bytes), enlarged on a canvas so it looks like an ordinary upload."""
    face = Image.open(shared_face_path()).convert("RGB")
    canvas = Image.new("RGB", (face.width * 2, int(face.height * 1.6)), (200, 205, 210))
    canvas.paste(face.resize((face.width, face.height)), (face.width // 2, int(face.height * 0.3)))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=92)
    return buf.getvalue()
