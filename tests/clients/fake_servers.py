"""Tiny gRPC servers of our own on loopback that misbehave on purpose: slow, flaky, or refusing."""
from __future__ import annotations

import time
from concurrent import futures
from contextlib import contextmanager
from typing import Callable, Iterator

import grpc

from clients.core.protos import tfs_pb2
from tests.helpers import free_port


def ok_response(n: int, p: float | list[float] = 0.25, version: int = 4,
                threshold: float = 0.5) -> tfs_pb2.PredictResponse:
    """A contract-shaped PredictResponse for n crops (p: one probability for all, or one per crop)."""
    probs = list(p) if isinstance(p, (list, tuple)) else [p] * n
    resp = tfs_pb2.PredictResponse()
    resp.model_spec.name = "deepfake_detector"
    resp.model_spec.version.value = version
    shapes = {"fake_probability": ([n], probs), "threshold": ([n], [threshold] * n),
              "uncertain_band": ([n, 2], [threshold - 0.1, threshold + 0.1] * n),
              "heatmap": ([n, 7, 7], [0.5] * (49 * n))}
    for key, (shape, values) in shapes.items():
        t = resp.outputs[key]
        t.dtype = tfs_pb2.DT_FLOAT
        for s in shape:
            t.tensor_shape.dim.add().size = s
        t.float_val.extend(values)
    return resp


class Recorder:
    """Counts calls and lets a test script each answer."""

    def __init__(self, behaviour: Callable[[int, tfs_pb2.PredictRequest, grpc.ServicerContext], tfs_pb2.PredictResponse]):
        self.calls = 0
        self.behaviour = behaviour

    def predict(self, request: tfs_pb2.PredictRequest, context: grpc.ServicerContext) -> tfs_pb2.PredictResponse:
        self.calls += 1
        return self.behaviour(self.calls, request, context)


@contextmanager
def predict_server(behaviour) -> Iterator[tuple[str, Recorder]]:
    """A PredictionService/Predict server on 127.0.0.1 driven by `behaviour(call_no, request, context)`."""
    rec = Recorder(behaviour)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
        "Predict": grpc.unary_unary_rpc_method_handler(
            rec.predict, request_deserializer=tfs_pb2.PredictRequest.FromString,
            response_serializer=tfs_pb2.PredictResponse.SerializeToString)})
    server.add_generic_rpc_handlers((handler,))
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield f"127.0.0.1:{port}", rec
    finally:
        server.stop(grace=None)


def sleeper(seconds: float):
    """A behaviour that answers correctly, but only after `seconds`."""
    def behave(call, request, context):
        time.sleep(seconds)
        return ok_response(len(request.inputs["image_bytes"].string_val))
    return behave


def scripted(probabilities: list[float], threshold: float = 0.5, band: float = 0.1, version: int = 4):
    """A behaviour that gives the i-th crop probabilities[i] (cycling) under a threshold the test controls."""
    def behave(call, request, context):
        n = len(request.inputs["image_bytes"].string_val)
        resp = ok_response(n, [probabilities[i % len(probabilities)] for i in range(n)], version, threshold)
        band_t = resp.outputs["uncertain_band"]
        del band_t.float_val[:]
        band_t.float_val.extend([threshold - band, threshold + band] * n)
        return resp
    return behave
