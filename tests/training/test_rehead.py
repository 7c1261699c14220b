"""training.rehead reads a shipped version back into the Keras model its config builds, exactly."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from tests.helpers import IMAGENET_WEIGHTS
from training.rehead import check_against_served, keras_model_of_version
from training.train import TrainConfig


def _config() -> TrainConfig:
    """The TrainConfig whose model is the one tests.helpers.export_untrained exports."""
    weights = str(IMAGENET_WEIGHTS) if IMAGENET_WEIGHTS.is_file() else None
    return TrainConfig(alpha=0.35, weights=weights, backbone="mobilenet_v2", scaling="minus1_1", pool_size=2,
                       dense_units=(128,), dropout=0.4)


def _images(tmp_path, n: int = 4) -> list[str]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        path = tmp_path / f"face{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (150 + 20 * i, 180, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def test_a_version_rebuilt_from_its_config_scores_as_it_is_served(exported_model, tmp_path):
    model, loaded = keras_model_of_version(exported_model / "1", _config())
    gap = check_against_served(model, loaded, _images(tmp_path), temperature=1.0)
    assert gap < 1e-4


def test_a_config_that_builds_another_network_is_refused(exported_model):
    with pytest.raises(ValueError, match="variable|model variables"):
        keras_model_of_version(exported_model / "1", dataclasses.replace(_config(), dense_units=(64,)))
