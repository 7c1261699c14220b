"""The local model server under hostile requests, load and faults, seen through raw gRPC and the real client.

One server process (a copy of the session's untrained test model, plumbing only) takes, in order:
a storm of malformed requests, a bounded load with RSS sampled from /proc, a freeze (SIGSTOP: a slow
server), a SIGKILL and restart, and in the long run a new version dropped in half-written then
completed, and SIGTERM with requests in flight. Figures go to build/reliability/*.json.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest

from clients.core.errors import DetectorError, DetectorUnavailable
from clients.core.grpc_client import DetectorClient
from serving import contract
from tests.clients.images import encode, noise_photo
from tests.helpers import ServerProcess, available_versions
from tests.reliability.report import percentile, record, rss_kib
from tests.serving.grpc_util import Stubs, bytes_request, outputs, pixels, request

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(os.environ.get(contract.TARGET_ENV)), reason="kills and restarts its own local server"),
]
POLL = 0.5
FAST_LOAD_S = 20.0
FULL_LOAD_S = 300.0
RSS_MARGIN = 0.10
"""The last third's mean RSS may exceed the first third's (after warm-up) by at most 10%."""


@dataclass
class Served:
    """The server under test (replaced after a restart) and its base path."""

    proc: ServerProcess
    base: Path
    restarts: int = 0

    def restart(self) -> None:
        """Start a fresh process on the same port and base path."""
        old = self.proc
        self.proc = ServerProcess(base_path=old.base_path, log_path=old.log_path, port=old.port,
                                  extra_args=old.extra_args).start()
        self.restarts += 1


@pytest.fixture(scope="module")
def served(exported_model, tmp_path_factory):
    """A server of our own on a copy of the test model (version 1), so faults hit no one else's tests."""
    root = tmp_path_factory.mktemp("reliability")
    base = root / "deepfake_detector"
    shutil.copytree(exported_model / "1", base / "1")
    proc = ServerProcess(base_path=base, log_path=root / "server.log",
                         extra_args=(f"--file_system_poll_wait_seconds={POLL}",)).start()
    s = Served(proc, base)
    try:
        proc.wait_available(timeout=240)
        yield s
    finally:  # also when the start times out: never leave a server behind
        s.proc.terminate()


def crop(seed: int = 0) -> bytes:
    """A 224x224 JPEG crop, as the client core sends."""
    return encode(noise_photo((224, 224), seed=seed), "JPEG", quality=90)


# 2. Hostile requests -------------------------------------------------------------------------------

METHODS = ["/tensorflow.serving.PredictionService/Predict", "/tensorflow.serving.PredictionService/GetModelMetadata",
           "/tensorflow.serving.ModelService/GetModelStatus"]


def hostile_requests(rng: random.Random, n: int) -> list[tuple[str, str, bytes]]:
    """(label, method, serialized bytes): garbage, bit-flipped good requests, wrong dtypes/shapes/names."""
    good = bytes_request([crop(1)]).SerializeToString()
    out: list[tuple[str, str, bytes]] = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            out.append(("garbage", rng.choice(METHODS), rng.randbytes(rng.randint(0, 300))))
        elif kind == 1:
            b = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            out.append(("bit-flipped Predict", METHODS[0], bytes(b)))
        elif kind == 2:
            out.append(("truncated Predict", METHODS[0], good[:rng.randrange(len(good))]))
        elif kind == 3:  # a well-formed proto with a wrong dtype (any enum value, valid or not)
            req = bytes_request([crop(2)])
            req.inputs[contract.INPUT_BYTES].dtype = rng.choice([0, 1, 2, 3, 9, 10, 19, 23, 99, 2**20])
            out.append((f"dtype {req.inputs[contract.INPUT_BYTES].dtype}", METHODS[0], req.SerializeToString()))
        elif kind == 4:  # shapes that lie: negative, huge, extra or missing dims
            req = request(inputs={contract.INPUT_PIXELS: pixels(1)})
            t = req.inputs[contract.INPUT_PIXELS]
            dims = rng.choice([[-1, 224, 224, 3], [-5], [2**40, 224, 224, 3], [1, 224, 224, 3, 1], [], [0, 0, 0, 0],
                               [1, 2**31, 224, 3], [3, 224, 224, 3]])
            del t.tensor_shape.dim[:]
            for d in dims:
                t.tensor_shape.dim.add().size = d
            out.append((f"shape {dims}", METHODS[0], req.SerializeToString()))
        else:  # unknown model, version, label or signature
            req = bytes_request([crop(3)])
            choice = rng.randrange(4)
            if choice == 0:
                req.model_spec.name = rng.choice(["", "no_such_model", "../etc/passwd", "x" * 5000])
            elif choice == 1:
                req.model_spec.version.value = rng.choice([0, 2, -1, 2**62])
            elif choice == 2:
                req.model_spec.version_label = "stable"
            else:
                req.model_spec.signature_name = rng.choice(["nope", "serving_default\x00", "from_bytes "])
            out.append((f"spec {choice}", METHODS[0], req.SerializeToString()))
    return out


ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION}


