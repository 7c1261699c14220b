"""Augmentation: one seeded view per call, valid pixels, the crop rule of the clients."""
from __future__ import annotations

import numpy as np

from clients.core.facecrop import DEFAULT_MARGIN, square_box
from training.augment import AugmentConfig, assumed_face_box, augment


def _img(seed: int, size: int = 120) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_views_are_valid_and_reproducible():
    img = _img(0)
    for seed in range(8):
        a = augment(img, np.random.default_rng(seed), AugmentConfig(), make_fake=seed % 2 == 1)
        b = augment(img, np.random.default_rng(seed), AugmentConfig(), make_fake=seed % 2 == 1)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) >= 16
        np.testing.assert_array_equal(a, b)


def test_views_vary_with_the_seed():
    img = _img(1)
    views = {augment(img, np.random.default_rng(s)).tobytes() for s in range(6)}
    assert len(views) == 6


def test_disabled_augmentation_returns_the_image():
    img = _img(2)
    out = augment(img, np.random.default_rng(0), AugmentConfig(enabled=False))
    np.testing.assert_array_equal(out, img)


def test_assumed_face_box_reproduces_the_client_crop():
    """A crop made by the clients' rule, re-cropped with the default margin, is the whole crop again."""
    for size in (96, 200, 224, 256):
        box = assumed_face_box(size, size)
        left, top, right, bottom = square_box(box, (size, size), DEFAULT_MARGIN)
        assert abs(left) <= 1 and abs(top) <= 1 and abs(right - size) <= 1 and abs(bottom - size) <= 1
