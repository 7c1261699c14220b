"""gRPC clients (sync and asyncio) for the served model, built from our own protos: no TensorFlow import.

Methods are called by TF Serving's own paths ('/tensorflow.serving.PredictionService/Predict', ...), with
messages from clients/core/protos/tfs.proto, which are wire-compatible with TF Serving's.
"""
from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from typing import Any, Callable

import grpc
import numpy as np
from grpc_health.v1 import health_pb2
from PIL import Image

from clients.core.config import ClientConfig
from clients.core.errors import DetectorError, DetectorUnavailable, ModelError
from clients.core.protos import tfs_pb2
from serving import contract


PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

OUTPUT_FILTER = (contract.OUTPUT_PROBABILITY, contract.OUTPUT_THRESHOLD,
                 contract.OUTPUT_UNCERTAIN_BAND, contract.OUTPUT_HEATMAP)
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RECONNECT_BACKOFF_MS = (250, 2000)
"""First and longest wait (ms) between the channel's tries to reconnect to a server that went away. gRPC's defaults
(1 s growing 1.6x to 120 s) kept users on "not reachable" for ~30 s after a long outage had ended; with these a
returning server is reached within ~2 s."""
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
    ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
    ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
]
BACKOFF_S = 0.2
"""First retry delay on UNAVAILABLE; doubles each try (gRPC adds +-20% jitter)."""
MAX_BACKOFF_S = 2.0
"""Longest wait between two tries of one call."""
MAX_ATTEMPTS = 5
"""gRPC's cap on a retryPolicy's maxAttempts: a config asking for more tries gets five."""

_METHODS = {
    PREDICT: (tfs_pb2.PredictRequest, tfs_pb2.PredictResponse),
    GET_MODEL_METADATA: (tfs_pb2.GetModelMetadataRequest, tfs_pb2.GetModelMetadataResponse),
    GET_MODEL_STATUS: (tfs_pb2.GetModelStatusRequest, tfs_pb2.GetModelStatusResponse),
    HEALTH_CHECK: (health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse),
}

PROBE_SIZE = 32
"""Side of the mid-grey probe image sent by model_info() to learn the answering version's threshold."""