@pytest.mark.timeout(900)  # includes starting the module's server, slow when the cores are busy
def test_hostile_request_storm_each_refused_and_the_server_keeps_serving(served):
    rng = random.Random(9)
    cases = hostile_requests(rng, 120)
    codes: dict[str, int] = {}
    good = bytes_request([crop(4)])
    with grpc.insecure_channel(served.proc.target) as channel:
        stubs = Stubs(served.proc.target)
        for label, method, payload in cases:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            try:
                call(payload, timeout=30)
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
            codes[code.name] = codes.get(code.name, 0) + 1
            if code == grpc.StatusCode.INTERNAL:
                # Only gRPC's own "cannot parse the bytes" is fine; our servicer must never fail internally.
                assert "deserializ" in details.lower(), (label, details)
            else:
                assert code in ALLOWED, (label, code, details)
            if code != grpc.StatusCode.OK:
                # no trace, and no amplification: at most the request's own text echoed back (e.g. a long model name)
                assert "Traceback" not in details and len(details) < 500 + len(payload), (label, details[:300])
            resp = stubs.predict.Predict(good, timeout=30)  # ... and a good request still succeeds
            assert outputs(resp)[contract.OUTPUT_PROBABILITY].shape == (1,)
        stubs.close()
    assert served.proc.proc.poll() is None
    logs = served.proc.logs()
    assert "-> INTERNAL" not in logs, logs[-3000:]
    record("hostile_requests", {"requests": len(cases), "status_codes": codes,
                                "good_request_after_each": True, "server_alive": True})


# 3. Load ----------------------------------------------------------------------------------------

