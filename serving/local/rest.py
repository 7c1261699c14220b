"""TF Serving's REST API on the local server (`--rest_api_port`): model status, metadata, predict, and the
Prometheus metrics path, over the same request logic as gRPC."""
from __future__ import annotations

import base64
import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving.local import runtime
from serving.local.errors import SHOWN_PATH_CHARS, ServingError, shown_name
from serving.local.predict import ModelServer
from serving.local.versions import State

log = logging.getLogger("serving.local")

_STATE_NAMES = {v: k for k, v in State.items()}
_HTTP_FOR = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
}


def _json_value(value: Any) -> Any:
    """Turn {"b64": ...} objects into bytes, recursively, as TF Serving's JSON reader does."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _to_json(arr: np.ndarray) -> Any:
    """Numpy to JSON, with strings as {"b64": ...} like TF Serving."""
    if arr.dtype == object:
        return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode()}, otypes=[object])(arr).tolist()
    return arr.tolist()


def rest_predict(server: ModelServer, name: str, version: int | None, body: dict) -> dict:
    """POST /v1/models/NAME[/versions/N]:predict with "instances" (row) or "inputs" (columnar)."""
    rt = runtime.get()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.model_spec.signature_name = body.get("signature_name", "")
    with server.servable_for(request.model_spec) as servable:
        sig_name = request.model_spec.signature_name or "serving_default"
        sig = servable.signatures.get(sig_name)
        if sig is None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f'Serving signature key "{sig_name}" not found.')
        if ("instances" in body) == ("inputs" in body):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, 'Missing "instances" or "inputs" key (give one)')
        row_format = "instances" in body
        raw = body["instances"] if row_format else body["inputs"]
        if row_format:
            if len(sig.inputs) == 1 and not (raw and isinstance(raw[0], dict) and set(raw[0]) <= set(sig.inputs)
                                             and set(raw[0]) != {"b64"}):
                columns = {next(iter(sig.inputs)): raw}
            else:
                columns = {k: [row[k] for row in raw] for k in sig.inputs}
        else:
            columns = raw if isinstance(raw, dict) else {next(iter(sig.inputs)): raw}
        for alias, value in columns.items():
            spec = sig.inputs.get(alias)
            if spec is None:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input tensor alias not found in signature: {alias}")
            try:
                arr = np.asarray(_json_value(value), dtype=object if spec.dtype == rt.string else spec.dtype.as_numpy_dtype)
            except (ValueError, TypeError):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()}: JSON value has the wrong type or shape") from None
            request.inputs[alias].CopyFrom(rt.make_tensor_proto(arr, dtype=spec.dtype))
        resp = server.predict_on(servable, request)
    outputs = {k: _to_json(rt.make_ndarray(v)) for k, v in resp.outputs.items()}
    if not row_format:
        return {"outputs": outputs}
    n = len(next(iter(outputs.values()))) if outputs else 0
    return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(n)]}


def rest_status(server: ModelServer, name: str, version: int | None) -> dict:
    """GET /v1/models/NAME[/versions/N]: TF Serving's JSON model status."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    resp = server.status(request)
    return {"model_version_status": [
        {"version": str(s.version), "state": _STATE_NAMES[s.state],
         "status": {"error_code": "OK" if s.status.error_code == 0 else grpc.StatusCode.UNKNOWN.name,
                    "error_message": s.status.error_message}}
        for s in resp.model_version_status
    ]}


def make_rest_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    """An http.server handler for TF Serving's REST routes and the Prometheus metrics path."""
    route = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(?:(/metadata)|:(predict))?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request, to stderr through logging
            log.debug("rest %s", fmt % args)

        def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
            body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?")[0]
            shown_path = shown_name(path, SHOWN_PATH_CHARS)
            if method == "GET" and server.cfg.metrics_path and path == server.cfg.metrics_path:
                return self._send(200, server.metrics.prometheus(), "text/plain; version=0.0.4")
            m = route.match(path)
            try:
                if not m:
                    raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {shown_path}")
                name, version = m.group(1), (int(m.group(2)) if m.group(2) else None)
                if method == "GET" and not m.group(3) and not m.group(4):
                    return self._send(200, rest_status(server, name, version))
                if method == "GET" and m.group(3):
                    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                    req.model_spec.name = name
                    if version is not None:
                        req.model_spec.version.value = version
                    resp = server.metadata(req)
                    sdm = get_model_metadata_pb2.SignatureDefMap()
                    resp.metadata["signature_def"].Unpack(sdm)
                    return self._send(200, {
                        "model_spec": {"name": name, "signature_name": "", "version": str(resp.model_spec.version.value)},
                        "metadata": {"signature_def": json_format.MessageToDict(sdm)},
                    })
                if method == "POST" and m.group(4):
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > server.cfg.max_message_bytes:
                        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "request body over the size limit")
                    try:
                        body = json.loads(self.rfile.read(length) or b"{}")
                    except ValueError:
                        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "JSON Parse error: invalid JSON") from None
                    if not isinstance(body, dict):
                        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "JSON body must be an object")
                    result = rest_predict(server, name, version, body)
                    server.metrics.count_request(name, grpc.StatusCode.OK)
                    return self._send(200, result)
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {method} {shown_path}")
            except ServingError as e:
                log.info("rest %s %s -> %s: %s", method, shown_path, e.code.name, e.message)
                return self._send(_HTTP_FOR.get(e.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": e.message})
            except Exception as e:  # noqa: BLE001
                log.exception("rest %s %s -> INTERNAL", method, shown_path)
                return self._send(500, {"error": f"internal error: {type(e).__name__}"})

        def do_GET(self):  # noqa: N802
            self._dispatch("GET")

        def do_POST(self):  # noqa: N802
            self._dispatch("POST")

    return Handler
