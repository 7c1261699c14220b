"""The embedded model server: TensorFlow Serving's gRPC (and REST) API on one machine, without Docker.

`python -m serving.local` takes tensorflow_model_server's flags and behaves like it where a client can tell:
it polls the base path, serves the highest complete version once it is stable and warmed up, keeps the old
version answering until the new one is AVAILABLE, and answers with TF Serving's status codes. One concern per
module: `server` (flags, wiring, lifecycle, main), `config` (TF Serving's config files and ServerConfig),
`predict` (the Predict, metadata and status services), `signatures` (tensors in and out of a signature),
`batching` (merging concurrent requests), `versions` (the poller, loading, warm-up, version status), `rest`
(TF Serving's JSON API), `metrics` (Prometheus counters), `errors` (status codes and what of a client's text
may be shown) and `runtime` (how TensorFlow is reached: its public API by default, or with `--lean_process`
its runtime modules alone, without Keras, and with load-only library pages dropped). Importing the package
does nothing: `__main__` picks the runtime before anything imports TensorFlow.
"""
