"""How the local server reaches TensorFlow: through its public API (the default), or lean (`--lean_process`).

Public: `import tensorflow as tf` and only `tf.` names (`tf.compat.v1.Session` and the TF1 SavedModel loader,
which load a version the way tensorflow_model_server does, for parity). Lean: the same runtime reached through
TensorFlow's private `tensorflow.python.*` modules with the package's `__init__` skipped and Keras marked absent
(`serving/tf_runtime.py`), plus the load-only library pages dropped after each load (`serving/memory.py`).
Both run the same graph on the same kernels with the same session settings, so they give the same answers; the
lean one starts faster and holds less memory, but a TensorFlow release can break it. Nothing here imports
TensorFlow at import time: `__main__` calls `prepare_process` first, then the server calls `choose`.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from serving import memory, tf_runtime
from serving.local import config


@dataclass(frozen=True)
class Runtime:
    """The TensorFlow names the server calls, from one source (public API or private modules)."""

    lean: bool
    Graph: type
    Session: type
    ConfigProto: type
    load_saved_model: Callable[..., Any]
    """(session, tags, export_dir) -> MetaGraphDef: the TF1 loader, variables restored by the SavedModel's saver."""
    as_dtype: Callable[[Any], Any]
    string: Any
    make_tensor_proto: Callable[..., Any]
    make_ndarray: Callable[[Any], Any]
    InvalidArgumentError: type
    tf_record_iterator: Callable[[str], Any]
    set_intra_op_threads: Callable[[int], None]
    set_inter_op_threads: Callable[[int], None]
    python_logger: Callable[[], Any]


@functools.lru_cache(maxsize=1)
def public_runtime() -> Runtime:
    """TensorFlow's public API only (`tf.` names): what a TensorFlow release promises to keep."""
    import tensorflow as tf

    v1 = tf.compat.v1
    return Runtime(
        lean=False, Graph=tf.Graph, Session=v1.Session, ConfigProto=v1.ConfigProto,
        load_saved_model=v1.saved_model.loader.load, as_dtype=tf.dtypes.as_dtype, string=tf.string,
        make_tensor_proto=tf.make_tensor_proto, make_ndarray=tf.make_ndarray,
        InvalidArgumentError=tf.errors.InvalidArgumentError, tf_record_iterator=v1.io.tf_record_iterator,
        set_intra_op_threads=tf.config.threading.set_intra_op_parallelism_threads,
        set_inter_op_threads=tf.config.threading.set_inter_op_parallelism_threads,
        python_logger=tf.get_logger,
    )


@functools.lru_cache(maxsize=1)
def lean_runtime() -> Runtime:
    """The same calls from TensorFlow's private modules, which import without its public API (see tf_runtime)."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.client import session as tf_session
    from tensorflow.python.framework import config as tf_config
    from tensorflow.python.framework import dtypes, errors, ops, tensor_util
    from tensorflow.python.lib.io import tf_record
    from tensorflow.python.platform import tf_logging
    from tensorflow.python.saved_model import loader as saved_model_loader

    return Runtime(
        lean=True, Graph=ops.Graph, Session=tf_session.Session, ConfigProto=config_pb2.ConfigProto,
        load_saved_model=saved_model_loader.load, as_dtype=dtypes.as_dtype, string=dtypes.string,
        make_tensor_proto=tensor_util.make_tensor_proto, make_ndarray=tensor_util.MakeNdarray,
        InvalidArgumentError=errors.InvalidArgumentError, tf_record_iterator=tf_record.tf_record_iterator,
        set_intra_op_threads=tf_config.set_intra_op_parallelism_threads,
        set_inter_op_threads=tf_config.set_inter_op_parallelism_threads,
        python_logger=tf_logging.get_logger,
    )


_chosen: list[Runtime] = []


def choose(lean: bool) -> Runtime:
    """Fix the runtime of this process (TensorFlow is one per process); the server calls it from its flag."""
    rt = lean_runtime() if lean else public_runtime()
    _chosen[:] = [rt]
    return rt


def get() -> Runtime:
    """The runtime chosen for this process, or the public API where none was (a program using these modules)."""
    return _chosen[0] if _chosen else public_runtime()


def lean_requested(argv: list[str]) -> bool:
    """Whether a command line asks for the lean process (read before the full flags, which need TensorFlow's protos)."""
    parser = argparse.ArgumentParser(add_help=False)
    config.add_lean_flag(parser)
    known, _ = parser.parse_known_args(argv)
    return config.bool_flag(known.lean_process)


def prepare_process(argv: list[str]) -> bool:
    """Ready the server's own process before TensorFlow is imported; returns whether it is lean.

    Always: TensorFlow's C++ chatter off the log, malloc arenas capped (glibc, before any thread starts). Lean
    only: `import tensorflow` would eagerly import Keras 3 (pandas, matplotlib, ...: ~2 s of CPU, ~170 MiB) and
    build the public API (~2 s, ~120 MiB more), neither of which the server uses; both are skipped. Only for
    `python -m serving.local`, never for a program importing these modules."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    memory.limit_arenas()
    if not lean_requested(argv):
        return False
    sys.modules.setdefault("keras", None)
    tf_runtime.skip_public_api()
    return True


def session_config(cfg: config.ServerConfig) -> Any:
    """Session thread pools sized for the machine (2 cores here), as tensorflow_model_server's flags do.

    Grappler's graph-level pass is off: a SavedModel's signature is one call of a function, which the
    call's own kernel optimises when it first runs, so the session-level pass found nothing to change
    (same ops run per step, checked from step traces) yet cost ~0.3 s of CPU on each new feed/fetch set,
    three of them at load (restore, init, first call): ~1 s of the cold start."""
    cores = os.cpu_count() or 2
    proto = get().ConfigProto(
        intra_op_parallelism_threads=cfg.intra_op_threads or cores,
        inter_op_parallelism_threads=cfg.inter_op_threads or min(2, cores),
    )
    proto.graph_options.rewrite_options.disable_meta_optimizer = True
    return proto


def configure_tensorflow(cfg: config.ServerConfig) -> None:
    """Thread pools sized for the machine (2 cores here), set before TensorFlow starts its runtime."""
    cores = os.cpu_count() or 2
    rt = get()
    rt.python_logger().setLevel("ERROR")  # the TF1-style loader's deprecation notices are not events
    rt.set_intra_op_threads(cfg.intra_op_threads or cores)
    rt.set_inter_op_threads(cfg.inter_op_threads or min(2, cores))


def drop_load_only_code() -> str:
    """Lean only: reclaim the library pages a load faulted in (serving.memory); returns what it bought, for the log."""
    return memory.drop_load_only_code() if get().lean else ""
