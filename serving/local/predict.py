"""The request logic shared by gRPC, REST and warm-up, and the gRPC services on it: Predict, GetModelMetadata,
GetModelStatus and health, with TF Serving's status codes and messages."""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Callable, Iterator

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.local import runtime
from serving.local.config import ServerConfig
from serving.local.errors import UNKNOWN_MODEL, ServingError, shown_name
from serving.local.metrics import Metrics
from serving.local.signatures import Signature, dims_of, fill_tensor_proto, ndarray_of
from serving.local.versions import ModelManager, Servable

log = logging.getLogger("serving.local")

MAX_IMAGE_PIXELS = 50_000_000
"""Encoded images above this many pixels are refused before decoding (decompression bombs)."""
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


class ModelServer:
    """The models plus the request logic shared by gRPC, REST and warm-up."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.metrics = Metrics()
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.managers = {
            m.name: ModelManager(m, cfg, self.metrics, self._warmup_one, self._update_health) for m in cfg.models
        }
        self._update_health()

    def _update_health(self) -> None:
        """SERVING only while every model has a version AVAILABLE."""
        ok = bool(self.managers) and all(m.available() for m in self.managers.values())
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", PREDICTION_SERVICE, MODEL_SERVICE):
            self.health.set(service, status)

    def manager(self, name: str) -> ModelManager:
        """The manager of a model name, or NOT_FOUND."""
        m = self.managers.get(name)
        if m is None:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Latest({shown_name(name)})")
        return m

    def model_label(self, name: str) -> str:
        """The name for logs and metrics: a served model's own, else one label for all unknown names."""
        return name if name in self.managers else UNKNOWN_MODEL

    def _warmup_one(self, request: predict_pb2.PredictRequest, servable: Servable) -> None:
        """Warm-up goes through the same validation and batching path as real requests."""
        self.predict_on(servable, request)

    @contextlib.contextmanager
    def servable_for(self, spec) -> Iterator[Servable]:
        """Resolve a ModelSpec to a held servable (NOT_FOUND / UNAVAILABLE as TF Serving)."""
        manager = self.manager(spec.name)
        version = spec.version.value if spec.HasField("version") else None
        with manager.acquire(version, spec.version_label) as servable:
            yield servable

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Predict on the version the request names (latest by default)."""
        with self.servable_for(request.model_spec) as servable:
            return self.predict_on(servable, request)

    def predict_on(self, servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Validate the request against the signature, run it and build the response."""
        sig_name = request.model_spec.signature_name or "serving_default"
        sig = servable.signatures.get(sig_name)
        if sig is None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f'Serving signature key "{shown_name(sig_name)}" not found. '
                               f'Known: {sorted(servable.signatures)}')
        inputs, rows = self._validated_inputs(sig, request)
        wanted = list(request.output_filter) or list(sig.outputs)
        for name in wanted:
            if name not in sig.outputs:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"output tensor alias not found in signature: {shown_name(name)}. "
                                   f"Outputs expected to be in the set {{{','.join(sig.outputs)}}}.")
        out = servable.predict(sig_name, inputs, rows)
        resp = predict_pb2.PredictResponse()
        resp.model_spec.name = servable.name
        resp.model_spec.version.value = servable.version
        resp.model_spec.signature_name = sig_name
        for name in wanted:
            fill_tensor_proto(resp.outputs[name], out[name])
        return resp

    def _validated_inputs(self, sig: Signature, request) -> tuple[dict[str, np.ndarray], int]:
        """Check names, dtypes, shapes and batch size; view the tensors as numpy (no copy of tensor_content)."""
        given = set(request.inputs.keys())
        if given != sig.inputs.keys():
            missing, extra = sorted(set(sig.inputs) - given), sorted(given - set(sig.inputs))
            what = f"unknown input {extra}" if extra else f"missing input {missing}"
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{what} for signature {sig.name!r}; it expects {sig.expected()}")
        arrays, rows = {}, None
        for alias, proto in request.inputs.items():
            spec = sig.inputs[alias]
            if proto.dtype != spec.enum:
                try:
                    got = runtime.get().as_dtype(proto.dtype).name if proto.dtype else "DT_INVALID"
                except TypeError:  # an enum value no dtype has (a hostile or corrupt request)
                    got = f"unknown dtype enum {proto.dtype}"
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()} of signature {sig.name!r} got dtype {got}")
            dims = dims_of(proto)
            if spec.shape is not None and (
                len(dims) != len(spec.shape) or any(e >= 0 and d != e for d, e in zip(dims, spec.shape))
            ):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()} of signature {sig.name!r} got shape "
                                   f"[{','.join(map(str, dims))}]")
            if not dims:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()} must have a batch dimension")
            if rows is not None and dims[0] != rows:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "inputs disagree on the batch size")
            rows = dims[0]
            if rows > self.cfg.batch_limit:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Task size {rows} is larger than maximum input batch size {self.cfg.batch_limit}")
            try:
                arrays[alias] = ndarray_of(proto, spec, dims)
            except Exception as e:  # noqa: BLE001 - a malformed proto is the client's error
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()} is malformed: {type(e).__name__}") from None
            if arrays[alias].shape != dims:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()}: content does not match shape {list(dims)}")
            if spec.np_dtype is None:
                check_encoded_images(alias, arrays[alias])
        return arrays, rows or 0

    def metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """signature_def metadata as a SignatureDefMap packed in Any, like TF Serving."""
        fields = list(request.metadata_field)
        if not fields:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "GetModelMetadataRequest must specify at least one metadata_field")
        for f in fields:
            if f != "signature_def":
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {f} is not supported")
        with self.servable_for(request.model_spec) as servable:
            resp = get_model_metadata_pb2.GetModelMetadataResponse()
            resp.model_spec.name = servable.name
            resp.model_spec.version.value = servable.version
            sdm = get_model_metadata_pb2.SignatureDefMap()
            for key, sd in servable.signature_defs.items():
                sdm.signature_def[key].CopyFrom(sd)
            resp.metadata["signature_def"].Pack(sdm)
            return resp

    def status(self, request) -> get_model_status_pb2.GetModelStatusResponse:
        """Every known version's state (or one version's), like TF Serving's GetModelStatus."""
        manager = self.manager(request.model_spec.name)
        states = dict(manager.states)
        if request.model_spec.HasField("version"):
            v = request.model_spec.version.value
            if v not in states:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {v} of model {manager.name}")
            states = {v: states[v]}
        if not states:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {manager.name}")
        resp = get_model_status_pb2.GetModelStatusResponse()
        for v in sorted(states, reverse=True):
            st = states[v]
            entry = resp.model_version_status.add(version=v, state=st.state)
            entry.status.error_code = st.error_code
            entry.status.error_message = st.error_message
        return resp


