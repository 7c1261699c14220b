"""Our proto subset is wire-compatible with TF Serving's, both ways, and the client never imports TensorFlow."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from clients.core.grpc_client import build_predict_request, metadata_request, parse_predict_response, signatures_of
from clients.core.protos import tfs_pb2
from tests.helpers import REPO


@pytest.fixture(scope="module")
def tfs():
    """The official TF Serving protos (test-only: they pull in TensorFlow)."""
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2
    return predict_pb2, get_model_metadata_pb2, get_model_status_pb2


def test_descriptors_do_not_clash_with_the_official_ones(tfs):
    predict_pb2 = tfs[0]
    assert tfs_pb2.PredictRequest.DESCRIPTOR.full_name == "deepfake_detector.tfs.PredictRequest"
    assert predict_pb2.PredictRequest.DESCRIPTOR.full_name == "tensorflow.serving.PredictRequest"


def test_our_predict_request_parses_as_tf_servings(tfs):
    predict_pb2 = tfs[0]
    crops = [b"\x89PNG first", b"\xff\xd8 second \x00 with nul", b""]
    theirs = predict_pb2.PredictRequest.FromString(build_predict_request(crops).SerializeToString())
    assert theirs.model_spec.name == "deepfake_detector"
    assert theirs.model_spec.signature_name == "from_bytes"
    t = theirs.inputs["image_bytes"]
    assert t.dtype == 7  # DT_STRING
    assert [d.size for d in t.tensor_shape.dim] == [3]
    assert list(t.string_val) == crops
    assert list(theirs.output_filter) == ["fake_probability", "threshold", "uncertain_band", "heatmap"]
    # ...and back: TF Serving's bytes parse as ours with nothing lost
    ours = tfs_pb2.PredictRequest.FromString(theirs.SerializeToString())
    assert ours == build_predict_request(crops)


@pytest.mark.parametrize("packed", [True, False])
def test_tf_servings_predict_response_parses_as_ours(tfs, packed):
    predict_pb2 = tfs[0]
    import tensorflow as tf

    rng = np.random.default_rng(0)
    probs = rng.random(3).astype(np.float32)
    heat = rng.random((3, 7, 7)).astype(np.float32)
    resp = predict_pb2.PredictResponse()
    resp.model_spec.name = "deepfake_detector"
    resp.model_spec.version.value = 7
    resp.model_spec.signature_name = "from_bytes"
    outputs = {"fake_probability": probs, "threshold": np.full(3, 0.62, np.float32),
               "uncertain_band": np.tile(np.array([0.4, 0.7], np.float32), (3, 1)), "heatmap": heat}
    for k, v in outputs.items():
        proto = tf.make_tensor_proto(v)  # tensor_content (packed bytes)
        if not packed:                   # the typed-field form a server may also send
            proto = tf.make_tensor_proto(v.tolist(), dtype=tf.float32, shape=v.shape)
            proto.ClearField("tensor_content")
            proto.float_val[:] = v.reshape(-1).tolist()
        resp.outputs[k].CopyFrom(proto)
    pred = parse_predict_response(tfs_pb2.PredictResponse.FromString(resp.SerializeToString()), 3, "x")
    assert pred.model_version == 7 and pred.model_name == "deepfake_detector"
    assert pred.fake_probability == pytest.approx(probs.tolist(), abs=1e-6)
    assert pred.threshold == pytest.approx(0.62) and pred.uncertain_band == pytest.approx((0.4, 0.7))
    assert np.allclose(np.array(pred.heatmaps), heat, atol=1e-4)


def test_metadata_and_status_messages_round_trip(tfs):
    _, meta_pb2, status_pb2 = tfs
    theirs = meta_pb2.GetModelMetadataRequest.FromString(metadata_request("deepfake_detector").SerializeToString())
    assert theirs.model_spec.name == "deepfake_detector" and list(theirs.metadata_field) == ["signature_def"]

    sig_map = meta_pb2.SignatureDefMap()
    sig = sig_map.signature_def["from_bytes"]
    sig.method_name = "tensorflow/serving/predict"
    sig.inputs["image_bytes"].name = "serving_from_bytes_image_bytes:0"
    sig.inputs["image_bytes"].dtype = 7
    sig.inputs["image_bytes"].tensor_shape.dim.add().size = -1
    sig.outputs["fake_probability"].dtype = 1
    resp = meta_pb2.GetModelMetadataResponse()
    resp.model_spec.name = "deepfake_detector"
    resp.model_spec.version.value = 2
    resp.metadata["signature_def"].Pack(sig_map)
    ours = tfs_pb2.GetModelMetadataResponse.FromString(resp.SerializeToString())
    sigs = signatures_of(ours)
    assert set(sigs) == {"from_bytes"}
    assert sigs["from_bytes"].inputs["image_bytes"].dtype == tfs_pb2.DT_STRING
    assert sigs["from_bytes"].inputs["image_bytes"].tensor_shape.dim[0].size == -1

    status = status_pb2.GetModelStatusResponse()
    v = status.model_version_status.add()
    v.version, v.state = 3, status_pb2.ModelVersionStatus.AVAILABLE
    v.status.error_code = 0
    ours = tfs_pb2.GetModelStatusResponse.FromString(status.SerializeToString())
    assert ours.model_version_status[0].version == 3
    assert ours.model_version_status[0].state == tfs_pb2.ModelVersionStatus.AVAILABLE
    back = status_pb2.GetModelStatusResponse.FromString(ours.SerializeToString())
    assert back == status


def test_client_modules_do_not_import_tensorflow():
    code = ("import sys\n"
            "import clients.cli, clients.core.analyze, clients.core.grpc_client, clients.core.intake\n"
            "import clients.core.faces, clients.core.verdict\n"
            "from clients.core.grpc_client import DetectorClient, AsyncDetectorClient\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_serving', 'keras'))\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_generated_module_matches_the_proto_source(tmp_path):
    """`make protos` output is committed: regenerating gives the same descriptors."""
    pytest.importorskip("grpc_tools")
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO}", f"--descriptor_set_out={tmp_path / 'd.pb'}",
                        "clients/core/protos/tfs.proto"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    from google.protobuf import descriptor_pb2
    fresh = descriptor_pb2.FileDescriptorSet.FromString((tmp_path / "d.pb").read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto()
    tfs_pb2.DESCRIPTOR.CopyToProto(committed)

    def strip(messages):  # CopyToProto leaves out json_name; compare the rest
        for m in messages:
            for f in m.field:
                f.ClearField("json_name")
            strip(m.nested_type)
    strip(fresh.message_type)
    strip(committed.message_type)
    assert fresh.message_type == committed.message_type and fresh.enum_type == committed.enum_type
