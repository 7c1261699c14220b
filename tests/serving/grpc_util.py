"""Small helpers for talking to a model server through TF Serving's own protos and stubs only."""
from __future__ import annotations

import io

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import contract

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 128 * 1024 * 1024),
                   ("grpc.max_send_message_length", 128 * 1024 * 1024)]


class Stubs:
    """The three services of a server, on one channel."""

    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


def pixels(n: int, seed: int = 0) -> np.ndarray:
    """n random RGB 224x224 images, float32 0..255."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, contract.IMAGE_SIZE, contract.IMAGE_SIZE, 3)).astype(np.float32)


def png(image: np.ndarray) -> bytes:
    """Encode one uint8-able RGB image as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def request(signature: str = contract.SIGNATURE_PIXELS, inputs: dict | None = None, name: str = contract.MODEL_NAME,
            version: int | None = None, output_filter: tuple[str, ...] = ()) -> predict_pb2.PredictRequest:
    """A PredictRequest; `inputs` maps alias -> ndarray or TensorProto (default: 4 random images)."""
    req = predict_pb2.PredictRequest()
    req.model_spec.name = name
    req.model_spec.signature_name = signature
    if version is not None:
        req.model_spec.version.value = version
    if inputs is None:
        inputs = {contract.INPUT_PIXELS: pixels(4)}
    for alias, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        req.inputs[alias].CopyFrom(proto)
    req.output_filter.extend(output_filter)
    return req


def bytes_request(blobs: list[bytes], **kw) -> predict_pb2.PredictRequest:
    """A from_bytes request for encoded images."""
    return request(contract.SIGNATURE_BYTES,
                   {contract.INPUT_BYTES: tf.make_tensor_proto(blobs, dtype=tf.string)}, **kw)


def outputs(resp) -> dict[str, np.ndarray]:
    """The response's tensors as numpy arrays."""
    return {k: tf.make_ndarray(v) for k, v in resp.outputs.items()}


def metadata_request(name: str = contract.MODEL_NAME, fields=("signature_def",)):
    """A GetModelMetadataRequest for signature_def."""
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    req.model_spec.name = name
    return req


def signature_defs(resp) -> dict:
    """Unpack the SignatureDefMap from a GetModelMetadataResponse."""
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert resp.metadata["signature_def"].Unpack(sdm)
    return dict(sdm.signature_def)


def status_request(name: str = contract.MODEL_NAME, version: int | None = None):
    """A GetModelStatusRequest."""
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = name
    if version is not None:
        req.model_spec.version.value = version
    return req


def states(stubs: Stubs, name: str = contract.MODEL_NAME) -> dict[int, str]:
    """version -> state name, from GetModelStatus ({} when the model has no version at all)."""
    try:
        resp = stubs.model.GetModelStatus(status_request(name), timeout=5)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return {}
        raise
    names = get_model_status_pb2.ModelVersionStatus.State.Name
    return {s.version: names(s.state) for s in resp.model_version_status}


def health_status(stubs: Stubs, service: str = "") -> str:
    """SERVING / NOT_SERVING from grpc.health.v1."""
    resp = stubs.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
