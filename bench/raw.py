"""Raw in-process speed of the SavedModel, loaded exactly as the local server loads it (TF1 session, same threads)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.stats import Summary, rate, summarise, timed_ms
from serving import contract


@dataclass(frozen=True)
class RawFigures:
    """Images per second per (signature, batch, outputs) and the batch-1 latency."""

    throughput: dict[str, Summary]
    latency_b1_ms: dict[str, Summary]
    heatmap_note: str


def configure_threads() -> None:
    """The server's thread settings for this process's eager runtime (a no-op once TensorFlow has started)."""
    from serving import local

    try:
        local.configure_tensorflow(local.ServerConfig())
    except RuntimeError:
        pass  # already initialised (e.g. by the stand-in export); sessions still get session_config's pools


def load_servable(base: Path, version: int):
    """A serving.local.Servable (batching off): the very session.run the server makes, minus gRPC."""
    from serving import local

    cfg = local.ServerConfig()
    configure_threads()
    return local.Servable(contract.MODEL_NAME, version, base / str(version), cfg, local.Metrics())


def runner(servable, signature: str, batch: np.ndarray, outputs: tuple[str, ...] | None = None):
    """A no-argument call running one signature on one batch, fetching all outputs or only `outputs`."""
    sig = servable.signatures[signature]
    fetches = sig.fetches if outputs is None else {k: sig.fetches[k] for k in outputs}
    feed = {sig.feeds[contract.SIGNATURE_INPUTS[signature]]: batch}
    session = servable._session  # noqa: SLF001 - the benchmark times the bare session call on purpose
    return lambda: session.run(fetches, feed)


def measure(servable, pixels: np.ndarray, crop_png: bytes, rounds: int, calls_b1: int, calls_b32: int) -> RawFigures:
    """Throughput at batch 1 and 32 for both signatures, with and without the heatmap output."""
    no_heatmap = tuple(k for k in contract.OUTPUTS if k != contract.OUTPUT_HEATMAP)
    batches = {
        (contract.SIGNATURE_PIXELS, 1): pixels[:1],
        (contract.SIGNATURE_PIXELS, 32): np.repeat(pixels[:1], 32, axis=0),
        (contract.SIGNATURE_BYTES, 1): np.array([crop_png], dtype=object),
        (contract.SIGNATURE_BYTES, 32): np.array([crop_png] * 32, dtype=object),
    }
    throughput: dict[str, Summary] = {}
    latency: dict[str, Summary] = {}
    for (sig, n), batch in batches.items():
        variants = {"all outputs": None, "no heatmap": no_heatmap}
        for label, outs in variants.items():
            call = runner(servable, sig, batch, outs)
            call()  # first call of a new fetch set builds its executor
            calls = calls_b1 if n == 1 else calls_b32
            throughput[f"{sig} b{n} {label}"] = summarise([rate(call, calls, n) for _ in range(rounds)])
            if n == 1:
                latency[f"{sig} {label}"] = summarise([timed_ms(call)[0] for _ in range(rounds * calls)])
    note = ("'no heatmap' fetches every output except `heatmap`; the session prunes the Grad-CAM gradient "
            "ops that only `heatmap` needs, so the difference is the heatmap's cost.")
    return RawFigures(throughput, latency, note)
