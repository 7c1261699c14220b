"""Self-blended pseudo-fakes: the mask is a valid soft mask, only the masked region changes, seeds reproduce."""
from __future__ import annotations

import numpy as np
import pytest

from training.blend import self_blend, soft_mask


def _face(seed: int, h: int = 160, w: int = 144) -> np.ndarray:
    """A textured synthetic face crop: noise background and a skin-coloured ellipse with detail."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = rng.normal(100, 30, (h, w, 3))
    inside = ((xx - w / 2) / (0.32 * w)) ** 2 + ((yy - h / 2) / (0.42 * h)) ** 2 < 1
    img[inside] = rng.normal([205, 160, 140], 15, (int(inside.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(12))
def test_mask_is_soft_and_in_range(seed):
    mask = soft_mask(160, 144, np.random.default_rng(seed))
    assert mask.shape == (160, 144)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.max() > 0.2, "the mask must cover part of the face"
    assert (mask == 0).any(), "the mask must leave the border untouched"


@pytest.mark.parametrize("seed", range(12))
def test_blend_changes_only_inside_the_mask(seed):
    src = _face(seed)
    result = self_blend(src, np.random.default_rng(seed))
    assert result.image.shape == src.shape and result.image.dtype == np.uint8
    outside = result.mask <= 0
    np.testing.assert_array_equal(result.image[outside], src[outside])
    inside = result.mask >= 0.5 * result.mask.max()
    assert inside.any()
    diff = np.abs(result.image.astype(int) - src.astype(int)).sum(axis=2)
    assert (diff[inside] > 0).mean() > 0.1, "the blend must actually alter the masked face"


def test_same_seed_same_pseudo_fake_and_different_seeds_differ():
    src = _face(0)
    a = self_blend(src, np.random.default_rng(7))
    b = self_blend(src, np.random.default_rng(7))
    c = self_blend(src, np.random.default_rng(8))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_rejects_non_rgb():
    with pytest.raises(ValueError):
        self_blend(np.zeros((32, 32), np.uint8), np.random.default_rng(0))