@functools.lru_cache(maxsize=1)
def _probe_png() -> bytes:
    """A small mid-grey PNG: the cheapest valid input for asking a version its threshold."""
    buf = io.BytesIO()
    Image.new("RGB", (PROBE_SIZE, PROBE_SIZE), (128, 128, 128)).save(buf, "PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class ModelInfo:
    """Which model version the server serves and its decision rule."""

    name: str
    version: int
    threshold: float
    uncertain_band: tuple[float, float]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one batch of crops, with the version and threshold that produced it."""

    fake_probability: list[float]
    heatmaps: list[list[list[float]]]
    threshold: float
    uncertain_band: tuple[float, float]
    model_name: str
    model_version: int


# Requests and responses -------------------------------------------------------------------------

def build_predict_request(crops: list[bytes], model_name: str = contract.MODEL_NAME) -> tfs_pb2.PredictRequest:
    """A `from_bytes` PredictRequest carrying every encoded crop in one batch."""
    req = tfs_pb2.PredictRequest()
    req.model_spec.name = model_name
    req.model_spec.signature_name = contract.SIGNATURE_BYTES
    tensor = req.inputs[contract.INPUT_BYTES]
    tensor.dtype = tfs_pb2.DT_STRING
    tensor.tensor_shape.dim.add().size = len(crops)
    tensor.string_val.extend(crops)
    req.output_filter.extend(OUTPUT_FILTER)
    return req


def tensor_to_array(tensor: tfs_pb2.TensorProto) -> np.ndarray:
    """A numeric TensorProto as a numpy array (from tensor_content or the typed value field)."""
    shape = [d.size for d in tensor.tensor_shape.dim]
    dtypes = {tfs_pb2.DT_FLOAT: (np.float32, "float_val"), tfs_pb2.DT_DOUBLE: (np.float64, "double_val"),
              tfs_pb2.DT_INT32: (np.int32, "int_val"), tfs_pb2.DT_INT64: (np.int64, "int64_val")}
    if tensor.dtype not in dtypes:
        raise ModelError(detail=f"unexpected output dtype {tensor.dtype}")
    np_dtype, field = dtypes[tensor.dtype]
    if tensor.tensor_content:
        arr = np.frombuffer(tensor.tensor_content, dtype=np_dtype)
    else:
        arr = np.asarray(getattr(tensor, field), dtype=np_dtype)
        count = int(np.prod(shape)) if shape else 1
        if arr.size == 1 and count > 1:  # TF's compact form: one value repeated
            arr = np.full(count, arr[0], dtype=np_dtype)
    return arr.reshape(shape) if shape else arr.reshape(())


def parse_predict_response(resp: tfs_pb2.PredictResponse, n: int, model_name: str) -> Prediction:
    """Probabilities, heatmaps and the answering version's threshold, checked against the contract."""
    outputs = resp.outputs
    missing = [k for k in (contract.OUTPUT_PROBABILITY, contract.OUTPUT_THRESHOLD) if k not in outputs]
    if missing:
        raise ModelError(detail=f"model response lacks outputs {missing}")
    probs = tensor_to_array(outputs[contract.OUTPUT_PROBABILITY]).reshape(-1).astype(float)
    if probs.size != n:
        raise ModelError(detail=f"model returned {probs.size} probabilities for {n} crops")
    threshold = float(tensor_to_array(outputs[contract.OUTPUT_THRESHOLD]).reshape(-1)[0])
    band = (threshold, threshold)
    if contract.OUTPUT_UNCERTAIN_BAND in outputs:
        b = tensor_to_array(outputs[contract.OUTPUT_UNCERTAIN_BAND]).reshape(-1, 2)[0]
        band = (float(b[0]), float(b[1]))
    heatmaps: list[list[list[float]]] = [[] for _ in range(n)]
    if contract.OUTPUT_HEATMAP in outputs:
        hm = tensor_to_array(outputs[contract.OUTPUT_HEATMAP])
        heatmaps = [np.clip(h.astype(np.float64), 0.0, 1.0).round(4).tolist() for h in hm.reshape(n, *hm.shape[1:])]
    version = resp.model_spec.version.value if resp.model_spec.HasField("version") else 0
    return Prediction([float(p) for p in probs], heatmaps, threshold, band,
                      resp.model_spec.name or model_name, int(version))


def _model_spec_request(cls, model_name: str, signature: str | None = None):
    """A request message whose model_spec names the model (and maybe a signature)."""
    req = cls()
    req.model_spec.name = model_name
    if signature:
        req.model_spec.signature_name = signature
    return req


def metadata_request(model_name: str) -> tfs_pb2.GetModelMetadataRequest:
    """Ask for the signature_def metadata (the only field TF Serving offers)."""
    req = _model_spec_request(tfs_pb2.GetModelMetadataRequest, model_name)
    req.metadata_field.append("signature_def")
    return req


def signatures_of(resp: tfs_pb2.GetModelMetadataResponse) -> dict[str, tfs_pb2.SignatureDef]:
    """Unpack the SignatureDefMap from a metadata response (our type, same wire format)."""
    sig_map = tfs_pb2.SignatureDefMap()
    if "signature_def" in resp.metadata:
        sig_map.ParseFromString(resp.metadata["signature_def"].value)
    return dict(sig_map.signature_def)


def available(resp: tfs_pb2.GetModelStatusResponse) -> bool:
    """True when at least one version is AVAILABLE."""
    return any(s.state == tfs_pb2.ModelVersionStatus.AVAILABLE for s in resp.model_version_status)


# Errors -----------------------------------------------------------------------------------------

def _translate(err: grpc.RpcError, target: str) -> DetectorError:
    """A gRPC status as a domain error with words a user understands."""
    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else "") or ""
    detail = f"{target}: {code.name if code else 'UNKNOWN'}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DetectorUnavailable("The detector took too long to answer. Please try again in a minute.", detail)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return DetectorUnavailable(detail=detail)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return DetectorUnavailable("The detector is busy right now. Please try again in a minute.", detail)
    if code == grpc.StatusCode.NOT_FOUND:
        return ModelError("The detector's model is not loaded on the server yet. Please try again later.", detail)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ModelError("The detector could not read this image. Please try another photo.", detail)
    return ModelError(detail=detail)