def check_encoded_images(alias: str, arr: np.ndarray) -> None:
    """Refuse decompression bombs before TensorFlow decodes them (header only, via Pillow)."""
    import io

    from PIL import Image

    for i, blob in enumerate(arr.reshape(-1)):
        try:
            with Image.open(io.BytesIO(blob)) as im:
                w, h = im.size
        except Image.DecompressionBombError:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input `{alias}`[{i}] is over the {MAX_IMAGE_PIXELS} pixel limit") from None
        except Exception:  # noqa: BLE001 - not for Pillow to judge; TensorFlow's decoder decides
            continue
        if w * h > MAX_IMAGE_PIXELS:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input `{alias}`[{i}] is {w}x{h} pixels, over the {MAX_IMAGE_PIXELS} pixel limit")


def grpc_call(server: ModelServer, what: str, fn: Callable[[Any], Any], count: bool = False):
    """Wrap one RPC: ServingError -> its status code; anything else -> INTERNAL, logged without content."""

    def handler(request, context):
        model = server.model_label(getattr(getattr(request, "model_spec", None), "name", ""))
        try:
            with server.metrics.in_flight() if count else contextlib.nullcontext():
                resp = fn(request)
        except ServingError as e:
            log.info("%s model=%s -> %s: %s", what, model, e.code.name, e.message)
            if count:
                server.metrics.count_request(model, e.code)
            context.abort(e.code, e.message)
        except Exception as e:  # noqa: BLE001 - no stack trace reaches a client
            log.exception("%s model=%s -> INTERNAL", what, model)
            if count:
                server.metrics.count_request(model, grpc.StatusCode.INTERNAL)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}")
        if count:
            server.metrics.count_request(model, grpc.StatusCode.OK)
        return resp

    return handler


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, server: ModelServer):
        self.Predict = grpc_call(server, "Predict", server.predict, count=True)
        self.GetModelMetadata = grpc_call(server, "GetModelMetadata", server.metadata)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus (model reloads are not offered)."""

    def __init__(self, server: ModelServer):
        self.GetModelStatus = grpc_call(server, "GetModelStatus", server.status)
