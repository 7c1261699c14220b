"""The client images' HEALTHCHECK commands, run for real: against the Streamlit page and the model server."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.deploy.dockerfiles import final_stage, parse_dockerfile
from tests.deploy.manifests import REPO
from tests.helpers import free_port, stop_process

pytestmark = pytest.mark.integration
HEALTHCHECK = REPO / "docker" / "healthcheck.py"


def _image_check(image: str) -> list[str]:
    """The argv after `python /app/docker/healthcheck.py` in the image's HEALTHCHECK CMD."""
    (check,) = [i.args for i in final_stage(parse_dockerfile(REPO / "docker" / f"Dockerfile.{image}"))
                if i.keyword == "HEALTHCHECK"]
    argv = __import__("json").loads(check.split("CMD", 1)[1])
    assert argv[:2] == ["python", "/app/docker/healthcheck.py"]
    return argv[2:]


def _run_check(args: list[str], **env: str) -> subprocess.CompletedProcess:
    """Run docker/healthcheck.py as the container would (repo on PYTHONPATH, like /app in the image)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], env=full_env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_bot_health_check_follows_the_model_server(model_server):
    """Healthy while the model server has the model AVAILABLE; unhealthy when nothing answers."""
    args = _image_check("bot")
    ok = _run_check(args, TF_SERVING_TARGET=model_server)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    down = _run_check(args, TF_SERVING_TARGET=f"127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "does not answer" in down.stdout


def test_web_health_check_passes_against_the_running_page(tmp_path):
    """The page's HEALTHCHECK (Streamlit's /_stcore/health) passes once `streamlit run clients/web/page.py` is up."""
    port = free_port()
    args = [a.replace("127.0.0.1:8080", f"127.0.0.1:{port}") for a in _image_check("web")]
    assert _run_check(args).returncode == 1, "passes with nothing listening"
    env = dict(os.environ, HOME=str(tmp_path), TF_SERVING_TARGET=f"127.0.0.1:{free_port()}",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", STREAMLIT_SERVER_HEADLESS="true")
    log = open(tmp_path / "streamlit.log", "wb")
    page = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "clients/web/page.py", "--server.port",
                             str(port), "--server.address", "127.0.0.1"], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        result = _run_check(args)
        while result.returncode != 0 and time.monotonic() < deadline and page.poll() is None:
            time.sleep(0.5)
            result = _run_check(args)
        assert result.returncode == 0, (tmp_path / "streamlit.log").read_text()[-3000:]
        assert "HTTP 200" in result.stdout
    finally:
        stop_process(page, timeout=20)
        log.close()
