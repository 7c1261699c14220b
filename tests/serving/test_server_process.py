"""The server's own process starts lean: `python -m serving.local` loads neither Keras nor TensorFlow's public API."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ENTRY_THEN_REPORT = """
import runpy, sys
sys.argv = ["serving.local", "--help"]
try:
    runpy.run_module("serving.local", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
from serving import tf_runtime
print("keras loaded" if sys.modules.get("keras") is not None else "no keras",
      "public api" if tf_runtime.public_api_loaded() else "no public api",
      "session" if "tensorflow.python.client.session" in sys.modules else "no session")
"""


def test_server_entry_point_runs_without_keras_or_the_public_api():
    """The entry point has everything the server calls (the session) and nothing it does not."""
    done = subprocess.run([sys.executable, "-c", ENTRY_THEN_REPORT], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "no keras no public api session", done.stdout[-2000:]


def test_importing_the_server_module_leaves_keras_alone():
    """A program that imports serving.local (the benchmark, tests) keeps TensorFlow's usual API and Keras."""
    probe = ("import sys; import serving.local; import tensorflow as tf; "
             "print(sys.modules.get('keras') is not None, tf.constant(2).numpy())")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True 2"
