"""Helpers for the evaluation tests: a model whose outputs vary, and small image sets the tests make."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def lively_model(seed: int = 0):
    """An UNTRAINED build_model network whose probabilities differ from image to image.

    With weights=None MobileNetV2's features collapse to ~0 and every output is 0.5, which would
    make signature comparisons pass trivially; He-scaled random kernels keep activations alive.
    """
    import keras

    from training.model import ModelConfig, backbone_of, build_model

    keras.utils.set_random_seed(seed)
    model = build_model(ModelConfig(alpha=0.35, weights=None))
    rng = np.random.default_rng(seed)
    for w in backbone_of(model).weights:
        if "kernel" in w.path:
            shape = tuple(w.shape)
            fan_in = shape[0] * shape[1] if "depthwise" in w.path else int(np.prod(shape[:-1]))
            w.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32"))
    return model


def face_like(rng: np.random.Generator, size: int, fake: bool) -> Image.Image:
    """A synthetic 'face': an ellipse on a noisy background; fakes carry a bright square patch."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = rng.normal(110, 25, (size, size, 3))
    ellipse = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.5) / 0.4) ** 2 < 1.0
    img[ellipse] = rng.normal([200, 160, 140], 12, (int(ellipse.sum()), 3))
    if fake:
        a = int(size * rng.uniform(0.35, 0.45))
        img[a:a + size // 5, a:a + size // 5] = rng.normal([60, 200, 60], 10, (size // 5, size // 5, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_manifest(root: Path, per_class: int = 8, seed: int = 0) -> Path:
    """A manifest.csv over made-up images: two-label source 'swap', fake-only 'gan', real-only 'photos'."""
    rng = np.random.default_rng(seed)
    rows = []
    plan = [("swap", 1, per_class), ("swap", 0, per_class), ("gan", 1, per_class), ("photos", 0, per_class)]
    for source, label, count in plan:
        folder = root / source / ("fake" if label else "real")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            path = folder / f"{i:03d}.jpg"
            size = 96 if source == "photos" else 112
            face_like(rng, size, bool(label)).save(path, quality=90)
            # swap fakes share a group with the swap real they pair with, like DFDC
            group = f"v{i:03d}" if source == "swap" else f"{source}{label}{i:03d}"
            rows.append([str(path.relative_to(root)), "fake" if label else "real", source, group])
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "source", "group"], *rows])
    return manifest
