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
def exported(tmp_path_factory):
    """An exported UNTRAINED model with varied outputs and a non-trivial temperature (plumbing only), loaded once."""
    import tensorflow as tf

    model = lively_model()
    base = tmp_path_factory.mktemp("sig") / contract.MODEL_NAME
    version = export(model, base, ExportInfo(temperature=1.7, threshold=0.45, uncertain_band=(0.4, 0.5),
                                             training_data="none: untrained test model"))
    return {"model": model, "version": version, "loaded": tf.saved_model.load(str(version))}


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


def test_pixels_and_png_bytes_give_the_same_probability(exported):
    import tensorflow as tf

    loaded = exported["loaded"]
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


def test_evaluate_scorer_batches_like_a_client_and_applies_temperature(exported):
    from training.evaluate import BytesScorer, read_version_metadata
    from training.metrics import sigmoid
    from training.model import backbone_of, head_of

    images = _images(3)
    scorer = BytesScorer(batch_size=2, loaded=exported["loaded"])
    p = scorer.score([_png(im) for im in images])  # batches of 2 and 1
    assert p.shape == (3,)
    # The served probability is sigmoid(logit / T): compare with the Keras model's own logit.
    model = exported["model"]
    logits = head_of(model)(backbone_of(model)(np.stack(images).astype(np.float32)))[:, 0].numpy()
    np.testing.assert_allclose(p, sigmoid(logits / 1.7), atol=1e-4)
    assert read_version_metadata(exported["version"])["threshold"] == pytest.approx(0.45)
