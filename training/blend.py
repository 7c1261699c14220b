"""Self-blended images (after Shiohara & Yamasaki, CVPR 2022), written from the paper's method.

A pseudo-fake is made from one real face: a slightly altered copy of the same face (colour,
sharpness, scale, a small shift) is blended back into it through a soft, face-shaped mask.
The model learns the traces that any blending leaves (boundaries, colour and frequency
mismatch) instead of one tool's artefacts. No landmark detector is packaged here, so the
mask is a jittered elliptical hull around where the face sits in a face crop, optionally
deformed, then blurred; every parameter is drawn from the given random generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
"""The paper's blend ratios: full blends more often than partial ones."""


@dataclass(frozen=True)
class BlendResult:
    """The pseudo-fake, the mask that was used (0..1, HxW) and the altered copy."""

    image: np.ndarray
    mask: np.ndarray
    altered: np.ndarray


def _odd(n: float) -> int:
    """An odd kernel size of at least 3."""
    n = max(3, int(n))
    return n if n % 2 else n + 1


def hull_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A hard face-shaped mask: a jittered elliptical hull around the face's usual place in a crop."""
    cx = width * rng.uniform(0.42, 0.58)
    cy = height * rng.uniform(0.45, 0.62)
    ax = width * rng.uniform(0.22, 0.36)
    ay = height * rng.uniform(0.28, 0.44)
    angle = rng.uniform(-0.35, 0.35)
    n_points = int(rng.integers(10, 24))
    theta = np.sort(rng.uniform(0, 2 * np.pi, n_points))
    radius = rng.uniform(0.85, 1.12, n_points)
    x = ax * radius * np.cos(theta)
    y = ay * radius * np.sin(theta)
    xr = cx + x * np.cos(angle) - y * np.sin(angle)
    yr = cy + x * np.sin(angle) + y * np.cos(angle)
    points = np.stack([xr, yr], axis=1).astype(np.float32)
    hull = cv2.convexHull(points).astype(np.int32)
    mask = np.zeros((height, width), np.float32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def deform_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Warp the mask's outline with a smooth random displacement field (the paper's mask deformation)."""
    h, w = mask.shape
    strength = rng.uniform(0.02, 0.06) * min(h, w)
    grid = max(3, int(rng.integers(3, 6)))
    dx = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-1, 1, (grid, grid)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(mask, xs + dx * strength, ys + dy * strength, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (warped > 0.5).astype(np.float32)


def soft_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The blending mask in 0..1: hull, optional deformation and erosion/dilation, random blur and ratio."""
    mask = hull_mask(height, width, rng)
    if rng.random() < 0.5:
        mask = deform_mask(mask, rng)
    if rng.random() < 0.5:
        k = _odd(rng.uniform(0.01, 0.05) * min(height, width))
        kernel = np.ones((k, k), np.uint8)
        mask = (cv2.erode if rng.random() < 0.5 else cv2.dilate)(mask, kernel)
    k = _odd(rng.uniform(0.04, 0.25) * min(height, width))
    mask = cv2.GaussianBlur(mask, (k, k), 0)
    if mask.max() > 0:
        mask = mask / mask.max()
    mask = mask * float(rng.choice(BLEND_RATIOS))
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def _colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift RGB channels, hue, saturation, brightness and contrast by small random amounts."""
    out = img.astype(np.float32)
    out += rng.uniform(-20, 20, 3).astype(np.float32)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
        hsv[..., 1] = hsv[..., 1] * rng.uniform(0.8, 1.2)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = out.mean()
    out = (out - mean) * rng.uniform(0.85, 1.15) + mean + rng.uniform(-15, 15)
    return np.clip(out, 0, 255)


def _sharpness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Either sharpen, blur, or down-and-up scale the copy (a frequency mismatch with the original)."""
    choice = rng.integers(0, 3)
    if choice == 0:
        blurred = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.0))
        return np.clip(img + rng.uniform(0.3, 1.2) * (img - blurred), 0, 255)
    if choice == 1:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.8))
    h, w = img.shape[:2]
    f = rng.uniform(0.4, 0.85)
    small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _geometry(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small rescale and shift of the copy, so edges inside the mask no longer line up."""
    h, w = img.shape[:2]
    scale = rng.uniform(0.95, 1.05)
    tx = rng.uniform(-0.03, 0.03) * w
    ty = rng.uniform(-0.03, 0.03) * h
    m = np.array([[scale, 0, (1 - scale) * w / 2 + tx], [0, scale, (1 - scale) * h / 2 + ty]], np.float32)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def altered_copy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 'source' face of the blend: the same image with colour, sharpness and geometry changed."""
    out = img.astype(np.float32)
    if rng.random() < 0.8:
        out = _colour(out, rng)
    if rng.random() < 0.8:
        out = _sharpness(out, rng)
    if rng.random() < 0.8:
        out = _geometry(out, rng)
    if np.array_equal(out, img.astype(np.float32)):  # never return an unaltered copy
        out = _colour(out, rng)
    return out


def self_blend(image: np.ndarray, rng: np.random.Generator) -> BlendResult:
    """Make a pseudo-fake from a real face crop (uint8 RGB HxWx3); deterministic for a given generator state."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image HxWx3, got shape {image.shape}")
    h, w = image.shape[:2]
    base = image.astype(np.float32)
    altered = altered_copy(image, rng)
    mask = soft_mask(h, w, rng)
    blended = base * (1.0 - mask[..., None]) + altered * mask[..., None]
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    out[mask <= 0] = image[mask <= 0]  # outside the mask, bit-for-bit the source
    return BlendResult(out, mask, np.clip(np.rint(altered), 0, 255).astype(np.uint8))


def self_blend_seeded(image: np.ndarray, seed: int | tuple[int, ...]) -> np.ndarray:
    """The pseudo-fake for a seed, for pipelines that pass integers around."""
    return self_blend(image, np.random.default_rng(seed)).image
