"""An exported version as TensorFlow Serving reads it: session loader, warm-up records."""
from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2, prediction_service_pb2_grpc

from serving import contract
from tests.serving.grpc_util import CHANNEL_OPTIONS, outputs


def _warmup_records(version_dir) -> list[prediction_log_pb2.PredictionLog]:
    """Read the warm-up file the way tensorflow_model_server does: PredictionLog protos in a TFRecord."""
    path = version_dir / contract.WARMUP_FILE
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def test_version_loads_with_tf_servings_session_loader(exported_model):
    """tensorflow_model_server loads a SavedModel into a session and restores variables with its saver:
    every variable the graph reads must be restored, and the answer must equal TF2's loader."""
    version = exported_model / "1"
    x = np.random.default_rng(5).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(version))
        handles = [op.outputs[0] for op in graph.get_operations() if op.type == "VarHandleOp"]
        initialized = sess.run([tf.raw_ops.VarIsInitializedOp(resource=h) for h in handles])
        assert all(initialized), f"{initialized.count(False)} variables never restored"
        sd = meta.signature_def[contract.SIGNATURE_PIXELS]
        fetch = {k: v.name for k, v in sd.outputs.items()}
        by_session = sess.run(fetch, {sd.inputs[contract.INPUT_PIXELS].name: x})
    by_tf2 = tf.saved_model.load(str(version)).signatures[contract.SIGNATURE_PIXELS](image=tf.constant(x))
    np.testing.assert_allclose(by_session[contract.OUTPUT_PROBABILITY], by_tf2[contract.OUTPUT_PROBABILITY].numpy(),
                               atol=1e-6)


def test_warmup_records_are_prediction_logs_for_both_signatures(exported_model):
    records = _warmup_records(exported_model / "1")
    assert 1 <= len(records) <= 1000  # TF Serving replays at most 1000
    signatures = set()
    for log in records:
        assert log.WhichOneof("log_type") == "predict_log"
        req = log.predict_log.request
        assert req.model_spec.name == contract.MODEL_NAME
        signatures.add(req.model_spec.signature_name)
        assert set(req.inputs) == {contract.SIGNATURE_INPUTS[req.model_spec.signature_name]}
    assert signatures == {contract.SIGNATURE_PIXELS, contract.SIGNATURE_BYTES}


@pytest.mark.integration
def test_each_warmup_record_is_a_request_the_server_accepts(exported_model, model_server):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(model_server, options=CHANNEL_OPTIONS))
    for log in _warmup_records(exported_model / "1"):
        req = log.predict_log.request
        rows = tf.make_ndarray(next(iter(req.inputs.values()))).shape[0]
        out = outputs(stub.Predict(req, timeout=30))
        assert out[contract.OUTPUT_PROBABILITY].shape == (rows,)
