"""The inputs the benchmark sends: a real face crop as the client encodes it, and a 12 MP photo with a face."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO / ".." / "shared" / "data" / "faces"
PHOTO_SIZE = (4000, 3000)


@dataclass(frozen=True)
class Inputs:
    """A face image, its crop bytes (what analyze sends), its pixels (what serving_default takes), a 12 MP JPEG."""

    face: Image.Image
    face_source: str
    crop_png: bytes
    pixels: np.ndarray
    photo_jpeg: bytes


def shared_face() -> tuple[Image.Image, str] | None:
    """The first real face of the shared data set (None when /work/shared is absent)."""
    manifest = SHARED_FACES / "manifest.csv"
    if not manifest.is_file():
        return None
    with open(manifest) as f:
        for row in csv.DictReader(f):
            if row["label"] == "real":
                path = SHARED_FACES / row["path"]
                if path.is_file():
                    return Image.open(path).convert("RGB"), f"shared/data/faces/{row['path']}"
    return None


def synthetic_face(side: int = 256) -> Image.Image:
    """A drawn face (skin oval, eyes, nose, mouth): only when the shared faces are absent."""
    from PIL import ImageDraw

    img = Image.new("RGB", (side, side), (200, 200, 205))
    d = ImageDraw.Draw(img)
    s = side / 256
    d.ellipse([48 * s, 24 * s, 208 * s, 232 * s], fill=(224, 180, 150))
    for x in (96, 160):
        d.ellipse([(x - 14) * s, 98 * s, (x + 14) * s, 116 * s], fill=(250, 250, 250))
        d.ellipse([(x - 6) * s, 100 * s, (x + 6) * s, 114 * s], fill=(60, 40, 30))
    d.polygon([(128 * s, 118 * s), (116 * s, 160 * s), (140 * s, 160 * s)], fill=(205, 160, 130))
    d.ellipse([100 * s, 180 * s, 156 * s, 196 * s], fill=(170, 80, 80))
    return img.filter(ImageFilter.GaussianBlur(1.5 * s))


def photo_with_face(face: Image.Image, size: tuple[int, int] = PHOTO_SIZE, seed: int = 0) -> bytes:
    """A 12 MP JPEG (quality 90): a smooth noisy background with the face pasted large, left of centre."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 60 * xx / w, 110 + 40 * yy / h, 140 - 50 * xx / w], axis=-1)
    small = rng.normal(0, 12, (h // 16, w // 16, 3)).astype(np.float32)
    texture = np.asarray(Image.fromarray(np.clip(small + 128, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                         np.float32) - 128
    img = Image.fromarray(np.clip(base + texture + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8))
    side = int(h * 0.4)
    img.paste(face.resize((side, side), Image.Resampling.LANCZOS), (int(w * 0.35), int(h * 0.25)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_inputs() -> Inputs:
    """Build every input once (the photo takes ~2 s)."""
    from clients.core.analyze import encode_crop
    from serving.contract import IMAGE_SIZE

    found = shared_face()
    face, source = found if found else (synthetic_face(), "synthetic drawn face (shared/data/faces absent)")
    crop, png = encode_crop(face)
    pixels = np.asarray(face.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR), np.float32)[None]
    return Inputs(face, source, png, pixels, photo_with_face(face))
