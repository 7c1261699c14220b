"""Helpers shared by the tests of every area: free ports and a real model server in a subprocess."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
"""The read-only shared data folder beside the repo root (may be absent: skip then)."""


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_status(target: str, name: str = "deepfake_detector", timeout: float = 2.0):
    """The GetModelStatus answer for `name` from a server, through TF Serving's own stubs."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        req = get_model_status_pb2.GetModelStatusRequest()
        req.model_spec.name = name
        return stub.GetModelStatus(req, timeout=timeout)


def available_versions(target: str, name: str = "deepfake_detector") -> list[int]:
    """Versions the server reports as AVAILABLE ([] while none is, or the server is down)."""
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2

    try:
        resp = model_status(target, name)
    except grpc.RpcError:
        return []
    avail = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return sorted(v.version for v in resp.model_version_status if v.state == avail)


@dataclass
class ServerProcess:
    """A `python -m serving.local` subprocess on a loopback port, with its stderr in a log file."""

    base_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    model_name: str = "deepfake_detector"
    proc: subprocess.Popen | None = None

    @property
    def target(self) -> str:
        """The gRPC target string clients dial."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        """Launch the server (returns at once; call wait_available next)."""
        cmd = [
            sys.executable, "-m", "serving.local",
            f"--port={self.port}",
            f"--model_name={self.model_name}",
            f"--model_base_path={self.base_path}",
            *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def logs(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_available(self, timeout: float = 240.0, version: int | None = None) -> None:
        """Block until the model (or the given version) is AVAILABLE; fail with the server's log if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"model server exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            versions = available_versions(self.target, self.model_name)
            if versions and (version is None or version in versions):
                return
            time.sleep(0.2)
        raise TimeoutError(f"model server not AVAILABLE after {timeout}s:\n{self.logs()[-4000:]}")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM the server and wait for its exit code (SIGKILL if it hangs)."""
        if self.proc is None:
            return 0
        stop_process(self.proc, timeout)
        self._log.close()
        return self.proc.returncode


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM a child and wait for it, SIGKILL if it hangs, so no test leaves a server behind."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_streamlit_healthy(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float) -> None:
    """Poll the page's health endpoint until it answers 'ok'; fail with the log's tail if it exits or never does."""
    import urllib.request

    import pytest

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"streamlit not healthy in {timeout_s:.0f} s:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)


IMAGENET_WEIGHTS = SHARED / "weights" / "mobilenet_v2_0.35_224_imagenet_notop.weights.h5"


def _set_batchnorm_statistics(model) -> None:
    """Give a random backbone real BatchNorm statistics (one pass, momentum 0), so its outputs vary with the input."""
    import keras
    import numpy as np

    from training.model import backbone_of

    backbone = backbone_of(model)
    norms = [layer for layer in backbone.layers[-1].layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    images = np.random.default_rng(0).uniform(0, 255, (8, 224, 224, 3)).astype("float32")
    backbone(images, training=True)
    for layer, momentum in zip(norms, saved):
        layer.momentum = momentum


def export_untrained(base: Path, version: int | None = None, **info) -> Path:
    """Export an UNTRAINED detector (random head) as a version under `base`: plumbing only, never a detector.

    The backbone takes the shared ImageNet weights when /work/shared is there, because a fully
    random MobileNetV2 shrinks every activation to ~1e-10 and answers exactly 0.5 for any input,
    which would let tests comparing outputs pass vacuously. Without the file: weights=None, with
    BatchNorm statistics set from one pass over random images so the outputs still vary.
    """
    from training.export import ExportInfo, export
    from training.model import ModelConfig, build_model

    weights = str(IMAGENET_WEIGHTS) if IMAGENET_WEIGHTS.is_file() else None
    model = build_model(ModelConfig(alpha=0.35, weights=weights))
    if weights is None:
        _set_batchnorm_statistics(model)
    return export(model, base, ExportInfo(training_data="none: untrained test model", **info), version=version)
