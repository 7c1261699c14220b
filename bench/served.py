"""Served figures through gRPC on loopback: single-request latency and throughput under 16 concurrent clients."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Callable

import grpc
import numpy as np

from bench.stats import Summary, percentile, summarise, timed_ms
from clients.core.grpc_client import CHANNEL_OPTIONS, PREDICT, AsyncDetectorClient, DetectorClient, OUTPUT_FILTER
from clients.core.protos import tfs_pb2
from serving import contract


def pixels_request(pixels: np.ndarray) -> tfs_pb2.PredictRequest:
    """A serving_default request carrying float32 pixels as tensor_content (how TF's make_tensor_proto packs them)."""
    req = tfs_pb2.PredictRequest()
    req.model_spec.name = contract.MODEL_NAME
    req.model_spec.signature_name = contract.SIGNATURE_PIXELS
    t = req.inputs[contract.INPUT_PIXELS]
    t.dtype = tfs_pb2.DT_FLOAT
    for d in pixels.shape:
        t.tensor_shape.dim.add().size = d
    t.tensor_content = np.ascontiguousarray(pixels, np.float32).tobytes()
    req.output_filter.extend(OUTPUT_FILTER)
    return req


def pixels_caller(target: str, pixels: np.ndarray) -> tuple[Callable[[], object], grpc.Channel]:
    """A no-argument Predict call on serving_default (the client library only speaks from_bytes)."""
    channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    stub = channel.unary_unary(PREDICT, request_serializer=tfs_pb2.PredictRequest.SerializeToString,
                               response_deserializer=tfs_pb2.PredictResponse.FromString)
    req = pixels_request(pixels)
    return (lambda: stub(req, timeout=30)), channel


def latency(target: str, crop_png: bytes, pixels: np.ndarray, requests: int) -> dict[str, Summary]:
    """Sequential single-image requests: ms per request for from_bytes (the client's path) and serving_default."""
    out = {}
    with DetectorClient(target, timeout_s=30) as client:
        for _ in range(3):
            client.predict([crop_png])
        out[contract.SIGNATURE_BYTES] = summarise([timed_ms(lambda: client.predict([crop_png]))[0]
                                                   for _ in range(requests)])
    call, channel = pixels_caller(target, pixels)
    try:
        for _ in range(3):
            call()
        out[contract.SIGNATURE_PIXELS] = summarise([timed_ms(call)[0] for _ in range(requests)])
    finally:
        channel.close()
    return out


@dataclass(frozen=True)
class LoadRun:
    """One timed round of concurrent load."""

    images_per_s: float
    latencies_ms: list[float]


async def _load_round(target: str, crop_png: bytes, clients: int, seconds: float) -> LoadRun:
    """`clients` concurrent single-image from_bytes requesters on one channel each, for `seconds`."""
    conns = [AsyncDetectorClient(target, timeout_s=60) for _ in range(clients)]
    try:
        await asyncio.gather(*(c.predict([crop_png]) for c in conns))  # connect and warm each channel
        latencies: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def worker(c: AsyncDetectorClient) -> int:
            n = 0
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await c.predict([crop_png])
                latencies.append(1000.0 * (time.perf_counter() - t0))
                n += 1
            return n

        t0 = time.perf_counter()
        done = sum(await asyncio.gather(*(worker(c) for c in conns)))
        return LoadRun(done / (time.perf_counter() - t0), latencies)
    finally:
        for c in conns:
            await c.close()


class RssSampler:
    """Samples a process's RSS every 50 ms in a thread; `.peak` is the highest seen."""

    def __init__(self, read: Callable[[], float]):
        self._read = read
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._read())
            except OSError:
                return
            self._stop.wait(0.05)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class LoadFigures:
    """Served throughput over rounds, latency under load, and the server's peak RSS under load."""

    throughput: Summary
    latency_p50_ms: float
    latency_p99_ms: float
    rss_peak_mb: float


def load(target: str, crop_png: bytes, rss: Callable[[], float], clients: int, seconds: float,
         rounds: int) -> LoadFigures:
    """Rounds of concurrent load, with the server's RSS sampled throughout."""
    runs = []
    with RssSampler(rss) as sampler:
        for _ in range(rounds):
            runs.append(asyncio.run(_load_round(target, crop_png, clients, seconds)))
    lat = [x for r in runs for x in r.latencies_ms]
    return LoadFigures(summarise([r.images_per_s for r in runs]), percentile(lat, 50), percentile(lat, 99),
                       sampler.peak)
