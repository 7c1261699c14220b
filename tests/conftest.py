"""Shared fixtures: an exported (untrained) test model and a real model server on loopback."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import ServerProcess, export_untrained


@pytest.fixture(scope="session")
def _model_base(tmp_path_factory) -> Path:
    """Where the session's test model goes (empty until `exported_model` writes version 1)."""
    return tmp_path_factory.mktemp("models") / "deepfake_detector"


@pytest.fixture(scope="session")
def exported_model(_model_base) -> Path:
    """Base path (tmp) holding version 1 of an UNTRAINED model built by training.model.

    Its head is random and never trained (the backbone has ImageNet weights from /work/shared
    when present, else random, see tests.helpers.export_untrained): this model is plumbing only,
    for testing the serving path and the clients. Its probabilities vary with the input but mean
    nothing; it is never shipped and never called a detector.
    """
    export_untrained(_model_base, version=1)
    return _model_base


@pytest.fixture(scope="session")
def model_server(request, tmp_path_factory):
    """Target "127.0.0.1:PORT" of `python -m serving.local` serving `exported_model`, once AVAILABLE.

    If env TF_SERVING_TARGET is set, yields that target instead and starts nothing (so the same
    tests can certify a real TensorFlow Serving). The served model is the untrained test model
    of `exported_model`: check plumbing and contract, never the quality of verdicts.
    """
    external = os.environ.get("TF_SERVING_TARGET")
    if external:
        yield external
        return
    base = request.getfixturevalue("_model_base")
    log = tmp_path_factory.mktemp("server-log") / "model_server.log"
    # Start the server first: it imports TensorFlow while the test model is being exported,
    # then picks version 1 up from the base path like it would any new version.
    server = ServerProcess(base_path=base, log_path=log, extra_args=("--file_system_poll_wait_seconds=0.5",)).start()
    try:
        request.getfixturevalue("exported_model")
        server.wait_available()
        yield server.target
    finally:
        server.terminate()
