"""`make run` (python -m serving.run_all): refuses without a shipped model, else serves model and page."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import REPO, free_port
from tests.serving.grpc_util import Stubs, health_status


def test_without_a_shipped_model_it_says_so_and_fails(tmp_path):
    empty = tmp_path / "deepfake_detector"
    (empty / "1").mkdir(parents=True)  # an incomplete version does not count
    proc = subprocess.run([sys.executable, "-m", "serving.run_all", f"--model-base-path={empty}",
                           f"--port={free_port()}", f"--web-port={free_port()}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "has not been trained and shipped yet" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.integration
@pytest.mark.slow  # a model server plus Streamlit: ~15 CPU-seconds, kept out of the default run's budget
def test_serves_the_model_and_the_page_and_stops_both_on_sigterm(exported_model, tmp_path):
    port, web_port = free_port(), free_port()
    log = tmp_path / "run_all.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "serving.run_all", f"--model-base-path={exported_model}",
                                 f"--port={port}", f"--web-port={web_port}"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "Press Ctrl-C to stop." not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        text = log.read_text(errors="replace")
        assert f"gRPC 127.0.0.1:{port}" in text
        stubs = Stubs(f"127.0.0.1:{port}")
        assert health_status(stubs) == "SERVING"
        stubs.close()
        if (REPO / "clients" / "web" / "page.py").is_file():
            assert f"http://localhost:{web_port}" in text
            while True:  # Streamlit answers its health route once it listens
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/_stcore/health", timeout=5).read()
                    assert body.strip() == b"ok"
                    break
                except OSError:
                    assert time.monotonic() < deadline, log.read_text(errors="replace")
                    time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    assert code == 0, log.read_text(errors="replace")
    assert "Stopping" in log.read_text(errors="replace")
