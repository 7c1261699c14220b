"""The server's process: TensorFlow's public API by default; with `--lean_process`, neither Keras nor the public API."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

ENTRY_THEN_REPORT = """
import runpy, sys
sys.argv = ["serving.local", *{flags!r}, "--help"]
try:
    runpy.run_module("serving.local", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
from serving import tf_runtime
from serving.local import runtime
rt = runtime.choose({lean!r})
print("keras loaded" if sys.modules.get("keras") is not None else "no keras",
      "public api" if tf_runtime.public_api_loaded() else "no public api",
      "session" if rt.Session.__module__ == "tensorflow.python.client.session" else "no session")
"""


def _entry_report(flags: tuple[str, ...], lean: bool) -> str:
    """What `python -m serving.local FLAGS --help` left loaded, once the runtime those flags pick is built."""
    probe = ENTRY_THEN_REPORT.format(flags=list(flags), lean=lean)
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_lean_entry_point_runs_without_keras_or_the_public_api():
    """With --lean_process the entry point has everything the server calls (the session) and nothing it does not."""
    assert _entry_report(("--lean_process",), lean=True) == "no keras no public api session"


def test_default_entry_point_uses_tensorflows_public_api():
    """Without the flag, the server stands on TensorFlow's public API (a plain `import tensorflow`)."""
    report = _entry_report((), lean=False)
    assert report.endswith(" public api session") and "no public api" not in report, report


def test_importing_the_server_modules_leaves_keras_alone():
    """A program that imports serving.local's modules (the benchmark, tests) keeps TensorFlow's usual API and Keras."""
    probe = ("import sys; import serving.local.server; import tensorflow as tf; "
             "print(sys.modules.get('keras') is not None, tf.constant(2).numpy())")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True 2"
