"""A local model server that speaks TensorFlow Serving's gRPC (and REST) API, without Docker.

Run: python -m serving.local --port=8500 --model_name=deepfake_detector \
        --model_base_path=$PWD/saved_model/deepfake_detector [--enable_batching \
        --batching_parameters_file=serving/batching_parameters.txt] [--rest_api_port=8501]

It takes tensorflow_model_server's flag names and behaves like it where a client can tell:
it polls the base path, serves the highest complete version once it is stable and warmed up
(replaying assets.extra/tf_serving_warmup_requests), keeps the old version answering until the
new one is AVAILABLE, and answers with TF Serving's status codes. Clients and tests therefore
work unchanged against a real `tensorflow_model_server`.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import itertools
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ chatter out of our log lines

DEFAULT_INTRA_OP_THREADS = 1
"""One thread per op, measured on the shipped model (MobileNetV2-0.35) on 2 cores: its ops are too small to
split, so a lone request is faster on one thread (from_bytes 7.0 against 10.3 ms in process), and under load
the two batch threads keep a core each instead of contending for both (16 clients: 207-238 against 174-195
img/s). One large batch does run faster split over the cores (batch 32: 253 against 175 img/s): a server that
serves mostly big batches, or a bigger model, may want 0 (TensorFlow's choice: one thread per core)."""

def lean_server_process() -> None:
    """Trim the server process before TensorFlow is imported: no public API, no Keras, fewer malloc arenas.

    `import tensorflow` eagerly imports Keras 3 (and with it pandas, matplotlib, ...: ~2 s of CPU and
    ~170 MiB resident here) although this server only runs SavedModels through a TF1 session and never
    touches tf.keras; marking `keras` as absent makes TensorFlow skip it (its import is optional), and
    the public API itself is not built either (`tf_runtime.skip_public_api`: ~2 s and ~120 MiB more).
    Only for the server's own process (`python -m serving.local`), never for a program importing this module."""
    sys.modules.setdefault("keras", None)
    tf_runtime.skip_public_api()
    memory.limit_arenas()


from serving import memory, tf_runtime  # noqa: E402  (lean_server_process runs before any TensorFlow import)

if __name__ == "__main__":
    lean_server_process()

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow.core.protobuf import config_pb2  # noqa: E402
from tensorflow.python.client import session as tf_session  # noqa: E402
from tensorflow.python.framework import config as tf_config  # noqa: E402
from tensorflow.python.framework import dtypes, errors, ops, tensor_util  # noqa: E402
from tensorflow.python.lib.io import tf_record  # noqa: E402
from tensorflow.python.platform import tf_logging  # noqa: E402
from tensorflow.python.saved_model import loader as saved_model_loader  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

from serving import contract  # noqa: E402

log = logging.getLogger("serving.local")

MB = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 * MB
DEFAULT_MAX_REQUEST_BATCH = 64
"""Largest batch one request may carry when batching is off (with batching: max_batch_size)."""
MAX_WARMUP_RECORDS = 1000
"""TF Serving replays at most this many warm-up records per version."""
MAX_IMAGE_PIXELS = 50_000_000
"""Encoded images above this many pixels are refused before decoding (decompression bombs)."""
SETTLE_POLL_SECONDS = 0.5
"""A candidate version is re-checked this soon to confirm it is stable, not one full poll later."""
QUIET_SECONDS = 10.0
"""A version none of whose files or folders changed (ctime) for this long is stable at first sight: no second
poll (saves the settle wait at startup, when the model was written long before). ctime cannot be backdated
by copying tools, unlike mtime; a load that still fails is retried once the files change."""
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"

State = get_model_status_pb2.ModelVersionStatus.State


class ServingError(Exception):
    """An error a client sees: a gRPC status code and a message (never image content)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# Config files (TF Serving's text protos) ----------------------------------------------------------

def _text_proto_classes() -> dict[str, type]:
    """BatchingParameters and MonitoringConfig, built from TF Serving's field names (the pip
    package ships neither), so their text format is parsed by protobuf itself."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="serving_local/text_configs.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    F = descriptor_pb2.FieldDescriptorProto
    batching = fdp.message_type.add(name="BatchingParameters")
    fields = [
        ("max_batch_size", ".google.protobuf.Int64Value"),
        ("batch_timeout_micros", ".google.protobuf.Int64Value"),
        ("max_enqueued_batches", ".google.protobuf.Int64Value"),
        ("num_batch_threads", ".google.protobuf.Int64Value"),
        ("thread_pool_name", ".google.protobuf.StringValue"),
    ]
    for number, (name, type_name) in enumerate(fields, start=1):
        batching.field.add(name=name, number=number, type=F.TYPE_MESSAGE, type_name=type_name, label=F.LABEL_OPTIONAL)
    batching.field.add(name="allowed_batch_sizes", number=6, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    batching.field.add(
        name="enable_large_batch_splitting", number=8, type=F.TYPE_MESSAGE,
        type_name=".google.protobuf.BoolValue", label=F.LABEL_OPTIONAL,
    )
    batching.field.add(
        name="max_execution_batch_size", number=9, type=F.TYPE_MESSAGE,
        type_name=".google.protobuf.Int64Value", label=F.LABEL_OPTIONAL,
    )
    prometheus = fdp.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=F.TYPE_BOOL, label=F.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    monitoring = fdp.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config", number=1, type=F.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig", label=F.LABEL_OPTIONAL,
    )
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig")
    }