@dataclass
class Load:
    """A closed-loop load of `workers` threads, each with its own DetectorClient, plus RSS samples."""

    target: str
    pid: int
    workers: int = 4
    timeout_s: float = 30.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    versions: dict[int, int] = field(default_factory=dict)
    rss: list[tuple[float, int]] = field(default_factory=list)
    allow_unavailable: bool = False
    t0: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.clients = [DetectorClient(self.target, timeout_s=self.timeout_s, retries=3) for _ in range(self.workers)]
        self._threads: list[threading.Thread] = []

    def _worker(self, i: int) -> None:
        crops = [crop(i)] if i % 2 else [crop(i), crop(i + 10)]
        client = self.clients[i]
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                pred = client.predict(crops)
                with self._lock:
                    self.latencies.append(time.perf_counter() - t)
                    self.versions[pred.model_version] = self.versions.get(pred.model_version, 0) + 1
            except DetectorUnavailable as e:
                with self._lock:
                    (self.unavailable if self.allow_unavailable else self.errors).append(e.user_message)
                assert e.user_message.strip()
                time.sleep(0.05)
            except DetectorError as e:
                with self._lock:
                    self.errors.append(f"{type(e).__name__}: {e.detail}")
            except Exception as e:  # noqa: BLE001 - anything else is a client crash: count it, never hide it
                with self._lock:
                    self.errors.append(f"CRASH {type(e).__name__}: {e}")

    def start(self) -> "Load":
        self.t0 = time.monotonic()
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    def sample_rss(self, pid: int | None = None) -> None:
        """One VmRSS sample of the server."""
        try:
            self.rss.append((time.monotonic() - self.t0, rss_kib(pid or self.pid)))
        except (FileNotFoundError, ProcessLookupError, RuntimeError):
            pass

    def run_for(self, seconds: float, every: float) -> None:
        """Keep the load on for `seconds`, sampling RSS every `every` seconds."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample_rss()
            time.sleep(min(every, max(0.0, end - time.monotonic())))
        self.sample_rss()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)
        for c in self.clients:
            c.close()

    def figures(self, seconds: float) -> dict:
        lat = self.latencies
        return {"seconds": round(seconds, 1), "workers": self.workers, "requests": len(lat) + len(self.errors),
                "ok": len(lat), "errors": len(self.errors), "req_per_s": round(len(lat) / max(seconds, 1e-9), 2),
                "p50_ms": round(1000 * percentile(lat, 50), 1), "p99_ms": round(1000 * percentile(lat, 99), 1),
                "max_ms": round(1000 * max(lat, default=0.0), 1), "versions_answering": self.versions}


def rss_flatness(samples: list[tuple[float, int]], warmup_fraction: float = 0.2) -> dict:
    """Mean RSS of the first and last thirds of the samples after warm-up, and their ratio."""
    kept = [kib for t, kib in samples if t >= samples[-1][0] * warmup_fraction]
    third = max(1, len(kept) // 3)
    first, last = np.mean(kept[:third]), np.mean(kept[-third:])
    return {"rss_first_third_mib": round(first / 1024, 1), "rss_last_third_mib": round(last / 1024, 1),
            "rss_growth": round(float(last / first - 1), 4), "rss_min_mib": round(min(kept) / 1024, 1),
            "rss_max_mib": round(max(kept) / 1024, 1), "rss_samples": len(samples)}


def _load_run(served: Served, seconds: float, every: float, name: str) -> None:
    load = Load(served.proc.target, served.proc.proc.pid).start()
    try:
        load.run_for(seconds, every)
    finally:
        load.stop()
    figures = {**load.figures(seconds), **rss_flatness(load.rss),
               "rss_over_time_mib": [(round(t), round(k / 1024, 1)) for t, k in load.rss]}
    record(name, figures)
    assert not load.errors, load.errors[:5]
    assert len(load.latencies) >= seconds / 5, "the load barely ran"
    assert figures["rss_growth"] <= RSS_MARGIN, figures
    assert served.proc.proc.poll() is None


def test_load_20_seconds_no_errors_memory_flat(served):
    _load_run(served, FAST_LOAD_S, 1.0, "load_fast")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_load_5_minutes_no_errors_memory_flat(served):
    _load_run(served, FULL_LOAD_S, 5.0, "load_full")


# 4. Faults under load -------------------------------------------------------------------------------

def _wait(pred, timeout: float, step: float = 0.1) -> float:
    """Seconds until pred() is true (fails after timeout)."""
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(step)
    return time.monotonic() - t0


def test_slow_server_deadlines_fire_with_a_user_message_then_recover(served):
    """SIGSTOP freezes the server (a server too slow to answer): deadlines fire, users get words, no crash."""
    load = Load(served.proc.target, served.proc.proc.pid, workers=3, timeout_s=1.0, allow_unavailable=True).start()
    try:
        _wait(lambda: len(load.latencies) >= 3, 60)
        os.kill(served.proc.proc.pid, signal.SIGSTOP)
        try:
            frozen_at = len(load.unavailable)
            time.sleep(4.0)
            seen = len(load.unavailable) - frozen_at
        finally:
            os.kill(served.proc.proc.pid, signal.SIGCONT)
        before = len(load.latencies)
        recovery = _wait(lambda: len(load.latencies) > before + 3, 60)
    finally:
        load.stop()
    assert seen >= 3, "no deadline fired while the server was frozen"
    assert set(load.unavailable) <= {"The detector took too long to answer. Please try again in a minute."} | {
        DetectorUnavailable.default_message}
    assert not load.errors, load.errors[:5]
    record("fault_slow_server", {"frozen_s": 4.0, "client_deadline_s": 1.0, "deadline_messages": seen,
                                 "other_errors": 0, "recovered_after_s": round(recovery, 1)})


@pytest.mark.slow  # a restart re-imports TensorFlow and reloads the model: about a minute on busy cores
@pytest.mark.timeout(900)
def test_sigkill_and_restart_clients_recover_by_themselves(served):
    load = Load(served.proc.target, served.proc.proc.pid, workers=3, timeout_s=5.0, allow_unavailable=True).start()
    try:
        _wait(lambda: len(load.latencies) >= 3, 60)
        served.proc.proc.send_signal(signal.SIGKILL)
        served.proc.proc.wait()
        killed_at = time.monotonic()
        _wait(lambda: len(load.unavailable) >= 3, 30)
        served.restart()
        served.proc.wait_available(timeout=240)
        up_at = time.monotonic()
        before = len(load.latencies)
        # The same client objects, with no help from the test, answer again.
        _wait(lambda: all_answering(load, before), 120)
        recovered_at = time.monotonic()
    finally:
        load.stop()
    assert not load.errors, load.errors[:5]
    assert set(load.unavailable) <= {DetectorUnavailable.default_message,
                                     "The detector took too long to answer. Please try again in a minute."}
    record("fault_sigkill", {"unavailable_messages_while_down": len(load.unavailable),
                             "down_s": round(up_at - killed_at, 1),
                             "clients_recovered_after_server_up_s": round(recovered_at - up_at, 1),
                             "other_errors": 0, "new_client_objects": 0})


def all_answering(load: Load, before: int) -> bool:
    """Every worker has succeeded again (at least workers successes since `before`)."""
    return len(load.latencies) >= before + load.workers


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_version_dropped_in_under_load_half_written_never_served(served):
    """Under load: a half-written version 2 sits on disk and is never served; completed, it takes over."""
    load = Load(served.proc.target, served.proc.proc.pid, workers=3).start()
    src, dst = served.base / "1", served.base / "2"
    try:
        _wait(lambda: len(load.latencies) >= 3, 60)
        dst.mkdir()
        shutil.copy(src / "saved_model.pb", dst / "saved_model.pb")
        (dst / "variables").mkdir()
        data = next((src / "variables").glob("variables.data-*"))
        blob = data.read_bytes()
        (dst / "variables" / data.name).write_bytes(blob[: len(blob) // 2])  # half the weights, no index yet
        time.sleep(max(10 * POLL, 5.0))
        half_phase = dict(load.versions)
        assert set(half_phase) == {1}, half_phase
        assert available_versions(served.proc.target) == [1]
        (dst / "variables" / data.name).write_bytes(blob)
        shutil.copy(src / "variables" / "variables.index", dst / "variables" / "variables.index")
        shutil.copytree(src / "assets.extra", dst / "assets.extra")
        _wait(lambda: load.versions.get(2, 0) >= 5, 180)
        time.sleep(2.0)
    finally:
        load.stop()
    assert not load.errors, load.errors[:5]
    record("fault_new_version", {"answers_by_version": load.versions, "half_written_phase_answers": half_phase,
                                 "failed_requests": 0})


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigterm_lets_in_flight_requests_finish_and_exits_0(served):
    """Last: SIGTERM while 16-image batches are in flight; each finishes, the exit code is 0."""
    stubs = Stubs(served.proc.target)
    big = request(inputs={contract.INPUT_PIXELS: pixels(16, seed=5)})
    answers, errors = [], []

    def one() -> None:
        try:
            answers.append(len(outputs(stubs.predict.Predict(big, timeout=120))[contract.OUTPUT_PROBABILITY]))
        except grpc.RpcError as e:
            errors.append(f"{e.code()}: {e.details()}")

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    code = served.proc.terminate(timeout=120)
    for t in threads:
        t.join()
    stubs.close()
    assert not errors and answers == [16] * 4 and code == 0, (errors, answers, code)
    record("fault_sigterm", {"in_flight": 4, "finished": len(answers), "exit_code": code})
