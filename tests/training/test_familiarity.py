"""The familiarity flag's report: unseen images far from training are flagged, images like training are not."""
import numpy as np

from training.familiarity import fit, flag_report


def _blobs(seed: int, shift: float, n: int = 400, dim: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training and seen features from one Gaussian, unseen features from one moved by `shift` along one axis."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(3.0, 0.5, dim)
    train = rng.normal(size=(n * 4, dim)) * scale
    seen = rng.normal(size=(n, dim)) * scale
    unseen = rng.normal(size=(n, dim)) * scale
    unseen[:, 2] += shift
    return train, seen, unseen


def test_a_source_unlike_training_is_flagged():
    train, seen, unseen = _blobs(0, shift=12.0)
    rep = flag_report(fit(train, 8), seen, unseen)
    assert rep["auroc_unseen_vs_seen"] > 0.95
    assert rep["unseen_flagged"] > 0.8
    assert abs(rep["seen_flagged"] - 0.05) < 0.02


def test_a_source_like_training_is_not_flagged_more_than_seen_images():
    train, seen, unseen = _blobs(1, shift=0.0)
    rep = flag_report(fit(train, 8), seen, unseen)
    assert 0.4 < rep["auroc_unseen_vs_seen"] < 0.6
    assert rep["unseen_flagged"] < 0.1


def test_distance_uses_only_the_kept_components():
    train, _, _ = _blobs(2, shift=0.0)
    gauss = fit(train, 3)
    far_in_dropped_direction = gauss.mean + 50.0 * np.eye(train.shape[1])[-1]
    assert gauss.directions.shape == (3, train.shape[1])
    assert gauss.distance(far_in_dropped_direction[None])[0] < 1.0