@dataclass(frozen=True)
class BatchingParameters:
    """The batching knobs of TF Serving's --batching_parameters_file that this server honours."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100


def parse_batching_parameters(text: str) -> BatchingParameters:
    """Read TF Serving's batching text proto, e.g. `max_batch_size { value: 32 }`."""
    msg = _text_proto_classes()["BatchingParameters"]()
    text_format.Parse(text, msg)
    defaults = BatchingParameters()
    values = {
        name: (getattr(msg, name).value if msg.HasField(name) else getattr(defaults, name))
        for name in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches")
    }
    params = BatchingParameters(**values)
    if params.max_batch_size < 1 or params.num_batch_threads < 1 or params.batch_timeout_micros < 0:
        raise ValueError(f"invalid batching parameters: {params}")
    return params


def parse_monitoring_config(text: str) -> str | None:
    """The Prometheus metrics path of TF Serving's --monitoring_config_file (None when off)."""
    msg = _text_proto_classes()["MonitoringConfig"]()
    text_format.Parse(text, msg)
    if not msg.prometheus_config.enable:
        return None
    return msg.prometheus_config.path or "/monitoring/prometheus/metrics"


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions to serve: the latest N, all, or specific ones (TF Serving's ServableVersionPolicy)."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def aspired(self, candidates: list[int]) -> list[int]:
        """The versions to load among the complete, stable ones on disk."""
        candidates = sorted(candidates)
        if self.kind == "all":
            return candidates
        if self.kind == "specific":
            return [v for v in candidates if v in self.versions]
        return candidates[-self.num_versions:] if self.num_versions > 0 else []


@dataclass(frozen=True)
class ModelEntry:
    """One model to serve: its name, base path, version policy and version labels."""

    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


def parse_model_config(text: str) -> list[ModelEntry]:
    """Models listed in a ModelServerConfig text proto (--model_config_file)."""
    cfg = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(text, cfg)
    entries = []
    for m in cfg.model_config_list.config:
        if m.model_platform and m.model_platform != "tensorflow":
            raise ValueError(f"model {m.name}: only model_platform 'tensorflow' is served, not {m.model_platform!r}")
        which = m.model_version_policy.WhichOneof("policy_choice")
        if which == "all":
            policy = VersionPolicy("all")
        elif which == "specific":
            policy = VersionPolicy("specific", versions=tuple(m.model_version_policy.specific.versions))
        elif which == "latest":
            policy = VersionPolicy("latest", num_versions=m.model_version_policy.latest.num_versions or 1)
        else:
            policy = VersionPolicy()
        entries.append(ModelEntry(m.name, Path(m.base_path), policy, dict(m.version_labels)))
    return entries


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server takes from its command line (tensorflow_model_server's flag names)."""

    port: int = contract.DEFAULT_GRPC_PORT
    rest_api_port: int = 0
    bind_address: str = "127.0.0.1"
    models: tuple[ModelEntry, ...] = ()
    enable_batching: bool = False
    batching: BatchingParameters = BatchingParameters()
    file_system_poll_wait_seconds: float = 1.0
    max_request_batch_size: int = DEFAULT_MAX_REQUEST_BATCH
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    grpc_max_threads: int = 32
    intra_op_threads: int = DEFAULT_INTRA_OP_THREADS
    inter_op_threads: int = 0
    metrics_path: str | None = None
    drain_seconds: float = 30.0
    log_batches: bool = False

    @property
    def batch_limit(self) -> int:
        """The largest batch a single request may carry."""
        return self.batching.max_batch_size if self.enable_batching else self.max_request_batch_size


def _bool_flag(value: str) -> bool:
    """Accept --flag, --flag=true and --flag=false, like tensorflow_model_server."""
    return str(value).lower() in ("1", "true", "yes", "")


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    """Build the ServerConfig from tensorflow_model_server-style flags."""
    p = argparse.ArgumentParser(prog="python -m serving.local", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=contract.DEFAULT_GRPC_PORT, help="gRPC port")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port (0 = off)")
    p.add_argument("--bind_address", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--model_name", default=contract.MODEL_NAME)
    p.add_argument("--model_base_path", help="folder holding integer version subfolders")
    p.add_argument("--model_config_file", help="ModelServerConfig text proto (instead of name/base path)")
    p.add_argument("--enable_batching", nargs="?", const="true", default="false", type=str)
    p.add_argument("--batching_parameters_file", help="BatchingParameters text proto")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    p.add_argument("--monitoring_config_file", help="MonitoringConfig text proto (Prometheus on the REST port)")
    p.add_argument("--max_request_batch_size", type=int, default=DEFAULT_MAX_REQUEST_BATCH,
                   help="largest batch per request when batching is off")
    p.add_argument("--max_message_mb", type=int, default=DEFAULT_MAX_MESSAGE_BYTES // MB,
                   help="gRPC send/receive message limit in MiB")
    p.add_argument("--grpc_max_threads", type=int, default=32)
    p.add_argument("--tensorflow_intra_op_parallelism", type=int, default=DEFAULT_INTRA_OP_THREADS,
                   help="threads one op may split over; 0: TensorFlow's choice, one per core "
                        f"(default {DEFAULT_INTRA_OP_THREADS}: see DEFAULT_INTRA_OP_THREADS)")
    p.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0)
    p.add_argument("--drain_seconds", type=float, default=30.0, help="grace for in-flight requests on SIGTERM")
    p.add_argument("--log_batches", nargs="?", const="true", default="false", type=str,
                   help="log one line per merged batch (debugging)")
    a = p.parse_args(argv)
    if a.model_config_file:
        models = parse_model_config(Path(a.model_config_file).read_text())
    elif a.model_base_path:
        models = [ModelEntry(a.model_name, Path(a.model_base_path).resolve())]
    else:
        p.error("give --model_base_path (with --model_name) or --model_config_file")
    enable_batching = _bool_flag(a.enable_batching)
    batching = BatchingParameters()
    if a.batching_parameters_file:
        batching = parse_batching_parameters(Path(a.batching_parameters_file).read_text())
    metrics_path = parse_monitoring_config(Path(a.monitoring_config_file).read_text()) if a.monitoring_config_file else None
    return ServerConfig(
        port=a.port,
        rest_api_port=a.rest_api_port,
        bind_address=a.bind_address,
        models=tuple(models),
        enable_batching=enable_batching,
        batching=batching,
        file_system_poll_wait_seconds=a.file_system_poll_wait_seconds,
        max_request_batch_size=a.max_request_batch_size,
        max_message_bytes=a.max_message_mb * MB,
        grpc_max_threads=a.grpc_max_threads,
        intra_op_threads=a.tensorflow_intra_op_parallelism,
        inter_op_threads=a.tensorflow_inter_op_parallelism,
        metrics_path=metrics_path,
        drain_seconds=a.drain_seconds,
        log_batches=_bool_flag(a.log_batches),
    )


# Metrics -----------------------------------------------------------------------------------------

class Metrics:
    """Counters the server exposes in Prometheus text format (and tests read to see batching)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.batches = 0
        self.batched_requests = 0
        self.batch_sizes: dict[int, int] = {}
        self.max_requests_per_batch = 0
        self.inflight = 0

    def count_request(self, model: str, code: grpc.StatusCode) -> None:
        """One finished Predict call, by status code."""
        with self._lock:
            key = (model, code.name)
            self.requests[key] = self.requests.get(key, 0) + 1

    def answered(self) -> int:
        """Predict calls finished so far, any status (the server's activity, for trimming memory when idle)."""
        with self._lock:
            return sum(self.requests.values())

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a Predict call while the server works on it."""
        with self._lock:
            self.inflight += 1
        try:
            yield
        finally:
            with self._lock:
                self.inflight -= 1

    def count_batch(self, requests: int, rows: int) -> None:
        """One model call made by the batcher for `requests` merged requests."""
        with self._lock:
            self.batches += 1
            self.batched_requests += requests
            self.batch_sizes[rows] = self.batch_sizes.get(rows, 0) + 1
            self.max_requests_per_batch = max(self.max_requests_per_batch, requests)

    def prometheus(self) -> str:
        """Prometheus exposition text."""
        with self._lock:
            lines = ["# TYPE :tensorflow:serving:request_count counter"]
            for (model, code), n in sorted(self.requests.items()):
                lines.append(f':tensorflow:serving:request_count{{model_name="{model}",status="{code}"}} {n}')
            lines += [
                "# TYPE :tensorflow:serving:inflight_requests gauge",
                f":tensorflow:serving:inflight_requests {self.inflight}",
                "# TYPE :tensorflow:serving:batching:batches counter",
                f":tensorflow:serving:batching:batches {self.batches}",
                "# TYPE :tensorflow:serving:batching:batched_requests counter",
                f":tensorflow:serving:batching:batched_requests {self.batched_requests}",
                "# TYPE :tensorflow:serving:batching:max_requests_per_batch gauge",
                f":tensorflow:serving:batching:max_requests_per_batch {self.max_requests_per_batch}",
                "# TYPE :tensorflow:serving:batching:processed_batch_size counter",
            ]
            for size, n in sorted(self.batch_sizes.items()):
                lines.append(f':tensorflow:serving:batching:processed_batch_size{{size="{size}"}} {n}')
        return "\n".join(lines) + "\n"


# One loaded version ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorSpec:
    """What a signature expects for one input: dtype and shape (-1 = any)."""

    alias: str
    dtype: dtypes.DType
    shape: tuple[int, ...] | None

    @functools.cached_property
    def enum(self) -> int:
        """The DataType enum a request's TensorProto must carry (looked up once, not per request)."""
        return self.dtype.as_datatype_enum

    @functools.cached_property
    def np_dtype(self) -> np.dtype | None:
        """The numpy dtype tensor_content is read as (None: strings, which have no tensor_content)."""
        return None if self.dtype == dtypes.string else np.dtype(self.dtype.as_numpy_dtype)

    def describe(self) -> str:
        """e.g. `image` float32 [-1,224,224,3]."""
        dims = "unknown" if self.shape is None else "[" + ",".join(str(d) for d in self.shape) + "]"
        return f"`{self.alias}` {self.dtype.name} {dims}"


@dataclass
class Signature:
    """A signature of a loaded version: input specs, the graph tensors to feed and fetch."""

    name: str
    inputs: dict[str, TensorSpec]
    outputs: tuple[str, ...]
    feeds: dict[str, str]
    fetches: dict[str, str]
    empty_answer: dict[str, np.ndarray] | None = None
    """The answer to a 0-row request, where every output's shape is known but for the batch dimension."""

    def expected(self) -> str:
        """The inputs it takes, for error messages."""
        return ", ".join(s.describe() for s in self.inputs.values())


def _spec_of(alias: str, info) -> TensorSpec:
    """TensorSpec from a SignatureDef's TensorInfo."""
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(alias, dtypes.as_dtype(info.dtype), shape)


def _empty_answer(outputs) -> dict[str, np.ndarray] | None:
    """0-row arrays shaped like a signature's outputs (None where a shape is unknown past the batch dimension).

    A 0-row request is answered from these without running the model, as TF Serving answers it: TensorFlow's
    oneDNN kernels (on by default on x86) fail on an empty batch on some CPUs (AVX-512 ones: "Incompatible
    shapes: [0,224,224,3] vs. [16]" from a fused batch norm), where the reference kernels return 0 rows."""
    answer = {}
    for alias, info in outputs.items():
        spec = _spec_of(alias, info)
        if not spec.shape or any(d < 0 for d in spec.shape[1:]):
            return None
        dtype = object if spec.np_dtype is None else spec.np_dtype
        answer[alias] = np.zeros((0, *spec.shape[1:]), dtype)
    return answer


def _dims_of(proto) -> tuple[int, ...]:
    """The shape a TensorProto declares."""
    return tuple(d.size for d in proto.tensor_shape.dim)


def _ndarray_of(proto, spec: TensorSpec, dims: tuple[int, ...]) -> np.ndarray:
    """A request tensor as numpy: numbers in tensor_content are viewed in place (read-only, no copy)."""
    if spec.np_dtype is not None:
        content = proto.tensor_content  # read once: each read of a bytes field makes a new bytes object
        if content:
            return np.frombuffer(content, dtype=spec.np_dtype).reshape(dims)
    return tensor_util.MakeNdarray(proto)


_CONTENT_DTYPES = ("float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64")
"""Numeric dtypes whose tensors are answered as raw little-endian tensor_content, as make_tensor_proto does."""
_SCALAR_FIELDS = {"float32": "float_val", "float64": "double_val", "int8": "int_val", "int16": "int_val",
                  "int32": "int_val", "uint8": "int_val", "int64": "int64_val"}
"""Where make_tensor_proto writes a one-element tensor of these dtypes (it uses tensor_content from 2 elements on)."""


@functools.lru_cache(maxsize=None)
def _content_enum(dtype: np.dtype) -> int | None:
    """The DataType enum of a numeric numpy dtype sent as tensor_content (None: let make_tensor_proto do it)."""
    if dtype.name not in _CONTENT_DTYPES or dtype.byteorder == ">" or sys.byteorder != "little":
        return None
    return dtypes.as_dtype(dtype).as_datatype_enum


def _fill_tensor_proto(proto, arr: np.ndarray) -> None:
    """Write an output into a response's TensorProto in place: the bytes make_tensor_proto would
    produce for numeric arrays, without its per-call checks (strings still go through it)."""
    enum = _content_enum(arr.dtype)
    scalar_field = _SCALAR_FIELDS.get(arr.dtype.name) if arr.size == 1 else None
    if enum is None or (arr.size == 1 and scalar_field is None):
        proto.CopyFrom(tensor_util.make_tensor_proto(arr))
        return
    proto.dtype = enum
    for d in arr.shape:
        proto.tensor_shape.dim.add().size = d
    if scalar_field is not None:
        getattr(proto, scalar_field).append(arr.item())
    elif arr.size:
        proto.tensor_content = arr.tobytes()


class Batcher:
    """Merges concurrent requests for one signature into one model call, then splits the answers.

    Adaptive: a request that finds nothing queued and no batch running is run at once on the
    caller's thread (no queue, no batch timeout: a lone request never waits for company that is
    not coming). Requests that arrive while a batch runs queue up and are merged, waiting up to
    batch_timeout_micros for more only while another batch is running."""

    _STOP = object()

    @dataclass
    class Task:
        inputs: dict[str, np.ndarray]
        rows: int
        future: futures.Future

    def __init__(self, label: str, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                 params: BatchingParameters, metrics: Metrics, log_batches: bool):
        self.label = label
        self._run = run
        self._params = params
        self._metrics = metrics
        self._log_batches = log_batches
        self._lock = threading.Lock()
        self._queued = 0  # tasks submitted to the queue and not yet handed to a batch thread
        self._busy = 0  # batches running now (on a batch thread or a caller's thread)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, params.max_enqueued_batches) * params.max_batch_size)
        self._slots = threading.Semaphore(params.num_batch_threads)
        self._pool = futures.ThreadPoolExecutor(params.num_batch_threads, thread_name_prefix=f"batch-{label}")
        self._collector = threading.Thread(target=self._collect, name=f"collect-{label}", daemon=True)
        self._collector.start()

    def submit(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run a lone request at once; otherwise queue its rows and wait for its slice of a merged answer."""
        if self._claim_idle():
            return self._run_alone(inputs, rows)
        task = Batcher.Task(inputs, rows, futures.Future())
        with self._lock:
            try:
                self._queue.put_nowait(task)
            except queue.Full:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full") from None
            self._queued += 1
        return task.future.result()

    def _claim_idle(self) -> bool:
        """True (and a batch slot taken) when nothing is queued or running: there is no one to merge with."""
        with self._lock:
            if self._queued or self._busy or not self._slots.acquire(blocking=False):
                return False
            self._busy += 1
            return True

    def _run_alone(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """One request as its own batch, on the calling thread (no hand-offs)."""
        try:
            return self._run(inputs)
        finally:
            self._done(1, rows)

    def _done(self, requests: int, rows: int) -> None:
        """A batch finished: count it, free its slot."""
        with self._lock:
            self._busy -= 1
        self._slots.release()
        self._metrics.count_batch(requests, rows)
        if self._log_batches:
            log.info("batch signature=%s requests=%d rows=%d", self.label, requests, rows)

    def _collect(self) -> None:
        """Form batches: the first waiting task, plus whatever fits (waiting only while others run)."""
        carry = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is Batcher._STOP:
                return
            self._slots.acquire()  # wait for a free batch thread, so waiting tasks pile into one batch
            batch, rows, carry = self._fill(first)
            with self._lock:
                self._queued -= len(batch)
                self._busy += 1
            self._pool.submit(self._execute, batch, rows)

    def _fill(self, first: "Batcher.Task") -> tuple[list["Batcher.Task"], int, Any]:
        """The batch that starts with `first`: queued tasks that fit, and the first one that did not."""
        batch, rows = [first], first.rows
        limit = self._params.max_batch_size
        deadline = time.monotonic() + self._params.batch_timeout_micros / 1e6
        while rows < limit:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._busy:  # nothing else runs: no company is coming soon
                    break
                try:
                    task = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if task is Batcher._STOP or rows + task.rows > limit:
                return batch, rows, task
            batch.append(task)
            rows += task.rows
        return batch, rows, None

    def _execute(self, batch: list["Batcher.Task"], rows: int) -> None:
        """Run one merged batch and hand every task its rows (failing tasks alone where possible)."""
        try:
            if len(batch) == 1:
                self._finish(batch[0], lambda: self._run(batch[0].inputs))
            else:
                merged = {k: np.concatenate([t.inputs[k] for t in batch], axis=0) for k in batch[0].inputs}
                try:
                    out = self._run(merged)
                except ServingError as e:
                    if e.code != grpc.StatusCode.INVALID_ARGUMENT:
                        raise
                    # One bad request must not fail its neighbours: retry each on its own.
                    for t in batch:
                        self._finish(t, lambda t=t: self._run(t.inputs))
                else:
                    start = 0
                    for t in batch:
                        t.future.set_result({k: v[start:start + t.rows] for k, v in out.items()})
                        start += t.rows
        except BaseException as e:  # noqa: BLE001 - every waiter must be woken
            for t in batch:
                if not t.future.done():
                    t.future.set_exception(e)
        finally:
            self._done(len(batch), rows)

    @staticmethod
    def _finish(task: "Batcher.Task", call: Callable[[], dict[str, np.ndarray]]) -> None:
        """Set a task's result or exception from `call`."""
        try:
            task.future.set_result(call())
        except BaseException as e:  # noqa: BLE001
            task.future.set_exception(e)

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self._queue.put(Batcher._STOP)
        self._collector.join(timeout=10)
        self._pool.shutdown(wait=True)


def _copy_message(msg: Any) -> Any:
    """A standalone copy of a protobuf message (not a view that keeps its parent message alive)."""
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _session_runner(session: tf_session.Session, graph: ops.Graph,
                    sig: Signature) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """One signature's model call with its feeds and fetches resolved once, not on every request.

    Session.run re-parses its fetch dict and re-checks every feed against the graph on each call
    (~0.5 ms of Python per request here); the request was already checked against the signature,
    so this calls the session's own C entry with the resolved graph outputs. Falls back to
    Session.run should a TensorFlow release drop that entry."""
    aliases = tuple(sig.fetches)
    call = getattr(session, "_call_tf_sessionrun", None)
    if call is None:
        def run_public(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return session.run(sig.fetches, {sig.feeds[k]: v for k, v in inputs.items()})
        return run_public
    feeds = {alias: graph.get_tensor_by_name(name)._as_tf_output() for alias, name in sig.feeds.items()}  # noqa: SLF001
    fetches = [graph.get_tensor_by_name(sig.fetches[a])._as_tf_output() for a in aliases]  # noqa: SLF001

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(aliases, call(None, {feeds[k]: v for k, v in inputs.items()}, fetches, [], None)))

    return run


class Servable:
    """One loaded model version: its signatures, its SignatureDefs, a batcher per signature."""

    def __init__(self, name: str, version: int, path: Path, cfg: ServerConfig, metrics: Metrics):
        self.name = name
        self.version = version
        self.path = path
        self._cfg = cfg
        self._lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        # Loaded the way tensorflow_model_server loads it (a session on the MetaGraph, variables
        # restored by the SavedModel's saver), so a version that TF Serving could not run fails here too.
        self._graph = ops.Graph()
        self._session = tf_session.Session(graph=self._graph, config=session_config(cfg))
        with self._graph.as_default():
            meta = saved_model_loader.load(self._session, ["serve"], str(path))
        # Own copies of the SignatureDefs, so the MetaGraphDef (graph and function library, now in the session) is freed.
        self.signature_defs = {key: _copy_message(sd) for key, sd in meta.signature_def.items()}
        del meta
        self.signatures: dict[str, Signature] = {}
        for key, sd in self.signature_defs.items():
            if sd.method_name != "tensorflow/serving/predict":
                continue
            self.signatures[key] = Signature(
                key,
                {alias: _spec_of(alias, info) for alias, info in sd.inputs.items()},
                tuple(sorted(sd.outputs.keys())),
                {alias: info.name for alias, info in sd.inputs.items()},
                {alias: info.name for alias, info in sd.outputs.items()},
                _empty_answer(sd.outputs),
            )
        self._runners = {key: _session_runner(self._session, self._graph, sig) for key, sig in self.signatures.items()}
        self._batchers: dict[str, Batcher] = {}
        if cfg.enable_batching:
            for key in self.signatures:
                self._batchers[key] = Batcher(
                    f"{name}/{version}/{key}",
                    lambda inputs, key=key: self.run(key, inputs),
                    cfg.batching, metrics, cfg.log_batches,
                )

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One model call, with TensorFlow's input errors turned into INVALID_ARGUMENT."""
        try:
            return self._runners[signature](inputs)
        except errors.InvalidArgumentError as e:
            first_line = (e.message or "").strip().split("\n")[0][:300]
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature {signature!r} could not process its input: {first_line}") from None

    def predict(self, signature: str, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run through the batcher when batching is on (empty batches are answered at once: `_empty_answer`)."""
        if rows == 0:
            empty = self.signatures[signature].empty_answer
            return self.run(signature, inputs) if empty is None else dict(empty)
        batcher = self._batchers.get(signature)
        if batcher is None:
            return self.run(signature, inputs)
        return batcher.submit(inputs, rows)

    @contextlib.contextmanager
    def in_use(self) -> Iterator["Servable"]:
        """Count a request in flight so the version is not unloaded under it."""
        with self._lock:
            self._inflight += 1
        try:
            yield self
        finally:
            with self._lock:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.notify_all()

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until no request uses this version, then stop its batchers."""
        with self._lock:
            self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout)
        for b in self._batchers.values():
            b.close()
        self._session.close()

    def warm_up(self, handle: Callable[[predict_pb2.PredictRequest, "Servable"], Any]) -> int:
        """Replay assets.extra/tf_serving_warmup_requests (PredictionLog TFRecords); returns the count.

        Records run in file order within a signature; the signatures warm up side by side, since
        each one's first call is mostly single-threaded graph optimisation."""
        path = self.path / contract.WARMUP_FILE
        if not path.is_file():
            return 0
        by_signature: dict[str, list[predict_pb2.PredictRequest]] = {}
        n = 0
        for record in itertools.islice(tf_record.tf_record_iterator(str(path)), MAX_WARMUP_RECORDS):
            entry = prediction_log_pb2.PredictionLog.FromString(record)
            if entry.WhichOneof("log_type") != "predict_log":
                raise ValueError(f"warm-up record {n}: only predict_log records are supported")
            req = entry.predict_log.request
            by_signature.setdefault(req.model_spec.signature_name or "serving_default", []).append(req)
            n += 1

        def replay(requests: list[predict_pb2.PredictRequest]) -> None:
            for req in requests:
                handle(req, self)

        with futures.ThreadPoolExecutor(max(1, len(by_signature)), thread_name_prefix="warmup") as pool:
            for f in [pool.submit(replay, reqs) for reqs in by_signature.values()]:
                f.result()
        return n


# The versions of one model -----------------------------------------------------------------------

@dataclass
class VersionState:
    """What GetModelStatus reports for one version."""

    state: int
    error_code: int = 0
    error_message: str = ""


def _snapshot(path: Path) -> tuple[tuple, int]:
    """Names, sizes and mtimes of every file under a version (equal across two polls = stable), and the newest
    change time (ctime, ns) of the folder and everything under it."""
    items = []
    newest = 0
    with contextlib.suppress(OSError):
        newest = path.stat().st_ctime_ns
    for p in sorted(path.rglob("*")):
        with contextlib.suppress(OSError):
            st = p.stat()
            items.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns))
            newest = max(newest, st.st_ctime_ns)
    return tuple(items), newest


class ModelManager:
    """Polls one model's base path and loads, warms, swaps and unloads its versions like TF Serving."""

    def __init__(self, entry: ModelEntry, cfg: ServerConfig, metrics: Metrics,
                 warmup: Callable[[predict_pb2.PredictRequest, Servable], Any], on_change: Callable[[], None]):
        self.entry = entry
        self._cfg = cfg
        self._metrics = metrics
        self._warmup = warmup
        self._on_change = on_change
        self._lock = threading.Lock()
        self._servables: dict[int, Servable] = {}
        self.states: dict[int, VersionState] = {}
        self._seen: dict[int, tuple] = {}
        self._failed: dict[int, tuple] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"poll-{entry.name}", daemon=True)

    @property
    def name(self) -> str:
        """The served model name."""
        return self.entry.name

    def start(self) -> None:
        """Begin polling the base path in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and unload every version (after its in-flight requests)."""
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            servables = list(self._servables.values())
            self._servables.clear()
        for s in servables:
            s.drain()

    def available(self) -> list[int]:
        """Versions that answer requests now."""
        with self._lock:
            return sorted(self._servables)

    @contextlib.contextmanager
    def acquire(self, version: int | None = None, label: str = "") -> Iterator[Servable]:
        """The servable for a request (latest by default), held until the request is answered."""
        if label:
            if label not in self.entry.labels:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Unrecognized servable version label: {label}")
            version = self.entry.labels[label]
        with self._lock:
            if not self._servables:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   f"Servable {self.name} has no version AVAILABLE yet (loading or none on disk)")
            key = max(self._servables) if version is None else version
            servable = self._servables.get(key)
            if servable is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({self.name}, {version})")
            ctx = servable.in_use()
            ctx.__enter__()
        try:
            yield servable
        finally:
            ctx.__exit__(None, None, None)

    def _loop(self) -> None:
        """Poll until stopped; re-check soon while a candidate is settling."""
        while not self._stop.is_set():
            try:
                settling = self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive anything on disk
                log.exception("model=%s poll failed", self.name)
                settling = False
            wait = self._cfg.file_system_poll_wait_seconds
            if settling:
                wait = min(wait, SETTLE_POLL_SECONDS)
            self._stop.wait(max(wait, 0.05))

    def poll_once(self) -> bool:
        """One poll: load newly stable aspired versions, then unload the ones no longer aspired."""
        base = self.entry.base_path
        stable, settling = [], False
        seen: dict[int, tuple] = {}
        for v in contract.version_dirs(base):
            vpath = base / str(v)
            if not contract.is_complete_version(vpath):
                continue
            fp, changed_ns = _snapshot(vpath)
            seen[v] = fp
            if self._seen.get(v) == fp or time.time_ns() - changed_ns >= QUIET_SECONDS * 1e9:
                stable.append(v)
            else:
                settling = True
        self._seen = seen
        aspired = self.entry.policy.aspired(stable)
        for v in aspired:
            if v in self._servables or self._failed.get(v) == seen[v]:
                continue
            self._load(v, seen[v])
            if self._stop.is_set():
                return False
        loaded_aspired = [v for v in aspired if v in self._servables]
        on_disk = set(contract.version_dirs(base))
        for v in list(self._servables):
            if v in aspired:
                continue
            # Availability first: drop an old version only once a newer one answers (or it is gone).
            if loaded_aspired or v not in on_disk:
                self._unload(v)
        return settling or any(v not in self._servables and self._failed.get(v) != seen[v]
                               for v in self.entry.policy.aspired(list(seen)))

    def _load(self, version: int, fp: tuple) -> None:
        """Load and warm one version, then make it AVAILABLE."""
        path = self.entry.base_path / str(version)
        self.states[version] = VersionState(State.LOADING)
        log.info("model=%s version=%d loading from %s", self.name, version, path)
        t0 = time.monotonic()
        try:
            servable = Servable(self.name, version, path, self._cfg, self._metrics)
            t1 = time.monotonic()
            dropped = memory.drop_load_only_code()
            n = servable.warm_up(self._warmup)
        except Exception as e:  # noqa: BLE001 - a bad version must not take the server down
            self._failed[version] = fp
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
            self.states[version] = VersionState(State.END, error_code=grpc.StatusCode.UNKNOWN.value[0], error_message=msg)
            log.error("model=%s version=%d failed to load: %s", self.name, version, msg)
            return
        with self._lock:
            self._servables[version] = servable
        self.states[version] = VersionState(State.AVAILABLE)
        log.info("model=%s version=%d AVAILABLE (load %.2fs%s, %d warm-up requests %.2fs)",
                 self.name, version, t1 - t0, dropped, n, time.monotonic() - t1)
        self._on_change()
        memory.release_free_memory()  # what loading and warm-up freed: not kept resident while serving

    def _unload(self, version: int) -> None:
        """Stop routing to a version, let its in-flight requests finish, then drop it."""
        with self._lock:
            servable = self._servables.pop(version)
        self.states[version] = VersionState(State.UNLOADING)
        self._on_change()
        log.info("model=%s version=%d unloading", self.name, version)
        servable.drain()
        del servable
        memory.release_free_memory()
        self.states[version] = VersionState(State.END)
        log.info("model=%s version=%d unloaded", self.name, version)


