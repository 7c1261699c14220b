"""TensorFlow's runtime for the embedded server, without TensorFlow's public API.

`import tensorflow` runs `tensorflow/__init__.py`, which builds the whole public API: some 1,500
Python modules the server never calls (tf.data, tf.keras's loader, distribution strategies, ...):
~2 s of the cold start and ~120 MiB resident here. The server needs only the graph, the session,
the TF1 SavedModel loader and the TensorProto helpers, which live in `tensorflow.python.*` and load
the same native runtime (every kernel is registered there, so any graph TF Serving runs, runs here).

`skip_public_api()` lets those submodules import without the package's `__init__` running. It is
for the server's own process only (`python -m serving.local`): a program that imported this module
and then used `tf.` attributes would find them missing, so nothing calls it at import time."""

from __future__ import annotations

import importlib.util
import sys
import types

PACKAGE = "tensorflow"


def skip_public_api() -> bool:
    """Register `tensorflow` as a bare package (its submodules import, its API is not built).

    Returns False, changing nothing, where TensorFlow was already imported or is not installed
    (then the normal import runs, or fails with its usual message)."""
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return False
    package = types.ModuleType(PACKAGE, "TensorFlow's submodules only (serving.tf_runtime.skip_public_api)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    package.__package__ = PACKAGE
    sys.modules[PACKAGE] = package
    return True


def public_api_loaded() -> bool:
    """Whether this process built TensorFlow's public API (`tf.constant` and friends)."""
    return hasattr(sys.modules.get(PACKAGE), "constant")
