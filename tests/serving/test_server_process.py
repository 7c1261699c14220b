"""The server's own process starts lean: `python -m serving.local` never loads Keras."""
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
import tensorflow
print("keras loaded" if sys.modules.get("keras") is not None else "no keras", "tensorflow", tensorflow.__version__)
"""


def test_server_entry_point_runs_without_keras():
    done = subprocess.run([sys.executable, "-c", ENTRY_THEN_REPORT], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("no keras tensorflow"), done.stdout[-2000:]


def test_importing_the_server_module_leaves_keras_alone():
    """A program that imports serving.local (the benchmark, tests) keeps TensorFlow's usual Keras."""
    probe = "import sys; import serving.local; print(sys.modules.get('keras') is not None)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "True"