# The gRPC services -------------------------------------------------------------------------------

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
            _fill_tensor_proto(resp.outputs[name], out[name])
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
                    got = dtypes.as_dtype(proto.dtype).name if proto.dtype else "DT_INVALID"
                except TypeError:  # an enum value no dtype has (a hostile or corrupt request)
                    got = f"unknown dtype enum {proto.dtype}"
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()} of signature {sig.name!r} got dtype {got}")
            dims = _dims_of(proto)
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
                arrays[alias] = _ndarray_of(proto, spec, dims)
            except Exception as e:  # noqa: BLE001 - a malformed proto is the client's error
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()} is malformed: {type(e).__name__}") from None
            if arrays[alias].shape != dims:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()}: content does not match shape {list(dims)}")
            if spec.np_dtype is None:
                _check_encoded_images(alias, arrays[alias])
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


def _check_encoded_images(alias: str, arr: np.ndarray) -> None:
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


UNKNOWN_MODEL = "<unknown>"
"""Logs and metrics count requests for a model that is not served under this one label: a client choosing
the name must not add a metrics series (memory) or write arbitrary text into the log per request."""
SHOWN_NAME_CHARS = 64
SHOWN_PATH_CHARS = 200


def shown_name(name: str, limit: int = SHOWN_NAME_CHARS) -> str:
    """Client-supplied text (a model name, a URL path) as it may appear in a message or log: printable, capped."""
    clean = "".join(c if c.isprintable() else "?" for c in name[:limit])
    return clean + ("..." if len(name) > limit else "")


