"""The local server's wiring: flags, the gRPC and REST servers, the lifecycle from start to a drained SIGTERM.

Run: python -m serving.local --port=8500 --model_name=deepfake_detector \\
        --model_base_path=$PWD/saved_model/deepfake_detector [--enable_batching \\
        --batching_parameters_file=serving/batching_parameters.txt] [--rest_api_port=8501] [--lean_process]
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from concurrent import futures
from http.server import ThreadingHTTPServer
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import contract, memory, tf_runtime
from serving.local import runtime
from serving.local.config import (
    DEFAULT_INTRA_OP_THREADS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_REQUEST_BATCH,
    MB,
    BatchingParameters,
    ModelEntry,
    ServerConfig,
    add_lean_flag,
    bool_flag,
    parse_batching_parameters,
    parse_model_config,
    parse_monitoring_config,
)
from serving.local.metrics import Metrics
from serving.local.predict import ModelServer, ModelServicer, PredictionServicer
from serving.local.rest import make_rest_handler

log = logging.getLogger("serving.local")

DESCRIPTION = "A local model server that speaks TensorFlow Serving's gRPC (and REST) API, without Docker."


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    """Build the ServerConfig from tensorflow_model_server-style flags."""
    p = argparse.ArgumentParser(prog="python -m serving.local", description=DESCRIPTION)
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
    add_lean_flag(p)
    a = p.parse_args(argv)
    if a.model_config_file:
        models = parse_model_config(Path(a.model_config_file).read_text())
    elif a.model_base_path:
        models = [ModelEntry(a.model_name, Path(a.model_base_path).resolve())]
    else:
        p.error("give --model_base_path (with --model_name) or --model_config_file")
    enable_batching = bool_flag(a.enable_batching)
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
        log_batches=bool_flag(a.log_batches),
        lean_process=bool_flag(a.lean_process),
    )


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


def trim_after_burst(metrics: Metrics, seen: int, trimmed_at: int) -> tuple[int, int]:
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
    runtime.choose(cfg.lean_process)
    runtime.configure_tensorflow(cfg)
    model_server = ModelServer(cfg)
    server, port = build_grpc_server(model_server, cfg)
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("received %s: draining", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log.info("gRPC listening on %s:%d (max message %d MiB, batching %s, %s)", cfg.bind_address, port,
             cfg.max_message_bytes // MB, f"on {cfg.batching}" if cfg.enable_batching else "off", process_kind())
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
        answered, quiet_since = trim_after_burst(model_server.metrics, answered, quiet_since)
    model_server.health.enter_graceful_shutdown()
    server.stop(grace=cfg.drain_seconds).wait()
    if rest is not None:
        rest.shutdown()
    for m in model_server.managers.values():
        m.stop()
    log.info("stopped cleanly")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Entry point: python -m serving.local [flags] (through `__main__`, which readies the process first)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = parse_args(argv)
    sys.exit(serve(cfg))


def process_kind() -> str:
    """How this process reaches TensorFlow, for the start-up log line (read from the process, not the flag)."""
    if not runtime.get().lean:
        return "TensorFlow public API"
    keras = "Keras loaded" if sys.modules.get("keras") is not None else "no Keras"
    api = "public API loaded" if tf_runtime.public_api_loaded() else "no public API"
    return f"lean process: {api}, {keras}"
