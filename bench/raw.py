"""Raw in-process speed of the SavedModel, loaded exactly as the local server loads it (TF1 session, same threads)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.stats import Summary, rate, summarise, timed_ms
from serving import contract


@dataclass(frozen=True)
class RawFigures:
    """Images per second per (signature, batch), batch-1 latency, Grad-CAM share of op time."""

    throughput: dict[str, Summary]
    latency_b1_ms: dict[str, Summary]
    heatmap_note: str
    gradcam_share_pct: dict[str, Summary]


SERVER_THREADS = None
"""`intra_op_threads` meaning the server's own default (serving.local.config.DEFAULT_INTRA_OP_THREADS)."""
TENSORFLOW_THREADS = 0
"""`intra_op_threads` meaning TensorFlow's own choice: one thread per core."""


def load_servable(base: Path, version: int, intra_op_threads: int | None = SERVER_THREADS, lean: bool = False):
    """A serving.local Servable (batching off): the very session call the server makes, minus gRPC, on the
    runtime the server under test uses (TensorFlow's public API, or the lean process's private modules)."""
    from serving.local import runtime
    from serving.local.config import ServerConfig
    from serving.local.metrics import Metrics
    from serving.local.versions import Servable

    cfg = ServerConfig(lean_process=lean)
    if intra_op_threads is not None:
        cfg = dataclasses.replace(cfg, intra_op_threads=intra_op_threads)
    runtime.choose(lean)
    try:
        runtime.configure_tensorflow(cfg)
    except RuntimeError:
        pass  # already initialised (e.g. by the stand-in export); sessions still get session_config's pools
    return Servable(contract.MODEL_NAME, version, base / str(version), cfg, Metrics())


def runner(servable, signature: str, batch: np.ndarray, outputs: tuple[str, ...] | None = None):
    """A no-argument call running one signature on one batch, fetching all outputs or only `outputs`."""
    sig = servable.signatures[signature]
    fetches = sig.fetches if outputs is None else {k: sig.fetches[k] for k in outputs}
    feed = {sig.feeds[contract.SIGNATURE_INPUTS[signature]]: batch}
    session = servable._session  # noqa: SLF001 - the benchmark times the bare session call on purpose
    return lambda: session.run(fetches, feed)


def gradcam_share(servable, signature: str, batch: np.ndarray, traces: int) -> Summary:
    """Share (%) of the model call's op time spent in the Grad-CAM gradient ops, from TensorFlow step traces.

    Fetching fewer outputs does not remove them: the signature is one function call, so the session cannot
    prune inside it (checked: 1327 vs 1326 nodes run). The trace times each op instead."""
    import tensorflow as tf

    sig = servable.signatures[signature]
    feed = {sig.feeds[contract.SIGNATURE_INPUTS[signature]]: batch}
    session = servable._session  # noqa: SLF001
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    shares = []
    for _ in range(traces):
        md = tf.compat.v1.RunMetadata()
        session.run(sig.fetches, feed, options=options, run_metadata=md)
        total = grad = 0
        for dev in md.step_stats.dev_stats:
            for node in dev.node_stats:
                total += node.op_end_rel_micros - node.op_start_rel_micros
                if "gradient_tape" in node.node_name:
                    grad += node.op_end_rel_micros - node.op_start_rel_micros
        shares.append(100.0 * grad / max(total, 1))
    return summarise(shares)


def measure(servable, pixels: np.ndarray, crop_png: bytes, rounds: int, calls_b1: int, calls_b32: int) -> RawFigures:
    """Throughput at batch 1 and 32 for both signatures, batch-1 latency, and the Grad-CAM share of op time."""
    batches = {
        (contract.SIGNATURE_PIXELS, 1): pixels[:1],
        (contract.SIGNATURE_PIXELS, 32): np.repeat(pixels[:1], 32, axis=0),
        (contract.SIGNATURE_BYTES, 1): np.array([crop_png], dtype=object),
        (contract.SIGNATURE_BYTES, 32): np.array([crop_png] * 32, dtype=object),
    }
    throughput: dict[str, Summary] = {}
    latency: dict[str, Summary] = {}
    gradcam: dict[str, Summary] = {}
    for (sig, n), batch in batches.items():
        call = runner(servable, sig, batch)
        call()
        calls = calls_b1 if n == 1 else calls_b32
        throughput[f"{sig} b{n}"] = summarise([rate(call, calls, n) for _ in range(rounds)])
        if n == 1:
            latency[sig] = summarise([timed_ms(call)[0] for _ in range(rounds * calls)])
        gradcam[f"{sig} b{n}"] = gradcam_share(servable, sig, batch, max(1, rounds))
    note = ("The heatmap's cost is read from TensorFlow step traces (FULL_TRACE): the share of op time in the "
            "`gradient_tape` ops. Grad-CAM differentiates the head only (the tape watches the backbone's output), "
            "so its gradient is a handful of small ops; the 7x7 weighting after it is smaller still and not "
            "counted. A variant signature cannot be timed by fetching fewer outputs: the signature is one "
            "function call, the session runs all of it (1327 vs 1326 nodes).")
    return RawFigures(throughput, latency, note, gradcam)


def measure_version(base: Path, version: int, pixels: np.ndarray, crop_png: bytes, rounds: int, calls_b1: int,
                    calls_b32: int, intra_op_threads: int | None = SERVER_THREADS, lean: bool = False) -> RawFigures:
    """Load, measure and close: the whole raw measurement, as one call a child process can make."""
    servable = load_servable(base, version, intra_op_threads, lean)
    try:
        return measure(servable, pixels, crop_png, rounds, calls_b1, calls_b32)
    finally:
        servable.drain(timeout=5)
