"""Platt scaling: recovers a known slope and offset, and folding it into the head is exact."""
from __future__ import annotations

import numpy as np

from training.release import fit_platt, fold_platt


def test_fit_platt_recovers_known_parameters():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(1.5 * z - 0.7)))).astype(int)
    a, b = fit_platt(z, y)
    assert abs(a - 1.5) < 0.1 and abs(b + 0.7) < 0.1


def test_folding_changes_the_logit_exactly():
    from training.model import ModelConfig, backbone_of, build_model, head_of

    model = build_model(ModelConfig(weights=None))
    x = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    feats = backbone_of(model)(x)
    before = head_of(model)(feats).numpy()
    fold_platt(model, 2.0, -0.5)
    after = head_of(model)(feats).numpy()
    np.testing.assert_allclose(after, 2.0 * before - 0.5, rtol=1e-5, atol=1e-5)
