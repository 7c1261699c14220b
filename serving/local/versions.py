"""A model's versions: the poller that finds them, loading and warm-up, the swap to a new version, their status.

A version is loaded the way tensorflow_model_server loads it (a session on the MetaGraph, variables restored by
the SavedModel's saver, the warm-up records replayed) and only then marked AVAILABLE.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import numpy as np
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_log_pb2

from serving import contract, memory
from serving.local import runtime
from serving.local.batching import Batcher
from serving.local.config import ModelEntry, ServerConfig
from serving.local.errors import ServingError
from serving.local.metrics import Metrics
from serving.local.signatures import Signature, empty_answer, spec_of

log = logging.getLogger("serving.local")

MAX_WARMUP_RECORDS = 1000
"""TF Serving replays at most this many warm-up records per version."""
SETTLE_POLL_SECONDS = 0.5
"""A candidate version is re-checked this soon to confirm it is stable, not one full poll later."""
QUIET_SECONDS = 10.0
"""A version none of whose files or folders changed (ctime) for this long is stable at first sight: no second
poll (saves the settle wait at startup, when the model was written long before). ctime cannot be backdated
by copying tools, unlike mtime; a load that still fails is retried once the files change."""

State = get_model_status_pb2.ModelVersionStatus.State


def _copy_message(msg: Any) -> Any:
    """A standalone copy of a protobuf message (not a view that keeps its parent message alive)."""
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def session_runner(session: Any, graph: Any,
                   sig: Signature) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """One signature's model call with its feeds and fetches resolved once, not on every request.

    Session.run re-parses its fetch dict and re-checks every feed against the graph on each call
    (~0.5 ms of Python per request here), although the request was already checked against the signature.
    Public path: `Session.make_callable`, TensorFlow's own resolved-once call. Lean path: the session's
    private C entry with the resolved graph outputs, as before the public path existed (falls back to
    Session.run should a TensorFlow release drop that entry)."""
    if not runtime.get().lean:
        return _callable_runner(session, sig)
    aliases = tuple(sig.fetches)
    call = getattr(session, "_call_tf_sessionrun", None)
    if call is None:
        def run_public(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return session.run(sig.fetches, {sig.feeds[k]: v for k, v in inputs.items()})
        return run_public
    feeds = {alias: graph.get_tensor_by_name(name)._as_tf_output() for alias, name in sig.feeds.items()}  # noqa: SLF001
    fetches = [graph.get_tensor_by_name(sig.fetches[a])._as_tf_output() for a in aliases]  # noqa: SLF001

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(aliases, call(None, {feeds[k]: v for k, v in inputs.items()}, fetches, [], None)))

    return run


def _callable_runner(session: Any, sig: Signature) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The model call through the public `Session.make_callable` (feeds and fetches fixed in signature order)."""
    aliases, inputs_order = tuple(sig.fetches), tuple(sig.feeds)
    call = session.make_callable([sig.fetches[a] for a in aliases], feed_list=[sig.feeds[k] for k in inputs_order])

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(aliases, call(*(inputs[k] for k in inputs_order))))

    return run


