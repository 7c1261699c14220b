"""Synthetic test images for the report, overlay and quality tests: made here, so nothing skips."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from clients.core.facecrop import Box


def clean_face(size: tuple[int, int] = (800, 600), face: Box | None = None, seed: int = 0) -> tuple[Image.Image, Box]:
    """A sharp, photo-like synthetic portrait: smooth background, camera noise, a drawn face with detail."""
    w, h = size
    face = face or Box(int(w * 0.36), int(h * 0.2), int(w * 0.28), int(h * 0.5))
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([90 + 60 * xx / w, 110 + 40 * yy / h, 140 - 30 * xx / w], axis=-1)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    x, y, fw, fh = face.x, face.y, face.w, face.h
    d.ellipse((x, y, x + fw, y + fh), fill=(224, 178, 150))                       # face
    d.ellipse((x - fw * 0.05, y - fh * 0.08, x + fw * 1.05, y + fh * 0.3), fill=(60, 40, 30))  # hair
    d.ellipse((x + fw * 0.05, y + fh * 0.18, x + fw * 0.95, y + fh * 0.95), fill=(226, 180, 152))
    for ex in (0.3, 0.7):                                                          # eyes, brows
        cx, cy = x + fw * ex, y + fh * 0.42
        d.ellipse((cx - fw * 0.1, cy - fh * 0.035, cx + fw * 0.1, cy + fh * 0.035), fill=(245, 245, 240))
        d.ellipse((cx - fw * 0.04, cy - fh * 0.03, cx + fw * 0.04, cy + fh * 0.03), fill=(70, 50, 30))
        d.ellipse((cx - fw * 0.015, cy - fh * 0.012, cx + fw * 0.015, cy + fh * 0.012), fill=(10, 10, 10))
        d.line((cx - fw * 0.12, cy - fh * 0.08, cx + fw * 0.1, cy - fh * 0.09), fill=(60, 40, 30), width=max(2, fw // 40))
    d.line((x + fw * 0.5, y + fh * 0.45, x + fw * 0.46, y + fh * 0.62), fill=(170, 120, 100), width=max(2, fw // 60))
    d.chord((x + fw * 0.32, y + fh * 0.66, x + fw * 0.68, y + fh * 0.8), 0, 180, fill=(170, 70, 80))
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32)
    arr += rng.normal(0, 6.0, arr.shape)                                           # sensor noise + skin texture
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), face


def jpeg_bytes(image: Image.Image, quality: int = 92, exif: bool = True) -> bytes:
    """JPEG-encode with a camera-like EXIF block (Make/Model) unless exif=False."""
    buf = io.BytesIO()
    kwargs = {}
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "TestCam"
        ex[0x0110] = "Model 1"
        kwargs["exif"] = ex.tobytes()
    image.save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    """Lossless PNG, as a screenshot tool saves it."""
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()
