"""Decoding and resizing shared by the training pipeline and the exported model.

Both sides call these TensorFlow ops, so the pixels the network saw in training are the
pixels it sees in serving: the `from_bytes` signature is built from `decode_and_resize`.
"""
from __future__ import annotations

import tensorflow as tf

from serving.contract import IMAGE_SIZE


def resize(image: tf.Tensor, size: int = IMAGE_SIZE) -> tf.Tensor:
    """Resize an RGB float image (any size) to the network's square input, antialiased."""
    image = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
    return tf.clip_by_value(image, 0.0, 255.0)


def decode_and_resize(encoded: tf.Tensor, size: int = IMAGE_SIZE) -> tf.Tensor:
    """Decode one JPEG/PNG/WebP (first frame) to float32 RGB 0..255 at the input size."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return resize(tf.cast(image, tf.float32), size)
