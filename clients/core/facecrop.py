"""The one face-crop rule, shared by training and every client.

A detector box becomes a square crop centred on the face with a margin around it, so the
network sees the same framing in training (from whole photos, with jitter) and in use.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

DEFAULT_MARGIN = 0.3
"""Extra context on each side, as a fraction of the face box's longer side."""


@dataclass(frozen=True)
class Box:
    """A face box in pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(x, y, w, h), for JSON and tables."""
        return (self.x, self.y, self.w, self.h)


def square_box(box: Box, image_size: tuple[int, int], margin: float = DEFAULT_MARGIN,
               shift: tuple[float, float] = (0.0, 0.0)) -> tuple[int, int, int, int]:
    """The square crop (left, top, right, bottom) around a face, clamped inside the image."""
    width, height = image_size
    side = max(box.w, box.h) * (1.0 + 2.0 * margin)
    side = max(1, min(int(round(side)), width, height))
    cx = box.x + box.w / 2.0 + shift[0] * box.w
    cy = box.y + box.h / 2.0 + shift[1] * box.h
    left = int(round(cx - side / 2.0))
    top = int(round(cy - side / 2.0))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def crop_face(image: Image.Image, box: Box, margin: float = DEFAULT_MARGIN,
              shift: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    """Cut the square face crop that the model is trained and served on."""
    return image.crop(square_box(box, image.size, margin, shift))


def jittered_crop(image: Image.Image, box: Box, rng: random.Random, margin: float = DEFAULT_MARGIN,
                  margin_jitter: float = 0.15, shift_jitter: float = 0.08) -> Image.Image:
    """The training-time crop: the client's rule with a random margin and shift."""
    m = max(0.0, margin + rng.uniform(-margin_jitter, margin_jitter))
    shift = (rng.uniform(-shift_jitter, shift_jitter), rng.uniform(-shift_jitter, shift_jitter))
    return crop_face(image, box, m, shift)