def _grpc_call(server: ModelServer, what: str, fn: Callable[[Any], Any], count: bool = False):
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
        self.Predict = _grpc_call(server, "Predict", server.predict, count=True)
        self.GetModelMetadata = _grpc_call(server, "GetModelMetadata", server.metadata)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus (model reloads are not offered)."""

    def __init__(self, server: ModelServer):
        self.GetModelStatus = _grpc_call(server, "GetModelStatus", server.status)


# REST (TF Serving's JSON API) --------------------------------------------------------------------

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
                arr = np.asarray(_json_value(value), dtype=object if spec.dtype == dtypes.string else spec.dtype.as_numpy_dtype)
            except (ValueError, TypeError):
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input {spec.describe()}: JSON value has the wrong type or shape") from None
            request.inputs[alias].CopyFrom(tensor_util.make_tensor_proto(arr, dtype=spec.dtype))
        resp = server.predict_on(servable, request)
    outputs = {k: _to_json(tensor_util.MakeNdarray(v)) for k, v in resp.outputs.items()}
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
    import re

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
                    from google.protobuf import json_format

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


# Running it --------------------------------------------------------------------------------------

def session_config(cfg: ServerConfig) -> config_pb2.ConfigProto:
    """Session thread pools sized for the machine (2 cores here), as tensorflow_model_server's flags do.

    Grappler's graph-level pass is off: a SavedModel's signature is one call of a function, which the
    call's own kernel optimises when it first runs, so the session-level pass found nothing to change
    (same ops run per step, checked from step traces) yet cost ~0.3 s of CPU on each new feed/fetch set,
    three of them at load (restore, init, first call): ~1 s of the cold start."""
    cores = os.cpu_count() or 2
    config = config_pb2.ConfigProto(
        intra_op_parallelism_threads=cfg.intra_op_threads or cores,
        inter_op_parallelism_threads=cfg.inter_op_threads or min(2, cores),
    )
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def configure_tensorflow(cfg: ServerConfig) -> None:
    """Thread pools sized for the machine (2 cores here), set before TensorFlow starts its runtime."""
    cores = os.cpu_count() or 2
    tf_logging.get_logger().setLevel("ERROR")  # the TF1-style loader's deprecation notices are not events
    tf_config.set_intra_op_parallelism_threads(cfg.intra_op_threads or cores)
    tf_config.set_inter_op_parallelism_threads(cfg.inter_op_threads or min(2, cores))


def build_grpc_server(model_server: ModelServer, cfg: ServerConfig) -> tuple[grpc.Server, int]:
    """The gRPC server with the three services and explicit message size limits."""
    options = [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=cfg.grpc_max_threads, thread_name_prefix="grpc"),
        options=options,
        maximum_concurrent_rpcs=cfg.grpc_max_threads * 8,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(model_server), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(model_server), server)
    health_pb2_grpc.add_HealthServicer_to_server(model_server.health, server)
    port = server.add_insecure_port(f"{cfg.bind_address}:{cfg.port}")
    if port == 0:
        raise OSError(f"cannot listen on {cfg.bind_address}:{cfg.port}")
    return server, port


def _trim_after_burst(metrics: Metrics, seen: int, trimmed_at: int) -> tuple[int, int]:
    """Give freed memory back once requests stop: called every 0.5 s, trims when none was answered
    since the last call but some were since the last trim (never between requests of a busy period).
    Returns the new (seen, trimmed_at) counts."""
    now = metrics.answered()
    if now == seen and now != trimmed_at and metrics.inflight == 0:
        memory.release_free_memory()
        return now, now
    return now, trimmed_at


def serve(cfg: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT, then drain in-flight requests and return 0."""
    configure_tensorflow(cfg)
    model_server = ModelServer(cfg)
    server, port = build_grpc_server(model_server, cfg)
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("received %s: draining", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log.info("gRPC listening on %s:%d (max message %d MiB, batching %s)", cfg.bind_address, port,
             cfg.max_message_bytes // MB, f"on {cfg.batching}" if cfg.enable_batching else "off")
    rest = None
    if cfg.rest_api_port:
        rest = ThreadingHTTPServer((cfg.bind_address, cfg.rest_api_port), make_rest_handler(model_server))
        rest.daemon_threads = True
        threading.Thread(target=rest.serve_forever, name="rest", daemon=True).start()
        log.info("REST listening on %s:%d%s", cfg.bind_address, cfg.rest_api_port,
                 f" (metrics at {cfg.metrics_path})" if cfg.metrics_path else "")
    for m in model_server.managers.values():
        log.info("model=%s base_path=%s policy=%s", m.name, m.entry.base_path, m.entry.policy)
        m.start()
    answered = quiet_since = model_server.metrics.answered()
    while not stop.wait(0.5):
        answered, quiet_since = _trim_after_burst(model_server.metrics, answered, quiet_since)
    model_server.health.enter_graceful_shutdown()
    server.stop(grace=cfg.drain_seconds).wait()
    if rest is not None:
        rest.shutdown()
    for m in model_server.managers.values():
        m.stop()
    log.info("stopped cleanly")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point: python -m serving.local [flags]."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = parse_args(argv)
    sys.exit(serve(cfg))


if __name__ == "__main__":
    main()
