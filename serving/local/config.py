"""TF Serving's configuration for the local server: its text-proto config files and the ServerConfig they make.

Pure Python and protobuf (no TensorFlow import), so the flags can be read before the runtime is chosen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import contract

MB = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 * MB
DEFAULT_MAX_REQUEST_BATCH = 64
"""Largest batch one request may carry when batching is off (with batching: max_batch_size)."""

DEFAULT_INTRA_OP_THREADS = 1
"""One thread per op, measured on the shipped model (MobileNetV2-0.35) on 2 cores: its ops are too small to
split, so a lone request is faster on one thread (from_bytes 7.0 against 10.3 ms in process), and under load
the two batch threads keep a core each instead of contending for both (16 clients: 207-238 against 174-195
img/s). One large batch does run faster split over the cores (batch 32: 253 against 175 img/s): a server that
serves mostly big batches, or a bigger model, may want 0 (TensorFlow's choice: one thread per core)."""


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
    lean_process: bool = False

    @property
    def batch_limit(self) -> int:
        """The largest batch a single request may carry."""
        return self.batching.max_batch_size if self.enable_batching else self.max_request_batch_size


def bool_flag(value: str) -> bool:
    """Accept --flag, --flag=true and --flag=false, like tensorflow_model_server."""
    return str(value).lower() in ("1", "true", "yes", "")


LEAN_FLAG = "--lean_process"


def add_lean_flag(parser) -> None:
    """The one flag that turns the lean-process tricks on (declared once: the server's and `runtime`'s parsers)."""
    parser.add_argument(LEAN_FLAG, nargs="?", const="true", default="false", type=str,
                        help="TensorFlow's runtime modules without its public API or Keras, and the library pages "
                             "loading faulted in dropped: less memory and a faster start, on private TensorFlow "
                             "modules a release may change (default off: TensorFlow's public API)")
