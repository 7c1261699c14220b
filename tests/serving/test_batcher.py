"""The server's request path in process: adaptive batching, tensors in and out, memory trimming."""
from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from serving.local import server, versions
from serving.local.batching import Batcher
from serving.local.config import BatchingParameters, ModelEntry, ServerConfig
from serving.local.metrics import Metrics
from serving.local.signatures import TensorSpec, fill_tensor_proto, ndarray_of

BIG_TIMEOUT_US = 60_000_000
"""A batch timeout no test should ever wait out: merging must come from concurrency, not from waiting."""


class Model:
    """A stand-in for a signature's session call: doubles its input, records each call's rows and thread.

    `hold` makes the next call block until `release()`, so a test can keep a batch running."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self._gate: threading.Event | None = None
        self.entered = threading.Event()

    def hold(self) -> None:
        self._gate = self._held = threading.Event()

    def release(self) -> None:
        self._held.set()

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.calls.append((len(x), threading.current_thread().name))
        gate, self._gate = self._gate, None
        self.entered.set()
        if gate is not None:
            assert gate.wait(30), "test never released the held call"
        return {"y": x * 2}


def _batcher(model: Model, max_batch: int = 8, threads: int = 2) -> tuple[Batcher, Metrics]:
    metrics = Metrics()
    params = BatchingParameters(max_batch_size=max_batch, batch_timeout_micros=BIG_TIMEOUT_US,
                                      num_batch_threads=threads)
    return Batcher("test", model, params, metrics, log_batches=False), metrics


def _submit_in_threads(batcher: Batcher, values: list[float]) -> tuple[list[threading.Thread], dict]:
    results: dict[float, np.ndarray] = {}

    def one(v: float) -> None:
        results[v] = batcher.submit({"x": np.array([v], np.float32)}, 1)["y"]

    threads = [threading.Thread(target=one, args=(v,)) for v in values]
    for t in threads:
        t.start()
    return threads, results


def _wait_queued(batcher: Batcher, n: int) -> None:
    """Until n requests sit in the batcher's queue (they are waiting to be merged)."""
    for _ in range(3000):
        if batcher._queued >= n:  # noqa: SLF001 - the only non-timed way to know the callers arrived
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{n} requests never queued")


def test_a_lone_request_runs_at_once_on_its_own_thread():
    model = Model()
    batcher, metrics = _batcher(model)
    try:
        out = batcher.submit({"x": np.array([1.5, 2.0], np.float32)}, 2)
    finally:
        batcher.close()
    np.testing.assert_array_equal(out["y"], [3.0, 4.0])
    # Run by the caller itself: it neither queued nor waited for a batch timeout of a minute.
    assert model.calls == [(2, threading.current_thread().name)]
    assert metrics.batches == 1 and metrics.max_requests_per_batch == 1


def test_requests_arriving_while_a_batch_runs_are_merged_and_split_back():
    model = Model()
    batcher, metrics = _batcher(model, max_batch=3)
    try:
        model.hold()
        first, _ = _submit_in_threads(batcher, [1.0])
        assert model.entered.wait(30)
        later, results = _submit_in_threads(batcher, [2.0, 3.0, 4.0])
        for t in later:  # a full batch (3 rows) goes at once; the running one is still held
            t.join(30)
        model.release()
        first[0].join(30)
    finally:
        batcher.close()
    assert [rows for rows, _ in model.calls] == [1, 3]
    assert {v: float(r[0]) for v, r in results.items()} == {2.0: 4.0, 3.0: 6.0, 4.0: 8.0}
    assert metrics.max_requests_per_batch == 3 and metrics.batches == 2


def test_requests_queued_behind_the_only_batch_thread_go_out_together():
    model = Model()
    batcher, metrics = _batcher(model, max_batch=8, threads=1)
    try:
        model.hold()
        first, _ = _submit_in_threads(batcher, [1.0])
        assert model.entered.wait(30)
        later, results = _submit_in_threads(batcher, [2.0, 3.0])
        _wait_queued(batcher, 2)
        model.release()  # the thread frees up: the two queued requests leave as one batch, without a timeout
        for t in [*first, *later]:
            t.join(30)
    finally:
        batcher.close()
    assert [rows for rows, _ in model.calls] == [1, 2]
    assert {v: float(r[0]) for v, r in results.items()} == {2.0: 4.0, 3.0: 6.0}
    assert metrics.max_requests_per_batch == 2


