"""Pictures that explain a verdict: face boxes coloured by label, and the heatmap over a face crop.

Shared by the PDF report, the web page and the bot, so every client shows the same picture.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from clients.core.verdict import NO_FACE, FaceResult, Label, Verdict, score_text

FONT_DIR = Path(__file__).resolve().parent / "fonts"
LABEL_FONT = FONT_DIR / "DejaVuSans-Bold.ttf"

LABEL_COLOURS: dict[Label, tuple[int, int, int]] = {
    Label.FAKE: (214, 39, 40),
    Label.REAL: (44, 160, 44),
    Label.UNCERTAIN: (255, 160, 0),
    NO_FACE: (120, 120, 120),
}
"""Box colour per label: red for fake, green for real, amber for uncertain, grey for the whole-image check."""

_OTHER = (120, 120, 120)


def thumbnail(image: Image.Image, max_side: int = 1024) -> Image.Image:
    """An RGB copy whose longer side is at most max_side, for embedding and previews."""
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return out


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The shipped bold font at a pixel size (Pillow's own scalable font if it is missing)."""
    try:
        return ImageFont.truetype(str(LABEL_FONT), size)
    except OSError:
        return ImageFont.load_default(size=size)


def draw_boxes(image: Image.Image, verdict: Verdict) -> Image.Image:
    """A copy of the image with each face boxed in its label's colour and tagged '#n label confidence%'.

    Boxes are in Analysis.image coordinates (verdict.image_size); a resized image (a thumbnail)
    gets them scaled, so `draw_boxes(thumbnail(analysis.image), verdict)` works. Line width and
    text size follow the image size, so tags stay legible on a 300 px preview and a 12 MP photo.
    """
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    ref_w, ref_h = verdict.image_size if all(verdict.image_size) else out.size
    sx, sy = out.width / ref_w, out.height / ref_h
    long_side = max(out.size)
    width = max(2, round(long_side / 250))
    font = _font(max(11, round(long_side / 40)))
    draw = ImageDraw.Draw(out)
    for i, face in enumerate(verdict.faces, start=1):
        x, y, w, h = face.box
        left, top = round(x * sx), round(y * sy)
        right, bottom = round((x + w) * sx), round((y + h) * sy)
        colour = LABEL_COLOURS[NO_FACE] if verdict.whole_image else LABEL_COLOURS.get(face.label, _OTHER)
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        _tag(draw, tag_text(i, face, verdict.whole_image), (left, top, right, bottom), colour, font, out.size)
    return out


def tag_text(number: int, face: FaceResult, whole_image: bool = False) -> str:
    """'#1 real 98%': the label beside its own confidence, as every front end reports it. An uncertain face and
    the whole-image check (no face found) give their fake score instead, said so: neither is a firm verdict."""
    if whole_image:
        return f"whole-image check, fake score {score_text(face.fake_probability)}"
    if face.label == Label.UNCERTAIN:
        return f"#{number} uncertain, fake score {score_text(face.fake_probability)}"
    return f"#{number} {face.label} {face.confidence:.0%}"


def _tag(draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int, int, int], colour: tuple[int, int, int],
         font, size: tuple[int, int]) -> None:
    """A filled label above the box (inside it when there is no room above), kept inside the image."""
    left, top, right, _ = box
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (b - t) // 5)
    tw, th = r - l + 2 * pad, b - t + 2 * pad
    x0 = min(max(0, left), max(0, size[0] - tw))
    y0 = top - th if top - th >= 0 else top
    draw.rectangle((x0, y0, x0 + tw, y0 + th), fill=colour)
    text_colour = (0, 0, 0) if sum(colour) > 500 or colour == LABEL_COLOURS[Label.UNCERTAIN] else (255, 255, 255)
    draw.text((x0 + pad - l, y0 + pad - t), text, fill=text_colour, font=font)


def heatmap_array(heatmap, size: tuple[int, int]) -> np.ndarray:
    """The heatmap upsampled smoothly (bicubic) to size (w, h), float32 clipped to 0..1."""
    arr = np.asarray(heatmap, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"heatmap must be a non-empty 2-D array, got shape {arr.shape}")
    arr = np.nan_to_num(np.clip(arr, 0.0, 1.0))
    return np.clip(cv2.resize(arr, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def colourise(heat: np.ndarray) -> np.ndarray:
    """RGB uint8 image of a 0..1 array through the JET colormap (blue cold, red hot)."""
    bgr = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay_heatmap(crop: Image.Image, heatmap, alpha: float = 0.45) -> Image.Image:
    """The crop with the heatmap blended over it (alpha = weight of the colours); [] returns the crop."""
    rgb = crop.convert("RGB") if crop.mode != "RGB" else crop.copy()
    if heatmap is None or np.asarray(heatmap).size == 0:
        return rgb
    colours = colourise(heatmap_array(heatmap, rgb.size)).astype(np.float32)
    base = np.asarray(rgb, dtype=np.float32)
    blended = (1.0 - alpha) * base + alpha * colours
    return Image.fromarray(np.clip(np.round(blended), 0, 255).astype(np.uint8))


def legend(width: int = 256, height: int = 14) -> Image.Image:
    """A horizontal colour bar of the heatmap scale (left: no evidence, right: strongest)."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return Image.fromarray(colourise(ramp))
