"""Server-side batching: concurrent requests for one signature merged into one model call, the answers split back."""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Callable

import grpc
import numpy as np

from serving.local.config import BatchingParameters
from serving.local.errors import ServingError
from serving.local.metrics import Metrics

log = logging.getLogger("serving.local")


class Batcher:
    """Merges concurrent requests for one signature into one model call, then splits the answers.

    Adaptive: a request that finds nothing queued and no batch running is run at once on the
    caller's thread (no queue, no batch timeout: a lone request never waits for company that is
    not coming). Requests that arrive while a batch runs queue up and are merged, waiting up to
    batch_timeout_micros for more only while another batch is running."""

    _STOP = object()

    @dataclass
    class Task:
        inputs: dict[str, np.ndarray]
        rows: int
        future: futures.Future

    def __init__(self, label: str, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                 params: BatchingParameters, metrics: Metrics, log_batches: bool):
        self.label = label
        self._run = run
        self._params = params
        self._metrics = metrics
        self._log_batches = log_batches
        self._lock = threading.Lock()
        self._queued = 0  # tasks submitted to the queue and not yet handed to a batch thread
        self._busy = 0  # batches running now (on a batch thread or a caller's thread)
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, params.max_enqueued_batches) * params.max_batch_size)
        self._slots = threading.Semaphore(params.num_batch_threads)
        self._pool = futures.ThreadPoolExecutor(params.num_batch_threads, thread_name_prefix=f"batch-{label}")
        self._collector = threading.Thread(target=self._collect, name=f"collect-{label}", daemon=True)
        self._collector.start()

    def submit(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run a lone request at once; otherwise queue its rows and wait for its slice of a merged answer."""
        if self._claim_idle():
            return self._run_alone(inputs, rows)
        task = Batcher.Task(inputs, rows, futures.Future())
        with self._lock:
            try:
                self._queue.put_nowait(task)
            except queue.Full:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted is full") from None
            self._queued += 1
        return task.future.result()

    def _claim_idle(self) -> bool:
        """True (and a batch slot taken) when nothing is queued or running: there is no one to merge with."""
        with self._lock:
            if self._queued or self._busy or not self._slots.acquire(blocking=False):
                return False
            self._busy += 1
            return True

    def _run_alone(self, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """One request as its own batch, on the calling thread (no hand-offs)."""
        try:
            return self._run(inputs)
        finally:
            self._done(1, rows)

    def _done(self, requests: int, rows: int) -> None:
        """A batch finished: count it, free its slot."""
        with self._lock:
            self._busy -= 1
        self._slots.release()
        self._metrics.count_batch(requests, rows)
        if self._log_batches:
            log.info("batch signature=%s requests=%d rows=%d", self.label, requests, rows)

    def _collect(self) -> None:
        """Form batches: the first waiting task, plus whatever fits (waiting only while others run)."""
        carry = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is Batcher._STOP:
                return
            self._slots.acquire()  # wait for a free batch thread, so waiting tasks pile into one batch
            batch, rows, carry = self._fill(first)
            with self._lock:
                self._queued -= len(batch)
                self._busy += 1
            self._pool.submit(self._execute, batch, rows)

    def _fill(self, first: "Batcher.Task") -> tuple[list["Batcher.Task"], int, Any]:
        """The batch that starts with `first`: queued tasks that fit, and the first one that did not."""
        batch, rows = [first], first.rows
        limit = self._params.max_batch_size
        deadline = time.monotonic() + self._params.batch_timeout_micros / 1e6
        while rows < limit:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._busy:  # nothing else runs: no company is coming soon
                    break
                try:
                    task = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if task is Batcher._STOP or rows + task.rows > limit:
                return batch, rows, task
            batch.append(task)
            rows += task.rows
        return batch, rows, None

    def _execute(self, batch: list["Batcher.Task"], rows: int) -> None:
        """Run one merged batch and hand every task its rows (failing tasks alone where possible)."""
        try:
            if len(batch) == 1:
                self._finish(batch[0], lambda: self._run(batch[0].inputs))
            else:
                merged = {k: np.concatenate([t.inputs[k] for t in batch], axis=0) for k in batch[0].inputs}
                try:
                    out = self._run(merged)
                except ServingError as e:
                    if e.code != grpc.StatusCode.INVALID_ARGUMENT:
                        raise
                    # One bad request must not fail its neighbours: retry each on its own.
                    for t in batch:
                        self._finish(t, lambda t=t: self._run(t.inputs))
                else:
                    start = 0
                    for t in batch:
                        t.future.set_result({k: v[start:start + t.rows] for k, v in out.items()})
                        start += t.rows
        except BaseException as e:  # noqa: BLE001 - every waiter must be woken
            for t in batch:
                if not t.future.done():
                    t.future.set_exception(e)
        finally:
            self._done(len(batch), rows)

    @staticmethod
    def _finish(task: "Batcher.Task", call: Callable[[], dict[str, np.ndarray]]) -> None:
        """Set a task's result or exception from `call`."""
        try:
            task.future.set_result(call())
        except BaseException as e:  # noqa: BLE001
            task.future.set_exception(e)

    def close(self) -> None:
        """Finish queued work and stop the threads."""
        self._queue.put(Batcher._STOP)
        self._collector.join(timeout=10)
        self._pool.shutdown(wait=True)