@pytest.mark.parametrize("value", [
    np.arange(12, dtype=np.float32).reshape(2, 3, 2),
    np.array([[0.25, 0.75]], np.float64),
    np.array([1, -2, 3], np.int32),
    np.array([[7]], np.int64),
    np.array([0.5], np.float32),
    np.array([3], np.uint32),
    np.array([0, 255], np.uint8),
    np.zeros((0, 4), np.float32),
    np.array([b"a", b"bc"], dtype=object),
    np.array([True, False]),
])
def test_response_tensors_are_what_make_tensor_proto_writes(value):
    resp = predict_pb2.PredictResponse()
    fill_tensor_proto(resp.outputs["t"], value)
    assert resp.outputs["t"] == tf.make_tensor_proto(value)
    np.testing.assert_array_equal(tf.make_ndarray(resp.outputs["t"]), value)


def test_request_tensors_read_as_make_ndarray_reads_them():
    pixels = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    spec = TensorSpec("image", tf.float32, (-1, 4, 4, 3))
    got = ndarray_of(tf.make_tensor_proto(pixels), spec, pixels.shape)
    np.testing.assert_array_equal(got, pixels)
    blobs = np.array([b"\x89PNG", b"\xff\xd8"], dtype=object)
    spec = TensorSpec("image_bytes", tf.string, (-1,))
    np.testing.assert_array_equal(ndarray_of(tf.make_tensor_proto(blobs), spec, (2,)), blobs)


def test_memory_is_trimmed_once_after_a_burst_never_during_it(monkeypatch):
    trims = []
    monkeypatch.setattr(server.memory, "release_free_memory", lambda: trims.append(1))
    metrics = Metrics()
    seen = trimmed = metrics.answered()
    seen, trimmed = server.trim_after_burst(metrics, seen, trimmed)  # idle from the start
    assert trims == []
    for _ in range(3):  # requests keep coming: no trim between them
        metrics.count_request("m", grpc.StatusCode.OK)
        seen, trimmed = server.trim_after_burst(metrics, seen, trimmed)
    assert trims == []
    seen, trimmed = server.trim_after_burst(metrics, seen, trimmed)  # one quiet tick
    assert trims == [1]
    seen, trimmed = server.trim_after_burst(metrics, seen, trimmed)  # still quiet: once is enough
    assert trims == [1]


def _complete_version(base, version: int) -> None:
    """The files that make a version complete (contents do not matter: loading is replaced in these tests)."""
    (base / str(version) / "variables").mkdir(parents=True)
    (base / str(version) / "saved_model.pb").write_bytes(b"graph")
    (base / str(version) / "variables" / "variables.index").write_bytes(b"index")


def _manager(base) -> tuple[versions.ModelManager, list[int]]:
    loaded: list[int] = []
    manager = versions.ModelManager(ModelEntry("m", base), ServerConfig(), Metrics(),
                                 warmup=lambda req, servable: None, on_change=lambda: None)
    manager._load = lambda version, fp: loaded.append(version)  # noqa: SLF001 - no TensorFlow load here
    return manager, loaded


def test_a_version_written_long_ago_is_loaded_at_the_first_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "QUIET_SECONDS", 0.2)
    _complete_version(tmp_path, 1)
    threading.Event().wait(0.3)  # its files are now older than the quiet period
    manager, loaded = _manager(tmp_path)
    manager.poll_once()
    assert loaded == [1]


def test_a_version_just_written_waits_for_a_second_poll_that_sees_it_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "QUIET_SECONDS", 3600.0)
    _complete_version(tmp_path, 1)
    manager, loaded = _manager(tmp_path)
    assert manager.poll_once() is True  # settling
    assert loaded == []
    (tmp_path / "1" / "variables" / "variables.data-00000-of-00001").write_bytes(b"more")
    manager.poll_once()  # it changed since the last poll: still settling
    assert loaded == []
    manager.poll_once()
    assert loaded == [1]
