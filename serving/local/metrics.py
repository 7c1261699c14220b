"""The local server's counters in Prometheus text format (TF Serving's names); tests read them to see batching."""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import grpc


class Metrics:
    """Counters the server exposes in Prometheus text format (and tests read to see batching)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.batches = 0
        self.batched_requests = 0
        self.batch_sizes: dict[int, int] = {}
        self.max_requests_per_batch = 0
        self.inflight = 0

    def count_request(self, model: str, code: grpc.StatusCode) -> None:
        """One finished Predict call, by status code."""
        with self._lock:
            key = (model, code.name)
            self.requests[key] = self.requests.get(key, 0) + 1

    def answered(self) -> int:
        """Predict calls finished so far, any status (the server's activity, for trimming memory when idle)."""
        with self._lock:
            return sum(self.requests.values())

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a Predict call while the server works on it."""
        with self._lock:
            self.inflight += 1
        try:
            yield
        finally:
            with self._lock:
                self.inflight -= 1

    def count_batch(self, requests: int, rows: int) -> None:
        """One model call made by the batcher for `requests` merged requests."""
        with self._lock:
            self.batches += 1
            self.batched_requests += requests
            self.batch_sizes[rows] = self.batch_sizes.get(rows, 0) + 1
            self.max_requests_per_batch = max(self.max_requests_per_batch, requests)

    def prometheus(self) -> str:
        """Prometheus exposition text."""
        with self._lock:
            lines = ["# TYPE :tensorflow:serving:request_count counter"]
            for (model, code), n in sorted(self.requests.items()):
                lines.append(f':tensorflow:serving:request_count{{model_name="{model}",status="{code}"}} {n}')
            lines += [
                "# TYPE :tensorflow:serving:inflight_requests gauge",
                f":tensorflow:serving:inflight_requests {self.inflight}",
                "# TYPE :tensorflow:serving:batching:batches counter",
                f":tensorflow:serving:batching:batches {self.batches}",
                "# TYPE :tensorflow:serving:batching:batched_requests counter",
                f":tensorflow:serving:batching:batched_requests {self.batched_requests}",
                "# TYPE :tensorflow:serving:batching:max_requests_per_batch gauge",
                f":tensorflow:serving:batching:max_requests_per_batch {self.max_requests_per_batch}",
                "# TYPE :tensorflow:serving:batching:processed_batch_size counter",
            ]
            for size, n in sorted(self.batch_sizes.items()):
                lines.append(f':tensorflow:serving:batching:processed_batch_size{{size="{size}"}} {n}')
        return "\n".join(lines) + "\n"
