"""The serving side: the model contract every part imports (`contract`), the embedded model server speaking TensorFlow
Serving's API (`local/`, `python -m serving.local`) with its process helpers (`memory`: malloc arenas, heap trims and,
with `--lean_process`, dropped library pages; `tf_runtime`: TensorFlow without its public API, lean process only),
`make run`'s supervisor (`run_all`), and TF Serving's own configuration files (`*.config`, `batching_parameters.txt`,
`kustomization.yaml`) that the deployments mount. Nothing here is imported by the clients but `contract`."""
