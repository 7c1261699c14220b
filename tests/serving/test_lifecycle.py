"""A server's life from outside: empty base path, a version written slowly, a hot swap under load, SIGTERM."""
from __future__ import annotations

import shutil
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving import contract
from tests.helpers import ServerProcess, export_untrained, free_port
from tests.serving.grpc_util import Stubs, health_status, outputs, pixels, request, states

pytestmark = pytest.mark.integration
POLL = 0.3
MONITORING = Path(__file__).resolve().parents[2] / "serving" / "monitoring.config"


def _inflight(proc) -> int:
    """Predict calls the server is working on now (its Prometheus gauge)."""
    text = urllib.request.urlopen(proc.metrics_url, timeout=10).read().decode()
    line = next(ln for ln in text.splitlines() if ln.startswith(":tensorflow:serving:inflight_requests "))
    return int(float(line.split()[1]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local server on a base path that holds no version yet."""
    root = tmp_path_factory.mktemp("lifecycle")
    rest = free_port()
    proc = ServerProcess(base_path=root / "deepfake_detector", log_path=root / "server.log",
                         extra_args=(f"--file_system_poll_wait_seconds={POLL}", f"--rest_api_port={rest}",
                                     f"--monitoring_config_file={MONITORING}", "--drain_seconds=120")).start()
    proc.metrics_url = f"http://127.0.0.1:{rest}/monitoring/prometheus/metrics"
    stubs = Stubs(proc.target)
    deadline = time.monotonic() + 90
    while True:  # wait until it listens (it answers NOT_FOUND for status while nothing is on disk)
        try:
            states(stubs)
            break
        except grpc.RpcError:
            assert proc.proc.poll() is None, proc.logs()
            assert time.monotonic() < deadline, proc.logs()
            time.sleep(0.2)
    yield proc, stubs
    stubs.close()
    proc.terminate()


def test_no_version_yet_is_unavailable_and_not_serving(server):
    _, stubs = server
    with pytest.raises(grpc.RpcError) as err:
        stubs.predict.Predict(request(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert health_status(stubs) == "NOT_SERVING"
    assert states(stubs) == {}


def test_half_written_version_is_never_loaded(server, exported_model):
    """Files appear with the index first and the data growing across several polls: no load until done."""
    proc, stubs = server
    src, dst = exported_model / "1", proc.base_path / "1"
    data = next((src / "variables").glob("variables.data-*"))
    (dst / "variables").mkdir(parents=True)
    for rel in ("saved_model.pb", "variables/variables.index"):
        shutil.copy(src / rel, dst / rel)
    blob = data.read_bytes()
    chunks = 15  # one chunk every POLL/3: the folder changes between any two polls for ~1.5 s
    with open(dst / "variables" / data.name, "wb") as f:
        for i in range(chunks):
            f.write(blob[i * len(blob) // chunks:(i + 1) * len(blob) // chunks])
            f.flush()
            if i < chunks - 1:
                time.sleep(POLL / 3)
                assert states(stubs) == {}, "a half-written version was picked up"
    shutil.copytree(src / "assets.extra", dst / "assets.extra")
    proc.wait_available(timeout=60, version=1)
    assert health_status(stubs) == "SERVING"
    resp = stubs.predict.Predict(request(), timeout=30)
    assert resp.model_spec.version.value == 1


def test_new_version_taken_up_under_load_without_a_failed_request(server):
    proc, stubs = server
    results, errors, snapshots = [], [], []
    stop = threading.Event()

    def hammer(seed: int) -> None:
        req = request(inputs={contract.INPUT_PIXELS: pixels(2, seed)})
        while not stop.is_set():
            try:
                resp = stubs.predict.Predict(req, timeout=30)
                results.append((resp.model_spec.version.value, float(outputs(resp)[contract.OUTPUT_THRESHOLD][0])))
            except grpc.RpcError as e:
                errors.append(f"{e.code()}: {e.details()}")
            time.sleep(0.05)  # steady traffic, but leave the CPU to the export and the load

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        # A real export into the live base path, with a different threshold so answers show their version.
        export_untrained(proc.base_path, version=2, threshold=0.7, uncertain_band=(0.6, 0.8))
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            snap = states(stubs)
            snapshots.append(snap)
            if snap.get(2) == "AVAILABLE" and snap.get(1) == "END":
                break
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:5]
    assert snapshots[-1].get(2) == "AVAILABLE" and snapshots[-1].get(1) == "END", snapshots[-1]
    # While version 2 loaded, version 1 was AVAILABLE in every snapshot: never a gap.
    for snap in snapshots:
        assert "AVAILABLE" in snap.values(), snap
        if snap.get(2) != "AVAILABLE":
            assert snap.get(1) == "AVAILABLE", snap
    versions = [v for v, _ in results]
    assert {1, 2} <= set(versions)
    # Each answer is whole: the threshold is that of the version that answered.
    assert all(abs(th - (0.5 if v == 1 else 0.7)) < 1e-6 for v, th in results)
    assert versions[-1] == 2
    assert "version=1 unloaded" in proc.logs()


def test_sigterm_drains_in_flight_requests_and_exits_0(server):
    proc, stubs = server
    answers, errors = [], []
    # 64 rows each (~0.3 s of model time apiece on a fast 2-core CPU): all four are surely in flight together
    # for a while, which the 20 ms poll below must see before SIGTERM is sent.
    big = request(inputs={contract.INPUT_PIXELS: pixels(64, seed=9)})

    def one() -> None:
        try:
            answers.append(outputs(stubs.predict.Predict(big, timeout=60))[contract.OUTPUT_PROBABILITY].shape)
        except grpc.RpcError as e:
            errors.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while _inflight(proc) < len(threads):  # all four are being worked on when SIGTERM arrives
        assert time.monotonic() < deadline and not errors, errors
        time.sleep(0.02)
    assert proc.terminate(timeout=120) == 0
    for t in threads:
        t.join()
    assert not errors, errors
    assert answers == [(64,)] * 4
    logs = proc.logs()
    assert "received SIGTERM: draining" in logs and "stopped cleanly" in logs
    with pytest.raises(grpc.RpcError):
        stubs.predict.Predict(request(), timeout=5)
