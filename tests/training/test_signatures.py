"""Both signatures of an exported version agree, so evaluating through from_bytes tests what pixels see."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving import contract
from tests.training.evalsupport import lively_model
from training.export import ExportInfo, export


@pytest.fixture(scope="module")
def lively_version(tmp_path_factory):
    """An exported UNTRAINED model with varied outputs and a non-trivial temperature (plumbing only)."""
    base = tmp_path_factory.mktemp("sig") / contract.MODEL_NAME
    return export(lively_model(), base, ExportInfo(temperature=1.7, threshold=0.45, uncertain_band=(0.4, 0.5),
                                                   training_data="none: untrained test model"))


def _images(n: int) -> list[np.ndarray]:
    """Varied 224x224 RGB uint8 images."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        base = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        yy = np.linspace(0, 255, 224, dtype=np.float32)[:, None, None]
        out.append(np.clip(base * (0.3 + 0.2 * i) + yy * (1 - 0.2 * i), 0, 255).astype(np.uint8))
    return out


def _png(pixels: np.ndarray) -> bytes:
    """Lossless encoding of the exact pixels."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_pixels_and_png_bytes_give_the_same_probability(lively_version):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(lively_version))
    images = _images(3)
    by_pixels = loaded.signatures[contract.SIGNATURE_PIXELS](
        **{contract.INPUT_PIXELS: tf.constant(np.stack(images).astype(np.float32))})
    by_bytes = loaded.signatures[contract.SIGNATURE_BYTES](
        **{contract.INPUT_BYTES: tf.constant([_png(im) for im in images])})
    p_pixels = by_pixels[contract.OUTPUT_PROBABILITY].numpy()
    p_bytes = by_bytes[contract.OUTPUT_PROBABILITY].numpy()
    assert np.ptp(p_pixels) > 1e-3, "outputs must differ between images, or the comparison proves nothing"
    np.testing.assert_allclose(p_bytes, p_pixels, atol=1e-4)
    np.testing.assert_allclose(by_bytes[contract.OUTPUT_HEATMAP].numpy(), by_pixels[contract.OUTPUT_HEATMAP].numpy(), atol=1e-3)


def test_evaluate_scorer_matches_the_pixel_signature_and_applies_temperature(lively_version):
    import tensorflow as tf

    from training.evaluate import BytesScorer, read_version_metadata
    from training.export import DetectorModule  # noqa: F401  (the graph under test)
    from training.metrics import sigmoid

    images = _images(2)
    scorer = BytesScorer(lively_version, batch_size=1)
    p = scorer.score([_png(im) for im in images])
    loaded = tf.saved_model.load(str(lively_version))
    pixels = loaded.signatures[contract.SIGNATURE_PIXELS](
        **{contract.INPUT_PIXELS: tf.constant(np.stack(images).astype(np.float32))})
    np.testing.assert_allclose(p, pixels[contract.OUTPUT_PROBABILITY].numpy(), atol=1e-4)
    # The served probability is sigmoid(logit / T): undo T and compare with the raw Keras logit.
    model = lively_model()
    from training.model import backbone_of, head_of

    logits = head_of(model)(backbone_of(model)(np.stack(images).astype(np.float32)))[:, 0].numpy()
    np.testing.assert_allclose(p, sigmoid(logits / 1.7), atol=1e-4)
    assert read_version_metadata(lively_version)["threshold"] == pytest.approx(0.45)
