"""The local model server as a subprocess on a free loopback port: start, wait for AVAILABLE, RSS, stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from serving import contract, memory

REPO = Path(__file__).resolve().parents[1]
BATCHING_FILE = REPO / "serving" / "batching_parameters.txt"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_parts_mb(pid: int) -> dict[str, float]:
    """VmRSS split into RssAnon (private heap) and RssFile (mapped library pages, shareable), MiB."""
    return memory.status_mib(pid, ("RssAnon", "RssFile", "RssShmem"))


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc/PID/status (VmRSS, VmHWM)."""
    values = memory.status_mib(pid, ("VmRSS", "VmHWM"))
    return values["VmRSS"], values["VmHWM"]


def is_available(target: str) -> bool:
    """True once GetModelStatus reports a version AVAILABLE (asked with the client's own protos)."""
    from clients.core.grpc_client import DetectorClient

    client = DetectorClient(target, timeout_s=1.0, retries=0)
    try:
        return client.health()
    except Exception:  # noqa: BLE001 - not up yet
        return False
    finally:
        client.close()


@dataclass
class Server:
    """One `python -m serving.local` process, batching on with the shipped parameters unless told otherwise."""

    base: Path
    log_path: Path
    extra_args: tuple[str, ...] = ()
    batching: bool = True
    batching_file: Path = BATCHING_FILE
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started: float = 0.0

    @property
    def target(self) -> str:
        """The gRPC target."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Server":
        """Launch the process (returns at once)."""
        cmd = [sys.executable, "-m", "serving.local", f"--port={self.port}",
               f"--model_name={contract.MODEL_NAME}", f"--model_base_path={self.base}", *self.extra_args]
        if self.batching:
            cmd += ["--enable_batching", f"--batching_parameters_file={self.batching_file}"]
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
        self._log = open(self.log_path, "ab")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_available(self, timeout: float = 600.0, poll_s: float = 0.05) -> float:
        """Seconds from process start until the model is AVAILABLE (health SERVING)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"model server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if is_available(self.target):
                return time.perf_counter() - self.started
            time.sleep(poll_s)
        raise TimeoutError(f"model server not AVAILABLE after {timeout}s:\n{self.log_tail()}")

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) RSS of the server process in MiB."""
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 30 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> "Server":
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
