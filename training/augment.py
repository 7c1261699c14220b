"""Training-time augmentation, applied alike to both classes from every source.

The sources differ in resolution, upscaling and JPEG history; without this the model can
learn where an image came from instead of whether it was manipulated. Each view draws its
own parameters from a seeded generator, so a run is reproducible.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from clients.core.facecrop import DEFAULT_MARGIN, Box, jittered_crop
from training.blend import self_blend


@dataclass(frozen=True)
class AugmentConfig:
    """Switches and strengths of each augmentation (probabilities per view)."""

    enabled: bool = True
    crop_jitter: bool = True
    flip: bool = True
    rescale_prob: float = 0.5
    rescale_range: tuple[float, float] = (0.3, 0.9)
    blur_prob: float = 0.2
    noise_prob: float = 0.2
    colour_prob: float = 0.5
    jpeg_prob: float = 0.75
    jpeg_quality: tuple[int, int] = (30, 95)
    portrait_prob: float = 0.0
    """Share of views given `portrait_style` before the rest (FFHQ's look on every kind of face, both classes)."""


def assumed_face_box(width: int, height: int, margin: float = DEFAULT_MARGIN) -> Box:
    """The face box inside a face crop made by the shared rule: centred, side = crop / (1 + 2*margin)."""
    side = min(width, height) / (1.0 + 2.0 * margin)
    return Box(int(round((width - side) / 2)), int(round((height - side) / 2)), int(round(side)), int(round(side)))


def crop_jitter(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-crop a face crop with the clients' rule and a random margin and shift (training framing = client framing)."""
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    out = jittered_crop(pil, assumed_face_box(w, h), random.Random(int(rng.integers(0, 2**31))))
    return np.asarray(out)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at a quality and decode again."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        return img
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def down_up(img: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    """Scale down and back up (lost detail, like upscaled small crops), with random interpolations."""
    h, w = img.shape[:2]
    f = rng.uniform(lo, hi)
    interps = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)
    small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=interps[int(rng.integers(0, 3))])
    if rng.random() < 0.3:
        small = jpeg(small, int(rng.integers(50, 96)))
    return cv2.resize(small, (w, h), interpolation=interps[1 + int(rng.integers(0, 2))])


def colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small brightness, contrast and saturation changes."""
    x = img.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.8, 1.2)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-20, 20)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def augment(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig = AugmentConfig(),
            make_fake: bool = False) -> np.ndarray:
    """One training view of a face crop (uint8 RGB); `make_fake` turns a real face into a self-blended pseudo-fake."""
    img = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    if cfg.enabled and cfg.crop_jitter:
        img = crop_jitter(img, rng)
    if make_fake:
        img = self_blend(img, rng).image
    if not cfg.enabled:
        return img
    if cfg.portrait_prob > 0 and rng.random() < cfg.portrait_prob:
        img = portrait_style(img, rng)
    if cfg.flip and rng.random() < 0.5:
        img = img[:, ::-1]
    img = np.ascontiguousarray(img)
    if rng.random() < cfg.rescale_prob:
        img = down_up(img, rng, *cfg.rescale_range)
    if rng.random() < cfg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < cfg.colour_prob:
        img = colour(img, rng)
    if rng.random() < cfg.noise_prob:
        noise = rng.normal(0, rng.uniform(1, 6), img.shape)
        img = np.clip(np.rint(img + noise), 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        img = jpeg(img, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return np.ascontiguousarray(img, dtype=np.uint8)


def portrait_style(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The look of an FFHQ-style portrait (rendered large, smooth skin, crisp edges, vivid colour, mild JPEG) given
    to any face, so that look is not seen only on StyleGAN-family fakes, whose training photos (FFHQ) have it."""
    h, w = img.shape[:2]
    up = float(rng.uniform(2.0, 3.0))
    big = cv2.resize(img, (int(w * up), int(h * up)), interpolation=cv2.INTER_CUBIC)
    big = cv2.bilateralFilter(big, 7, float(rng.uniform(20, 50)), 2.0 * up)
    blurred = cv2.GaussianBlur(big, (0, 0), 1.5 * up)
    big = cv2.addWeighted(big, 1.0 + rng.uniform(0.3, 1.0), blurred, -rng.uniform(0.3, 1.0), 0)
    out = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(1.0, 1.3)
    lo, hi = np.percentile(out, [1, 99])
    if hi - lo > 32:
        out = (out - lo) * (255.0 / (hi - lo))
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return jpeg(out, int(rng.integers(88, 96)))
