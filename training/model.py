"""The detector network, built by one function: a backbone's features and the seed's head.

The model takes RGB pixels in 0..255 at 224x224 and normalises them itself (each backbone's
own input scaling, and its own working size where that differs), so nothing outside the graph
has to know a backbone's convention. The backbone is MobileNetV2 built by Keras (ImageNet
weights downloaded, or from a local .weights.h5) or any complete Keras model file of a
feature extractor (`backbone` = its path), e.g. the EfficientNet-Lite files in ../shared/weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from serving.contract import IMAGE_SIZE

IMAGENET = "imagenet"
BACKBONE = "backbone"
HEAD = "head"
MOBILENET_V2 = "mobilenet_v2"

SCALINGS = ("minus1_1", "lite", "bgr_imagenet")
"""Input scalings: MobileNetV2's x/127.5-1; EfficientNet-Lite's (x-127)/128; Caffe-style BGR minus ImageNet means."""
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class ModelConfig:
    """How to build the network; stored beside every checkpoint and export."""

    alpha: float = 0.35
    weights: str | None = IMAGENET
    """For MobileNetV2: 'imagenet' (Keras download), a path to a local .weights.h5 file, or None for random."""
    pool_size: int | None = 2
    """The head's MaxPooling2D window; None = the whole feature map (global max)."""
    dense_units: tuple[int, ...] = (128,)
    dropout: float = 0.4
    backbone: str = MOBILENET_V2
    """'mobilenet_v2', or the path of a complete Keras model file (.keras) of a feature extractor."""
    scaling: str = "minus1_1"
    """How pixels 0..255 are scaled for the backbone: one of SCALINGS."""
    input_size: int = IMAGE_SIZE
    """The backbone's working side; the 224 input is resized to it inside the graph when it differs."""


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


def _from_file(cfg: ModelConfig) -> keras.Model:
    """A complete Keras feature extractor from a file (no builder code, no download)."""
    path = Path(cfg.backbone)
    if not path.is_file():
        raise FileNotFoundError(f"backbone model file not found: {path}")
    return keras.saving.load_model(str(path), compile=False)


def scale_pixels(pixels, scaling: str):
    """Standard layers that map RGB 0..255 to a backbone's input convention (serialisable, no Lambda)."""
    if scaling == "minus1_1":
        return layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(pixels)
    if scaling == "lite":
        return layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="to_lite")(pixels)
    if scaling == "bgr_imagenet":
        # A fixed 1x1 convolution swaps R and B and subtracts the means: exact, and saved with the model.
        conv = layers.Conv2D(3, 1, name="to_bgr_minus_means", trainable=False)
        out = conv(pixels)
        conv.set_weights([np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3),
                          -np.asarray(IMAGENET_BGR_MEANS, "float32")])
        return out
    raise ValueError(f"unknown scaling {scaling!r}; expected one of {SCALINGS}")


def build_backbone(cfg: ModelConfig) -> keras.Model:
    """Pixels 0..255 at 224 in, the last convolutional feature map out (7x7xC for a 224 backbone)."""
    pixels = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image", dtype="float32")
    x = pixels
    if cfg.input_size != IMAGE_SIZE:
        x = layers.Resizing(cfg.input_size, cfg.input_size, interpolation="bilinear", name="to_backbone_size")(x)
    x = scale_pixels(x, cfg.scaling)
    net = _mobilenet(cfg) if cfg.backbone == MOBILENET_V2 else _from_file(cfg)
    # Inference mode is fixed in the graph: the recipe never trains BatchNorm, and with a Resizing layer in front
    # Keras would otherwise run it in training mode on eager calls and drift its moving statistics.
    return keras.Model(pixels, net(x, training=False), name=BACKBONE)


def build_head(cfg: ModelConfig, feature_shape: tuple[int, int, int]) -> keras.Model:
    """The seed's head (MaxPooling2D, dense layers with dropout); it returns a logit."""
    features = keras.Input(feature_shape, name="features")
    pool = cfg.pool_size or tuple(int(d) for d in feature_shape[:2])
    x = layers.MaxPooling2D(pool_size=pool, name="max_pool")(features)
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
    backbone.trainable = True  # Keras turns every sublayer trainable here, the fixed input scaling included
    for layer in backbone.layers[:-1]:
        layer.trainable = False  # resizing and scaling: fixed maps, never learned
    for i, layer in enumerate(net.layers):
        # BatchNorm stays frozen: small CPU batches would wreck its statistics.
        layer.trainable = i >= trainable_from and not isinstance(layer, layers.BatchNormalization)
