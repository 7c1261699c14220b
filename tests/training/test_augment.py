"""Augmentation: one seeded view per call, valid pixels, the crop rule of the clients."""
from __future__ import annotations

import dataclasses

import numpy as np

from clients.core.facecrop import DEFAULT_MARGIN, square_box
from training.augment import AugmentConfig, assumed_face_box, augment, portrait_style


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


def _smooth_face(size: int = 96) -> np.ndarray:
    """A soft, low-contrast picture: what an upscaled small crop looks like."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = 100 + 40 * np.sin(3 * x) * np.cos(2 * y)
    return np.clip(np.stack([base, base * 0.9, base * 0.8], axis=2), 0, 255).astype(np.uint8)


def test_portrait_style_keeps_the_size_and_gives_crisper_more_vivid_pixels():
    """The portrait look (FFHQ's) must read as more contrast and saturation, same frame, seeded."""
    img = _smooth_face()
    a = portrait_style(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, portrait_style(img, np.random.default_rng(3)))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert a.std() > 1.5 * img.std()
    sat = lambda v: (v.max(axis=2).astype(float) - v.min(axis=2)).mean()  # noqa: E731
    assert sat(a) > sat(img)


def test_portrait_prob_decides_whether_views_get_the_portrait_look():
    img = _smooth_face()
    plain = AugmentConfig(crop_jitter=False, flip=False, rescale_prob=0, blur_prob=0, noise_prob=0, colour_prob=0,
                          jpeg_prob=0)
    assert np.array_equal(augment(img, np.random.default_rng(0), plain), img)
    styled = augment(img, np.random.default_rng(0), dataclasses.replace(plain, portrait_prob=1.0))
    assert styled.shape == img.shape and not np.array_equal(styled, img)
