"""The health probe and the model image's copy step, run for real against the local model server.

The compose health check and the k8s readiness probe are the same bash script; here it runs against
`python -m serving.local` (which answers TF Serving's REST status) on a model directory filled by the
model image's own copy command, the way the init container fills the emptyDir.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from serving.contract import MODEL_NAME
from tests.deploy.dockerfiles import parse_dockerfile
from tests.deploy.manifests import COMPOSE_FILE, REPO
from tests.helpers import ServerProcess, free_port

pytestmark = pytest.mark.integration
BASH = shutil.which("bash")


def _probe_script(port: int, model: str = MODEL_NAME) -> str:
    """The compose health check, aimed at a loopback port (and, for the negative case, another model)."""
    script = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["serving"]["healthcheck"]["test"][3]
    assert "/dev/tcp/127.0.0.1/8501" in script
    return script.replace("/dev/tcp/127.0.0.1/8501", f"/dev/tcp/127.0.0.1/{port}").replace(
        f"/v1/models/{MODEL_NAME} ", f"/v1/models/{model} ")


def _run_probe(script: str) -> int:
    """Run the probe like Docker does (bash -c) and return its exit code."""
    return subprocess.run([BASH, "-c", script], capture_output=True, timeout=20).returncode


def _copy_like_the_init_container(source_root: Path, dest: Path, version: int) -> subprocess.CompletedProcess:
    """Run Dockerfile.model's CMD with /model pointed at `source_root` and MODEL_DEST at `dest`."""
    cmd = next(i.args for i in parse_dockerfile(REPO / "docker" / "Dockerfile.model") if i.keyword == "CMD")
    argv = yaml.safe_load(cmd)  # the exec form is a JSON array
    assert argv[:2] == ["sh", "-c"]
    script = argv[2].replace('"/model/', f'"{source_root}/')
    env = {"PATH": "/usr/bin:/bin", "MODEL_NAME": MODEL_NAME, "MODEL_VERSION": str(version), "MODEL_DEST": str(dest)}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def served_copy(exported_model, tmp_path_factory):
    """A local model server (gRPC + REST) on the directory the model image's copy step filled."""
    if BASH is None:
        pytest.skip("bash is not installed")
    version = 1
    source_root = tmp_path_factory.mktemp("model-image")
    shutil.copytree(exported_model, source_root / MODEL_NAME)
    dest = tmp_path_factory.mktemp("emptydir")
    first = _copy_like_the_init_container(source_root, dest, version)
    assert first.returncode == 0, first.stderr
    again = _copy_like_the_init_container(source_root, dest, version)  # a restarted init container
    assert again.returncode == 0, again.stderr
    rest_port = free_port()
    log = tmp_path_factory.mktemp("probe-log") / "server.log"
    server = ServerProcess(base_path=dest / MODEL_NAME, log_path=log, extra_args=(f"--rest_api_port={rest_port}",))
    server.start()
    try:
        server.wait_available()
        yield dest, rest_port
    finally:
        server.terminate()


def test_model_image_copy_leaves_one_complete_version(served_copy, exported_model):
    """The init container's copy gives exactly the version directory, complete, with no temp leftovers."""
    dest, _ = served_copy
    model_dir = dest / MODEL_NAME
    assert sorted(p.name for p in model_dir.iterdir()) == ["1"]
    copied = sorted(p.relative_to(model_dir / "1").as_posix() for p in (model_dir / "1").rglob("*"))
    original = sorted(p.relative_to(exported_model / "1").as_posix() for p in (exported_model / "1").rglob("*"))
    assert copied == original and "saved_model.pb" in copied


def test_probe_passes_when_the_model_is_available(served_copy):
    """With the model AVAILABLE, the compose health check / k8s readiness probe exits 0."""
    _, rest_port = served_copy
    assert _run_probe(_probe_script(rest_port)) == 0


def test_probe_fails_for_a_model_the_server_does_not_have(served_copy):
    """The same server, asked about a model it has no AVAILABLE version of, fails the probe."""
    _, rest_port = served_copy
    assert _run_probe(_probe_script(rest_port, model="not_loaded_model")) != 0


def test_probe_fails_when_nothing_listens():
    """No server on the port: the probe fails (quickly) rather than hanging or passing."""
    if BASH is None:
        pytest.skip("bash is not installed")
    assert _run_probe(_probe_script(free_port())) != 0


def test_probe_script_is_valid_bash():
    """bash -n parses the probe exactly as written in docker-compose.yml."""
    if BASH is None:
        pytest.skip("bash is not installed")
    script = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["serving"]["healthcheck"]["test"][3]
    assert subprocess.run([BASH, "-n", "-c", script], capture_output=True).returncode == 0
    assert shlex.split(script)  # also well-formed for shell quoting
