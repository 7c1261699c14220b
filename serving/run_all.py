"""`make run`: the local model server on the shipped model, then the Streamlit page pointed at it.

Run: python -m serving.run_all --port 8500 --web-port 8501
Prints where each listens; Ctrl-C or SIGTERM stops both cleanly.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from serving import contract

REPO = Path(__file__).resolve().parents[1]
EXIT_NO_MODEL = 3


@dataclass(frozen=True)
class RunConfig:
    """What `make run` starts, from flags."""

    port: int = contract.DEFAULT_GRPC_PORT
    web_port: int = contract.DEFAULT_REST_PORT
    model_base_path: Path = REPO / "saved_model" / contract.MODEL_NAME
    batching_parameters_file: Path | None = REPO / "serving" / "batching_parameters.txt"
    web_script: Path = REPO / "clients" / "web" / "page.py"
    ready_timeout_s: float = 180.0


def parse_args(argv: list[str] | None = None) -> RunConfig:
    """Flags to RunConfig."""
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m serving.run_all", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=d.port, help="gRPC port of the model server")
    p.add_argument("--web-port", type=int, default=d.web_port, help="port of the Streamlit page")
    p.add_argument("--model-base-path", type=Path, default=d.model_base_path)
    p.add_argument("--no-batching", action="store_true", help="serve without server-side batching")
    p.add_argument("--web-script", type=Path, default=d.web_script)
    p.add_argument("--ready-timeout", type=float, default=d.ready_timeout_s)
    a = p.parse_args(argv)
    return RunConfig(a.port, a.web_port, a.model_base_path.resolve(),
                     None if a.no_batching else d.batching_parameters_file, a.web_script, a.ready_timeout)


def shipped_versions(base: Path) -> list[int]:
    """Complete versions under the base path (what the server could serve)."""
    return [v for v in contract.version_dirs(base) if contract.is_complete_version(base / str(v))]


def wait_serving(target: str, proc: subprocess.Popen, timeout: float, cancelled=lambda: False) -> bool:
    """Block until the server's health says SERVING (a version is AVAILABLE), or it dies, or time runs out."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and proc.poll() is None and not cancelled():
            try:
                resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.25)
    return False


def stop(proc: subprocess.Popen | None, name: str, timeout: float = 30.0) -> None:
    """SIGTERM a child and wait for it (SIGKILL if it will not go)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in {timeout:.0f}s; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def run(cfg: RunConfig) -> int:
    """Start the server, wait for AVAILABLE, start the page, and supervise both until told to stop."""
    versions = shipped_versions(cfg.model_base_path)
    if not versions:
        print(f"No model version found in {cfg.model_base_path}: the detector has not been trained and shipped yet.\n"
              "Train and export it first (make train, see README), or point --model-base-path at an exported model.",
              file=sys.stderr)
        return EXIT_NO_MODEL
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    target = f"127.0.0.1:{cfg.port}"
    server_cmd = [sys.executable, "-m", "serving.local", f"--port={cfg.port}", f"--model_name={contract.MODEL_NAME}",
                  f"--model_base_path={cfg.model_base_path}"]
    if cfg.batching_parameters_file and cfg.batching_parameters_file.is_file():
        server_cmd += ["--enable_batching", f"--batching_parameters_file={cfg.batching_parameters_file}"]
    server = subprocess.Popen(server_cmd, cwd=REPO, start_new_session=True)
    web = None
    try:
        print(f"Starting the model server on {target} (versions on disk: {versions}) ...", flush=True)
        if not wait_serving(target, server, cfg.ready_timeout_s, lambda: stopping):
            if not stopping:
                print("The model server did not become AVAILABLE; see its log above.", file=sys.stderr)
            return 0 if stopping else 1
        print(f"Model server: gRPC {target}, model {contract.MODEL_NAME} version {versions[-1]} AVAILABLE", flush=True)
        if cfg.web_script.is_file():
            env = dict(os.environ, **{contract.TARGET_ENV: target})
            web = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(cfg.web_script), "--server.port", str(cfg.web_port),
                 "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                cwd=REPO, env=env, start_new_session=True,
            )
            print(f"Web page:     http://localhost:{cfg.web_port}  ({contract.TARGET_ENV}={target})", flush=True)
        else:
            print(f"No web page at {cfg.web_script}: serving the model only.", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stopping:
            if server.poll() is not None:
                print(f"The model server exited ({server.returncode}); stopping.", file=sys.stderr)
                return 1
            if web is not None and web.poll() is not None:
                print(f"The web page exited ({web.returncode}); stopping.", file=sys.stderr)
                return 1
            time.sleep(0.3)
        print("Stopping ...", flush=True)
        return 0
    finally:
        stop(web, "web page")
        stop(server, "model server")


def main(argv: list[str] | None = None) -> None:
    """Entry point of `make run`."""
    sys.exit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