class Servable:
    """One loaded model version: its signatures, its SignatureDefs, a batcher per signature."""

    def __init__(self, name: str, version: int, path: Path, cfg: ServerConfig, metrics: Metrics):
        self.name = name
        self.version = version
        self.path = path
        self._cfg = cfg
        self._lock = threading.Lock()
        self._inflight = 0
        self._idle = threading.Condition(self._lock)
        # Loaded the way tensorflow_model_server loads it (a session on the MetaGraph, variables
        # restored by the SavedModel's saver), so a version that TF Serving could not run fails here too.
        rt = runtime.get()
        self._errors = rt.InvalidArgumentError
        self._graph = rt.Graph()
        self._session = rt.Session(graph=self._graph, config=runtime.session_config(cfg))
        with self._graph.as_default():
            meta = rt.load_saved_model(self._session, ["serve"], str(path))
        # Own copies of the SignatureDefs, so the MetaGraphDef (graph and function library, now in the session) is freed.
        self.signature_defs = {key: _copy_message(sd) for key, sd in meta.signature_def.items()}
        del meta
        self.signatures: dict[str, Signature] = {}
        for key, sd in self.signature_defs.items():
            if sd.method_name != "tensorflow/serving/predict":
                continue
            self.signatures[key] = Signature(
                key,
                {alias: spec_of(alias, info) for alias, info in sd.inputs.items()},
                tuple(sorted(sd.outputs.keys())),
                {alias: info.name for alias, info in sd.inputs.items()},
                {alias: info.name for alias, info in sd.outputs.items()},
                empty_answer(sd.outputs),
            )
        self._runners = {key: session_runner(self._session, self._graph, sig) for key, sig in self.signatures.items()}
        self._batchers: dict[str, Batcher] = {}
        if cfg.enable_batching:
            for key in self.signatures:
                self._batchers[key] = Batcher(
                    f"{name}/{version}/{key}",
                    lambda inputs, key=key: self.run(key, inputs),
                    cfg.batching, metrics, cfg.log_batches,
                )

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One model call, with TensorFlow's input errors turned into INVALID_ARGUMENT."""
        try:
            return self._runners[signature](inputs)
        except self._errors as e:
            first_line = (e.message or "").strip().split("\n")[0][:300]
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"signature {signature!r} could not process its input: {first_line}") from None

    def predict(self, signature: str, inputs: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """Run through the batcher when batching is on (empty batches are answered at once: `empty_answer`)."""
        if rows == 0:
            empty = self.signatures[signature].empty_answer
            return self.run(signature, inputs) if empty is None else dict(empty)
        batcher = self._batchers.get(signature)
        if batcher is None:
            return self.run(signature, inputs)
        return batcher.submit(inputs, rows)

    @contextlib.contextmanager
    def in_use(self) -> Iterator["Servable"]:
        """Count a request in flight so the version is not unloaded under it."""
        with self._lock:
            self._inflight += 1
        try:
            yield self
        finally:
            with self._lock:
                self._inflight -= 1
                if self._inflight == 0:
                    self._idle.notify_all()

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until no request uses this version, then stop its batchers."""
        with self._lock:
            self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout)
        for b in self._batchers.values():
            b.close()
        self._session.close()

    def warm_up(self, handle: Callable[[predict_pb2.PredictRequest, "Servable"], Any]) -> int:
        """Replay assets.extra/tf_serving_warmup_requests (PredictionLog TFRecords); returns the count.

        Records run in file order within a signature; the signatures warm up side by side, since
        each one's first call is mostly single-threaded graph optimisation."""
        path = self.path / contract.WARMUP_FILE
        if not path.is_file():
            return 0
        by_signature: dict[str, list[predict_pb2.PredictRequest]] = {}
        n = 0
        for record in itertools.islice(runtime.get().tf_record_iterator(str(path)), MAX_WARMUP_RECORDS):
            entry = prediction_log_pb2.PredictionLog.FromString(record)
            if entry.WhichOneof("log_type") != "predict_log":
                raise ValueError(f"warm-up record {n}: only predict_log records are supported")
            req = entry.predict_log.request
            by_signature.setdefault(req.model_spec.signature_name or "serving_default", []).append(req)
            n += 1

        def replay(requests: list[predict_pb2.PredictRequest]) -> None:
            for req in requests:
                handle(req, self)

        with futures.ThreadPoolExecutor(max(1, len(by_signature)), thread_name_prefix="warmup") as pool:
            for f in [pool.submit(replay, reqs) for reqs in by_signature.values()]:
                f.result()
        return n


@dataclass
class VersionState:
    """What GetModelStatus reports for one version."""

    state: int
    error_code: int = 0
    error_message: str = ""


def _snapshot(path: Path) -> tuple[tuple, int]:
    """Names, sizes and mtimes of every file under a version (equal across two polls = stable), and the newest
    change time (ctime, ns) of the folder and everything under it."""
    items = []
    newest = 0
    with contextlib.suppress(OSError):
        newest = path.stat().st_ctime_ns
    for p in sorted(path.rglob("*")):
        with contextlib.suppress(OSError):
            st = p.stat()
            items.append((str(p.relative_to(path)), st.st_size, st.st_mtime_ns))
            newest = max(newest, st.st_ctime_ns)
    return tuple(items), newest


class ModelManager:
    """Polls one model's base path and loads, warms, swaps and unloads its versions like TF Serving."""

    def __init__(self, entry: ModelEntry, cfg: ServerConfig, metrics: Metrics,
                 warmup: Callable[[predict_pb2.PredictRequest, Servable], Any], on_change: Callable[[], None]):
        self.entry = entry
        self._cfg = cfg
        self._metrics = metrics
        self._warmup = warmup
        self._on_change = on_change
        self._lock = threading.Lock()
        self._servables: dict[int, Servable] = {}
        self.states: dict[int, VersionState] = {}
        self._seen: dict[int, tuple] = {}
        self._failed: dict[int, tuple] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"poll-{entry.name}", daemon=True)

    @property
    def name(self) -> str:
        """The served model name."""
        return self.entry.name

    def start(self) -> None:
        """Begin polling the base path in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and unload every version (after its in-flight requests)."""
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            servables = list(self._servables.values())
            self._servables.clear()
        for s in servables:
            s.drain()

    def available(self) -> list[int]:
        """Versions that answer requests now."""
        with self._lock:
            return sorted(self._servables)

    @contextlib.contextmanager
    def acquire(self, version: int | None = None, label: str = "") -> Iterator[Servable]:
        """The servable for a request (latest by default), held until the request is answered."""
        if label:
            if label not in self.entry.labels:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Unrecognized servable version label: {label}")
            version = self.entry.labels[label]
        with self._lock:
            if not self._servables:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   f"Servable {self.name} has no version AVAILABLE yet (loading or none on disk)")
            key = max(self._servables) if version is None else version
            servable = self._servables.get(key)
            if servable is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Servable not found for request: Specific({self.name}, {version})")
            ctx = servable.in_use()
            ctx.__enter__()
        try:
            yield servable
        finally:
            ctx.__exit__(None, None, None)

    def _loop(self) -> None:
        """Poll until stopped; re-check soon while a candidate is settling."""
        while not self._stop.is_set():
            try:
                settling = self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive anything on disk
                log.exception("model=%s poll failed", self.name)
                settling = False
            wait = self._cfg.file_system_poll_wait_seconds
            if settling:
                wait = min(wait, SETTLE_POLL_SECONDS)
            self._stop.wait(max(wait, 0.05))

    def poll_once(self) -> bool:
        """One poll: load newly stable aspired versions, then unload the ones no longer aspired."""
        base = self.entry.base_path
        stable, settling = [], False
        seen: dict[int, tuple] = {}
        for v in contract.version_dirs(base):
            vpath = base / str(v)
            if not contract.is_complete_version(vpath):
                continue
            fp, changed_ns = _snapshot(vpath)
            seen[v] = fp
            if self._seen.get(v) == fp or time.time_ns() - changed_ns >= QUIET_SECONDS * 1e9:
                stable.append(v)
            else:
                settling = True
        self._seen = seen
        aspired = self.entry.policy.aspired(stable)
        for v in aspired:
            if v in self._servables or self._failed.get(v) == seen[v]:
                continue
            self._load(v, seen[v])
            if self._stop.is_set():
                return False
        loaded_aspired = [v for v in aspired if v in self._servables]
        on_disk = set(contract.version_dirs(base))
        for v in list(self._servables):
            if v in aspired:
                continue
            # Availability first: drop an old version only once a newer one answers (or it is gone).
            if loaded_aspired or v not in on_disk:
                self._unload(v)
        return settling or any(v not in self._servables and self._failed.get(v) != seen[v]
                               for v in self.entry.policy.aspired(list(seen)))

    def _load(self, version: int, fp: tuple) -> None:
        """Load and warm one version, then make it AVAILABLE."""
        path = self.entry.base_path / str(version)
        self.states[version] = VersionState(State.LOADING)
        log.info("model=%s version=%d loading from %s", self.name, version, path)
        t0 = time.monotonic()
        try:
            servable = Servable(self.name, version, path, self._cfg, self._metrics)
            t1 = time.monotonic()
            dropped = runtime.drop_load_only_code()
            n = servable.warm_up(self._warmup)
        except Exception as e:  # noqa: BLE001 - a bad version must not take the server down
            self._failed[version] = fp
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
            self.states[version] = VersionState(State.END, error_code=grpc.StatusCode.UNKNOWN.value[0], error_message=msg)
            log.error("model=%s version=%d failed to load: %s", self.name, version, msg)
            return
        with self._lock:
            self._servables[version] = servable
        self.states[version] = VersionState(State.AVAILABLE)
        log.info("model=%s version=%d AVAILABLE (load %.2fs%s, %d warm-up requests %.2fs)",
                 self.name, version, t1 - t0, dropped, n, time.monotonic() - t1)
        self._on_change()
        memory.release_free_memory()  # what loading and warm-up freed: not kept resident while serving

    def _unload(self, version: int) -> None:
        """Stop routing to a version, let its in-flight requests finish, then drop it."""
        with self._lock:
            servable = self._servables.pop(version)
        self.states[version] = VersionState(State.UNLOADING)
        self._on_change()
        log.info("model=%s version=%d unloading", self.name, version)
        servable.drain()
        del servable
        memory.release_free_memory()
        self.states[version] = VersionState(State.END)
        log.info("model=%s version=%d unloaded", self.name, version)
