"""Backbones from config: a Keras feature-extractor file and its input scaling, built into the detector.

The scaling must be inside the graph (the served input stays RGB 0..255 at 224), and it must be the
backbone's own convention: a model fed the wrong scaling still runs, but sees the wrong pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / ".." / "shared" / "weights"
SHARED_FILES = [
    ("efficientnet_lite0_imagenet_notop.keras", "lite", 224),
    ("efficientnet_lite2_imagenet_notop.keras", "lite", 224),
    ("efficientnet_lite2_imagenet_notop.keras", "lite", 260),
    ("mobilenet_v1_1.0_224_vggface2_faceres_notop.keras", "bgr_imagenet", 224),
]


def _scaled(x: np.ndarray, scaling: str) -> np.ndarray:
    """The documented conventions, written out in numpy (independent of the layers under test)."""
    if scaling == "lite":
        return (x - 127.0) / 128.0
    if scaling == "bgr_imagenet":
        return x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
    return x / 127.5 - 1.0


def _tiny_extractor(path: Path) -> None:
    """A small Keras feature extractor saved as a complete model file, like the shared backbones."""
    import keras

    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, name="c1")(inp)
    x = keras.layers.Conv2D(6, 3, strides=8, padding="same", name="c2")(x)
    model = keras.Model(inp, x)
    model.save(path)


@pytest.mark.parametrize("scaling", ["minus1_1", "lite", "bgr_imagenet"])
def test_a_backbone_file_loads_from_config_with_its_scaling_inside_the_graph(tmp_path, scaling):
    import keras

    from training.model import ModelConfig, backbone_of, build_model

    path = tmp_path / "tiny.keras"
    _tiny_extractor(path)
    model = build_model(ModelConfig(backbone=str(path), scaling=scaling, pool_size=None, weights=None))
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    direct = keras.saving.load_model(path)(_scaled(x, scaling)).numpy()
    np.testing.assert_allclose(backbone_of(model)(x).numpy(), direct, rtol=1e-4, atol=1e-3)
    assert model(x).shape == (2, 1)


def test_a_model_with_a_file_backbone_survives_save_and_load(tmp_path):
    import keras

    from training.model import ModelConfig, build_model

    path = tmp_path / "tiny.keras"
    _tiny_extractor(path)
    model = build_model(ModelConfig(backbone=str(path), scaling="bgr_imagenet", pool_size=None, weights=None))
    model.save(tmp_path / "detector.keras")
    again = keras.saving.load_model(tmp_path / "detector.keras", compile=False)
    x = np.random.default_rng(1).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), rtol=1e-5)


def test_unknown_scaling_and_missing_file_are_refused(tmp_path):
    from training.model import ModelConfig, build_model

    with pytest.raises(FileNotFoundError):
        build_model(ModelConfig(backbone=str(tmp_path / "absent.keras")))
    path = tmp_path / "tiny.keras"
    _tiny_extractor(path)
    with pytest.raises(ValueError, match="scaling"):
        build_model(ModelConfig(backbone=str(path), scaling="bgr"))


@pytest.mark.parametrize("name,scaling,size", SHARED_FILES)
def test_each_shared_backbone_builds_from_config_on_a_tiny_input(name, scaling, size):
    import keras

    from training.model import ModelConfig, backbone_of, build_model

    path = SHARED_WEIGHTS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/weights not beside the repository)")
    model = build_model(ModelConfig(backbone=str(path), scaling=scaling, input_size=size, pool_size=None))
    x = np.random.default_rng(2).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)
    features = backbone_of(model)(x).numpy()
    resized = keras.layers.Resizing(size, size)(x).numpy() if size != 224 else x
    direct = keras.saving.load_model(path, compile=False)(_scaled(resized, scaling)).numpy()
    np.testing.assert_allclose(features, direct, rtol=1e-3, atol=1e-3)
    prob = float(model(x).numpy()[0, 0])
    assert 0.0 <= prob <= 1.0
    # Calling the model must not move its BatchNorm statistics (it did behind the 260 px resize).
    np.testing.assert_array_equal(backbone_of(model)(x).numpy(), features)


@pytest.mark.parametrize("frozen_first", [True, False])
def test_fine_tuning_never_trains_the_input_scaling_and_a_resume_trains_what_the_first_session_did(
        tmp_path, frozen_first):
    """The BGR conversion is a fixed convolution, not a weight to learn; and a fresh run (stage 1 frozen, then
    stage 2) must fine-tune the same variables as a resumed one (stage 2 directly), or Adam's saved state no longer
    fits the model and the resume starts Adam from zero moments."""
    from training.model import ModelConfig, build_model, set_backbone_trainable

    path = tmp_path / "tiny.keras"
    _tiny_extractor(path)
    model = build_model(ModelConfig(backbone=str(path), scaling="bgr_imagenet", pool_size=None, weights=None,
                                    dense_units=(4,)))
    if frozen_first:  # the fresh run's order
        set_backbone_trainable(model, None)
    set_backbone_trainable(model, 2)  # the extractor's layers: input, c1, c2
    names = sorted(v.path for v in model.trainable_variables)
    assert not [n for n in names if "to_bgr" in n]
    assert [n for n in names if n.startswith("c")] == ["c2/bias", "c2/kernel"]
    conv = model.get_layer("backbone").get_layer("to_bgr_minus_means")
    assert not conv.trainable_weights and len(conv.non_trainable_weights) == 2
