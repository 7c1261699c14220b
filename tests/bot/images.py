"""Images the bot tests send: real faces from ../shared (skip when absent) and made-up edge cases."""
from __future__ import annotations

import csv
import io
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.helpers import SHARED

FACES = SHARED / "data" / "faces"


@lru_cache(maxsize=None)
def _face_paths() -> list[str]:
    """Face image paths from the shared manifest: generated (fake) and real photos, interleaved."""
    manifest = FACES / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"shared face data absent ({manifest}): the bot's face tests need real faces")
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fakes = [r["path"] for r in rows if r["source"] == "mobilestylegan"][:8]
    reals = [r["path"] for r in rows if r["source"] == "utkface"][:8]
    return [p for pair in zip(fakes, reals) for p in pair]


def face_photo(index: int = 0, fmt: str = "JPEG") -> bytes:
    """A 480x400 picture with one real face image pasted in (as a camera photo would frame it)."""
    path = FACES / _face_paths()[index % len(_face_paths())]
    face = Image.open(path).convert("RGB").resize((240, 240))
    canvas = Image.new("RGB", (480, 400), (150 + 10 * (index % 5), 160, 170))
    canvas.paste(face, (120, 80))
    buf = io.BytesIO()
    canvas.save(buf, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def no_face_png() -> bytes:
    """A landscape-like PNG with shapes and texture but no face."""
    rng = np.random.default_rng(6)
    sky = np.linspace(90, 220, 300, dtype=np.float32)[:, None, None] * np.ones((300, 400, 3), np.float32)
    noise = rng.normal(0, 12, (300, 400, 3))
    img = Image.fromarray(np.clip(sky + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.rectangle((40, 180, 160, 290), fill=(90, 60, 40))
    draw.polygon([(220, 290), (300, 140), (380, 290)], fill=(40, 110, 50))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    """The first 40% of a JPEG: what a cut-off upload looks like."""
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    return data[: int(len(data) * 0.4)]


PDF_DOCUMENT = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
"""A tiny non-image file (a PDF) for the 'not an image' case."""


def large_jpeg(seed: int, size: tuple[int, int] = (1600, 1200)) -> bytes:
    """A few-megabyte JPEG (noise at quality 100): large in bytes, within every limit."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=100)
    return buf.getvalue()


def pixel_bomb_png(side: int = 7500) -> bytes:
    """A tiny PNG that would decode to side x side pixels (over the 50 MP limit)."""
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG")
    return buf.getvalue()
