"""The two ways the server reaches TensorFlow give the same answers: its default public API and `--lean_process`.

Two real `python -m serving.local` processes on 127.0.0.1 serve the same test model, one per path, and are asked the
same questions through TF Serving's own stubs: every output (probability, threshold, band, heatmap) must be equal,
bit for bit, since both run the same graph on the same kernels with the same session settings.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving import contract
from tests.helpers import ServerProcess
from tests.serving.grpc_util import (
    Stubs,
    bytes_request,
    metadata_request,
    outputs,
    pixels,
    png,
    request,
    signature_defs,
)

pytestmark = pytest.mark.integration


def _jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """One RGB image as JPEG bytes (a client may send JPEG as well as PNG)."""
    buf = io.BytesIO()
    Image.fromarray(image.round().astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _crops() -> list[bytes]:
    """Encoded face-crop stand-ins of several sizes and kinds: noise, gradients, a blocky picture."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, 300, dtype=np.float32)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), axis=-1)
    blocks = np.kron(rng.uniform(0, 255, (8, 8, 3)), np.ones((20, 20, 1)))
    return [png(rng.uniform(0, 255, (224, 224, 3))), _jpeg(gradient), png(blocks),
            _jpeg(rng.uniform(0, 255, (97, 131, 3)))]


@pytest.fixture(scope="module")
def both_paths(exported_model, tmp_path_factory):
    """(public, lean): a default server and a --lean_process one on the same test model, both AVAILABLE."""
    logs = tmp_path_factory.mktemp("parity")
    servers = [ServerProcess(exported_model, logs / "public.log"),
               ServerProcess(exported_model, logs / "lean.log", extra_args=("--lean_process",))]
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_available()
        stubs = [Stubs(server.target) for server in servers]
        yield servers, stubs
        for s in stubs:
            s.close()
    finally:
        for server in servers:
            server.terminate()


def _both(both_paths, make_request) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The outputs of the same Predict request from the public and the lean server."""
    _, stubs = both_paths
    public, lean = (outputs(s.predict.Predict(make_request(), timeout=60)) for s in stubs)
    return public, lean


def _assert_identical(public: dict[str, np.ndarray], lean: dict[str, np.ndarray]) -> None:
    """Same outputs, same shapes and dtypes, same values bit for bit."""
    assert set(public) == set(lean) == set(contract.OUTPUTS)
    for name in contract.OUTPUTS:
        assert public[name].dtype == lean[name].dtype and public[name].shape == lean[name].shape, name
        np.testing.assert_array_equal(public[name], lean[name], err_msg=name)


def test_the_two_servers_really_run_the_two_paths(both_paths):
    """The default server stands on TensorFlow's public API; the lean one has neither the public API nor Keras."""
    (public, lean), _ = both_paths
    assert "TensorFlow public API" in public.logs()
    assert "lean process: no public API, no Keras" in lean.logs()
    assert "dropping load-only library pages" not in public.logs()


def test_from_bytes_answers_are_identical(both_paths):
    """Encoded crops of several sizes and formats, in one batch: same probability, threshold, band and heatmap."""
    public, lean = _both(both_paths, lambda: bytes_request(_crops()))
    _assert_identical(public, lean)
    assert len(np.unique(public[contract.OUTPUT_PROBABILITY])) > 1, "the inputs must not all score alike"
    assert public[contract.OUTPUT_HEATMAP].shape == (4, 7, 7)


def test_pixel_answers_are_identical_alone_and_in_a_batch(both_paths):
    """serving_default with one image and with a batch of five: the same numbers from both paths."""
    for n, seed in ((1, 3), (5, 4)):
        public, lean = _both(both_paths,
                             lambda n=n, seed=seed: request(inputs={contract.INPUT_PIXELS: pixels(n, seed)}))
        _assert_identical(public, lean)


def test_metadata_is_identical(both_paths):
    """GetModelMetadata (the SignatureDefMap) does not depend on the path either."""
    _, stubs = both_paths
    public, lean = (s.predict.GetModelMetadata(metadata_request(), timeout=30) for s in stubs)
    assert public.model_spec == lean.model_spec
    assert signature_defs(public) == signature_defs(lean)  # compared unpacked: a map's serialized order may differ