def retry_service_config(retries: int) -> str:
    """The channel's service config: every method retried on UNAVAILABLE by gRPC itself, so the sync and async
    clients share one retry implementation; the call's deadline still bounds all tries together."""
    policy = {"maxAttempts": max(2, min(retries, MAX_ATTEMPTS)), "initialBackoff": f"{BACKOFF_S}s",
              "maxBackoff": f"{MAX_BACKOFF_S}s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
    return json.dumps({"methodConfig": [{"name": [{}], "retryPolicy": policy}]})


def channel_options(retries: int) -> list[tuple[str, Any]]:
    """Message limits, reconnect backoff and, for more than one try, gRPC's retry policy."""
    if retries <= 1:
        return CHANNEL_OPTIONS + [("grpc.enable_retries", 0)]
    return CHANNEL_OPTIONS + [("grpc.enable_retries", 1), ("grpc.service_config", retry_service_config(retries))]


class _ClientBase:
    """What the sync and async clients share: target, deadline, retries and one callable per TF Serving method."""

    _new_channel: Callable[..., Any]

    def __init__(self, target: str | None = None, timeout_s: float = 10.0, retries: int = 3,
                 model_name: str = contract.MODEL_NAME) -> None:
        self.target = target or ClientConfig.from_env().target
        self.timeout_s = timeout_s
        self.retries = max(1, retries)
        self.model_name = model_name
        self._channel = self._new_channel(self.target, options=channel_options(self.retries))
        self._calls: dict[str, Callable] = {
            path: self._channel.unary_unary(path, request_serializer=req.SerializeToString,
                                            response_deserializer=resp.FromString)
            for path, (req, resp) in _METHODS.items()}

    @classmethod
    def from_config(cls, config: ClientConfig):
        """A client with the config's target, deadline and retries."""
        return cls(config.target, config.timeout_s, config.retries, config.model_name)


# Sync client --------------------------------------------------------------------------------------

class DetectorClient(_ClientBase):
    """Blocking client: one channel, a deadline on every call, bounded retries on UNAVAILABLE."""

    _new_channel = staticmethod(grpc.insecure_channel)

    def _call(self, path: str, request: Any, timeout_s: float | None = None) -> Any:
        """One RPC with a deadline (gRPC's retry policy retries UNAVAILABLE within it); failures as domain errors."""
        try:
            return self._calls[path](request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, self.target) from None

    def predict(self, crops: list[bytes]) -> Prediction:
        """Score encoded face crops in one batched `from_bytes` request."""
        if not crops:
            raise ValueError("predict needs at least one crop")
        resp = self._call(PREDICT, build_predict_request(crops, self.model_name))
        return parse_predict_response(resp, len(crops), self.model_name)

    def signatures(self) -> dict[str, tfs_pb2.SignatureDef]:
        """The served model's signatures, from GetModelMetadata."""
        return signatures_of(self._call(GET_MODEL_METADATA, metadata_request(self.model_name)))

    def model_info(self) -> ModelInfo:
        """Name, version, threshold and band of the version that answers now (a one-pixel-cheap Predict)."""
        p = self.predict([_probe_png()])
        return ModelInfo(p.model_name, p.model_version, p.threshold, p.uncertain_band)

    def health(self) -> bool:
        """True when the server says a version of the model is AVAILABLE; never raises."""
        try:
            req = _model_spec_request(tfs_pb2.GetModelStatusRequest, self.model_name)
            return available(self._calls[GET_MODEL_STATUS](req, timeout=min(self.timeout_s, 5.0)))
        except grpc.RpcError:
            return False

    def serving_health(self) -> bool:
        """The standard grpc.health.v1 check (servers that implement it); never raises."""
        try:
            resp = self._calls[HEALTH_CHECK](health_pb2.HealthCheckRequest(), timeout=min(self.timeout_s, 5.0))
            return resp.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> "DetectorClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Async client -------------------------------------------------------------------------------------

class AsyncDetectorClient(_ClientBase):
    """asyncio (grpc.aio) twin of DetectorClient, for the bot and the web page.

    Create it inside a running event loop (grpc.aio channels belong to the loop that made them).
    """

    _new_channel = staticmethod(grpc.aio.insecure_channel)

    async def _call(self, path: str, request: Any, timeout_s: float | None = None) -> Any:
        """One RPC with a deadline (gRPC's retry policy retries UNAVAILABLE within it); failures as domain errors."""
        try:
            return await self._calls[path](request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as err:
            raise _translate(err, self.target) from None

    async def predict(self, crops: list[bytes]) -> Prediction:
        """Score encoded face crops in one batched `from_bytes` request."""
        if not crops:
            raise ValueError("predict needs at least one crop")
        resp = await self._call(PREDICT, build_predict_request(crops, self.model_name))
        return parse_predict_response(resp, len(crops), self.model_name)

    async def signatures(self) -> dict[str, tfs_pb2.SignatureDef]:
        """The served model's signatures, from GetModelMetadata."""
        return signatures_of(await self._call(GET_MODEL_METADATA, metadata_request(self.model_name)))

    async def model_info(self) -> ModelInfo:
        """Name, version, threshold and band of the version that answers now (a tiny Predict)."""
        p = await self.predict([_probe_png()])
        return ModelInfo(p.model_name, p.model_version, p.threshold, p.uncertain_band)

    async def health(self) -> bool:
        """True when the server says a version of the model is AVAILABLE; never raises."""
        try:
            req = _model_spec_request(tfs_pb2.GetModelStatusRequest, self.model_name)
            return available(await self._calls[GET_MODEL_STATUS](req, timeout=min(self.timeout_s, 5.0)))
        except grpc.RpcError:
            return False

    async def serving_health(self) -> bool:
        """The standard grpc.health.v1 check (servers that implement it); never raises."""
        try:
            resp = await self._calls[HEALTH_CHECK](health_pb2.HealthCheckRequest(), timeout=min(self.timeout_s, 5.0))
            return resp.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncDetectorClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
