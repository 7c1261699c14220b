"""The detector network, built by one function: MobileNetV2 features and the seed's head.

The model takes RGB pixels in 0..255 at 224x224 and normalises them itself, so nothing
outside the graph has to know MobileNetV2's [-1, 1] convention.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
from keras import layers

from serving.contract import IMAGE_SIZE

IMAGENET = "imagenet"
BACKBONE = "backbone"
HEAD = "head"


@dataclass(frozen=True)
class ModelConfig:
    """How to build the network; stored beside every checkpoint and export."""

    alpha: float = 0.35
    weights: str | None = IMAGENET
    """'imagenet' (Keras download), a path to a local .weights.h5 file, or None for random."""
    pool_size: int = 2
    dense_units: tuple[int, ...] = (128,)
    dropout: float = 0.4


def _mobilenet(cfg: ModelConfig) -> keras.Model:
    """MobileNetV2 without its top, with ImageNet weights from Keras or from a local file."""
    shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    if cfg.weights == IMAGENET:
        return keras.applications.MobileNetV2(input_shape=shape, alpha=cfg.alpha, include_top=False, weights=IMAGENET)
    net = keras.applications.MobileNetV2(input_shape=shape, alpha=cfg.alpha, include_top=False, weights=None)
    if cfg.weights:
        path = Path(cfg.weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights not found: {path}")
        net.load_weights(str(path))
    return net


def build_backbone(cfg: ModelConfig) -> keras.Model:
    """Pixels 0..255 in, the last convolutional feature map out (7x7xC at 224)."""
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image", dtype="float32")
    scaled = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(pixels)
    features = _mobilenet(cfg)(scaled)
    return keras.Model(pixels, features, name=BACKBONE)


def build_head(cfg: ModelConfig, feature_shape: tuple[int, int, int]) -> keras.Model:
    """The seed's head (MaxPooling2D, dense layers with dropout); it returns a logit."""
    features = keras.Input(feature_shape, name="features")
    x = layers.MaxPooling2D(pool_size=cfg.pool_size, name="max_pool")(features)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(cfg.dense_units):
        x = layers.Dropout(cfg.dropout, name=f"dropout_{i}")(x)
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    x = layers.Dropout(cfg.dropout, name="dropout_out")(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(features, logit, name=HEAD)


def build_model(cfg: ModelConfig = ModelConfig()) -> keras.Model:
    """The whole detector: pixels in, fake probability [N, 1] out (sigmoid of the head's logit)."""
    backbone = build_backbone(cfg)
    head = build_head(cfg, tuple(backbone.output.shape[1:]))
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image", dtype="float32")
    logit = head(backbone(pixels))
    prob = layers.Activation("sigmoid", name="fake_probability")(logit)
    return keras.Model(pixels, prob, name="deepfake_detector")


def backbone_of(model: keras.Model) -> keras.Model:
    """The feature extractor inside a model made by build_model."""
    return model.get_layer(BACKBONE)


def head_of(model: keras.Model) -> keras.Model:
    """The classification head inside a model made by build_model."""
    return model.get_layer(HEAD)


def set_backbone_trainable(model: keras.Model, trainable_from: int | None) -> None:
    """Freeze the backbone, or unfreeze its layers from index `trainable_from` on (fine-tune)."""
    backbone = backbone_of(model)
    net = backbone.layers[-1]
    if trainable_from is None:
        backbone.trainable = False
        return
    backbone.trainable = True
    for i, layer in enumerate(net.layers):
        # BatchNorm stays frozen: small CPU batches would wreck its statistics.
        layer.trainable = i >= trainable_from and not isinstance(layer, layers.BatchNormalization)
