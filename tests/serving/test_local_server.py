"""The model server seen from outside, through TF Serving's stubs only (runs against TF_SERVING_TARGET too)."""
from __future__ import annotations

import os

import grpc
import numpy as np
import pytest
import tensorflow as tf

from serving import contract
from tests.serving.grpc_util import (
    Stubs,
    bytes_request,
    health_status,
    metadata_request,
    outputs,
    pixels,
    png,
    request,
    signature_defs,
    states,
)

pytestmark = pytest.mark.integration
local_only = pytest.mark.skipif(bool(os.environ.get(contract.TARGET_ENV)),
                                reason="checks a choice of serving.local that tensorflow_model_server makes differently")


@pytest.fixture(scope="module")
def stubs(model_server):
    s = Stubs(model_server)
    yield s
    s.close()


def _code(call) -> tuple[grpc.StatusCode, str]:
    """Run a call that must fail; return its status code and message."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def _check_outputs(out: dict[str, np.ndarray], n: int) -> None:
    """The contract's four outputs with the contract's shapes and ranges."""
    assert set(out) == set(contract.OUTPUTS)
    p = out[contract.OUTPUT_PROBABILITY]
    assert p.shape == (n,) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))
    assert out[contract.OUTPUT_THRESHOLD].shape == (n,)
    assert np.all(out[contract.OUTPUT_THRESHOLD] == out[contract.OUTPUT_THRESHOLD][0])
    assert out[contract.OUTPUT_UNCERTAIN_BAND].shape == (n, 2)
    heat = out[contract.OUTPUT_HEATMAP]
    assert heat.shape[0] == n and heat.ndim == 3 and np.all((heat >= 0) & (heat <= 1))


def test_predict_batch_of_4_pixels(stubs):
    resp = stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: pixels(4)}), timeout=30)
    assert resp.model_spec.name == contract.MODEL_NAME
    assert resp.model_spec.signature_name == contract.SIGNATURE_PIXELS
    assert resp.model_spec.version.value >= 1
    out = outputs(resp)
    _check_outputs(out, 4)
    # The (untrained) model still looks at its input: different images, different numbers.
    assert len(set(out[contract.OUTPUT_PROBABILITY].tolist())) > 1


def test_predict_batch_of_4_bytes(stubs):
    blobs = [png(img) for img in pixels(4, seed=1)]
    out = outputs(stubs.predict.Predict(bytes_request(blobs), timeout=30))
    _check_outputs(out, 4)


def test_bytes_and_pixels_agree_for_a_224_png(stubs):
    image = pixels(1, seed=2)[0].round()
    by_pixels = outputs(stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: image[None]}), timeout=30))
    by_bytes = outputs(stubs.predict.Predict(bytes_request([png(image)]), timeout=30))
    np.testing.assert_allclose(by_bytes[contract.OUTPUT_PROBABILITY], by_pixels[contract.OUTPUT_PROBABILITY], atol=1e-4)


def test_identical_results_on_repeat(stubs):
    req = request(inputs={contract.INPUT_PIXELS: pixels(3, seed=3)})
    first = outputs(stubs.predict.Predict(req, timeout=30))
    for _ in range(2):
        again = outputs(stubs.predict.Predict(req, timeout=30))
        for k in first:
            np.testing.assert_array_equal(again[k], first[k])


def test_output_filter_returns_only_the_asked_tensors(stubs):
    resp = stubs.predict.Predict(request(output_filter=(contract.OUTPUT_PROBABILITY,)), timeout=30)
    assert set(resp.outputs) == {contract.OUTPUT_PROBABILITY}
    code, msg = _code(lambda: stubs.predict.Predict(request(output_filter=("nope",)), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nope" in msg


def test_metadata_has_both_signature_defs(stubs):
    resp = stubs.predict.GetModelMetadata(metadata_request(), timeout=10)
    assert resp.model_spec.name == contract.MODEL_NAME
    defs = signature_defs(resp)
    pix, byt = defs[contract.SIGNATURE_PIXELS], defs[contract.SIGNATURE_BYTES]
    assert pix.inputs[contract.INPUT_PIXELS].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in pix.inputs[contract.INPUT_PIXELS].tensor_shape.dim] == [-1, 224, 224, 3]
    assert byt.inputs[contract.INPUT_BYTES].dtype == tf.string.as_datatype_enum
    for sd in (pix, byt):
        assert set(sd.outputs) == set(contract.OUTPUTS)
        assert sd.method_name == "tensorflow/serving/predict"


def test_status_available(stubs):
    assert "AVAILABLE" in states(stubs).values()


@local_only
def test_health_serving(stubs):
    assert health_status(stubs) == "SERVING"
    assert health_status(stubs, "tensorflow.serving.PredictionService") == "SERVING"


def test_unknown_model_and_version_not_found(stubs):
    code, _ = _code(lambda: stubs.predict.Predict(request(name="no_such_model"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: stubs.predict.Predict(request(version=987654), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: stubs.predict.GetModelMetadata(metadata_request("no_such_model"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND


def test_unknown_signature_invalid_argument(stubs):
    code, msg = _code(lambda: stubs.predict.Predict(request(signature="no_such_signature"), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no_such_signature" in msg


@pytest.mark.parametrize("inputs, why", [
    ({"picture": pixels(2)}, "wrong input name"),
    ({contract.INPUT_PIXELS: pixels(2)[:, :100, :100, :]}, "wrong shape"),
    ({contract.INPUT_PIXELS: pixels(2)[0]}, "missing batch dimension"),
    ({contract.INPUT_PIXELS: pixels(2).astype(np.int32)}, "wrong dtype"),
    ({contract.INPUT_PIXELS: np.array([b"abc", b"def"], dtype=object)}, "strings for pixels"),
])
def test_bad_inputs_invalid_argument_naming_the_tensor(stubs, inputs, why):
    code, msg = _code(lambda: stubs.predict.Predict(request(inputs=inputs), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, why
    assert contract.INPUT_PIXELS in msg, why


def test_malformed_tensor_and_non_image_bytes_invalid_argument(stubs):
    bad = tf.make_tensor_proto(pixels(2))
    bad.tensor_content = bad.tensor_content[:1000]  # shape says 2 images, content holds far less
    code, _ = _code(lambda: stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: bad}), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _code(lambda: stubs.predict.Predict(bytes_request([b"definitely not an image"]), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # ... and the server keeps serving.
    assert stubs.predict.Predict(request(), timeout=30).outputs


def test_empty_batch_answers_empty_outputs(stubs):
    """Like tensorflow_model_server without batching, a 0-row batch is run and answers 0 rows."""
    out = outputs(stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: pixels(0)}), timeout=10))
    assert out[contract.OUTPUT_PROBABILITY].shape == (0,)


@local_only
def test_batch_over_the_limit_invalid_argument(stubs):
    from serving.local.config import DEFAULT_MAX_REQUEST_BATCH

    tiny = np.zeros((DEFAULT_MAX_REQUEST_BATCH + 1, 224, 224, 3), np.float32)
    code, msg = _code(lambda: stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: tiny}), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and str(DEFAULT_MAX_REQUEST_BATCH) in msg


@local_only
def test_message_over_the_size_limit_refused(stubs):
    from serving.local.config import DEFAULT_MAX_MESSAGE_BYTES

    blob = b"\0" * (DEFAULT_MAX_MESSAGE_BYTES + 1024)
    code, _ = _code(lambda: stubs.predict.Predict(bytes_request([blob]), timeout=30))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stubs.predict.Predict(request(), timeout=30).outputs


def test_metadata_without_fields_invalid_argument(stubs):
    code, _ = _code(lambda: stubs.predict.GetModelMetadata(metadata_request(fields=()), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions in its header (a decompression bomb's calling card)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@local_only
def test_pixel_bomb_refused_before_decoding(stubs):
    code, msg = _code(lambda: stubs.predict.Predict(bytes_request([_png_header_only(30000, 30000)]), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "pixel" in msg
    assert stubs.predict.Predict(request(), timeout=30).outputs


def test_malformed_proto_is_refused_and_the_server_keeps_serving(stubs):
    raw = stubs.channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                    request_serializer=None, response_deserializer=None)
    code, _ = _code(lambda: raw(b"\xff\xff\xff\x0fnot a protobuf at all", timeout=10))
    assert code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    assert stubs.predict.Predict(request(), timeout=30).outputs
