"""docker-compose.yml: valid Compose, the three services wired as the issue asks, no secret committed."""
from __future__ import annotations

import copy
import json
import re
import subprocess
from importlib.resources import files

import jsonschema
import pytest
import yaml

from serving.contract import DEFAULT_GRPC_PORT, MODEL_NAME
from tests.deploy.manifests import K8S, REPO


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    """The Compose specification's JSON schema, as vendored by check-jsonschema (offline)."""
    try:
        resource = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema (the test extra) is not installed: no offline Compose schema")
    return json.loads(resource.read_text())


def _errors(schema: dict, document: dict) -> list[str]:
    """Every schema violation in a compose document, as readable strings."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_validates_against_the_compose_spec(compose, compose_schema):
    """`docker compose` would accept the file's structure (checked offline against the spec's schema)."""
    assert _errors(compose_schema, compose) == []


def test_the_schema_check_bites(compose, compose_schema):
    """A misspelt health-check key or an unknown depends_on condition is reported."""
    broken = copy.deepcopy(compose)
    broken["services"]["serving"]["healthcheck"]["intreval"] = "5s"
    assert _errors(compose_schema, broken)
    broken = copy.deepcopy(compose)
    broken["services"]["web"]["depends_on"]["serving"]["condition"] = "service_ready"
    assert _errors(compose_schema, broken)


def test_three_services_and_the_pinned_official_serving_image(compose):
    """serving runs the same pinned tensorflow/serving image as Kubernetes; web and bot are built here."""
    services = compose["services"]
    assert set(services) == {"serving", "web", "bot"}
    image = services["serving"]["image"]
    assert re.fullmatch(r"tensorflow/serving:\d+\.\d+\.\d+", image), image
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    k8s_tag = next(i["newTag"] for i in kustomization["images"] if i["name"] == "tensorflow/serving")
    assert image == f"tensorflow/serving:{k8s_tag}", "compose and k8s must serve with the same server"
    for name in ("web", "bot"):
        assert (REPO / services[name]["build"]["context"] / services[name]["build"]["dockerfile"]).is_file()
        assert re.fullmatch(r"[a-z0-9-]+:\d+(\.\d+)*", services[name]["image"])


def test_serving_mounts_model_and_config_read_only_and_they_exist(compose):
    """The model and every config file the server is told to read are mounted read-only from the repo."""
    serving = compose["services"]["serving"]
    mounts = {v["target"]: v for v in serving["volumes"]}
    assert all(v["read_only"] is True for v in mounts.values())
    for arg in serving["command"]:
        match = re.match(r"--(\w+_file)=(.+)", arg)
        if match:
            path = match.group(2)
            assert path in mounts, f"--{match.group(1)}={path} is not mounted"
            source = REPO / mounts[path]["source"]
            if source.parent.name == "serving" and not source.exists():
                pytest.skip(f"serving/{source.name} (the serving area's file) is not written yet")
            assert source.is_file(), f"{mounts[path]['source']} is missing"
    model_mounts = [v for v in mounts.values() if v["source"].rstrip("/").endswith(f"saved_model/{MODEL_NAME}")]
    assert len(model_mounts) == 1
    config = (REPO / mounts[_flag(serving["command"], "model_config_file")]["source"]).read_text()
    base_paths = re.findall(r'base_path:\s*"([^"]+)"', config)
    assert base_paths, "models.config names no base_path"
    assert all(p.rstrip("/") == model_mounts[0]["target"] for p in base_paths), \
        f"models.config base_path {base_paths} is not where compose mounts the model"


def test_serving_health_check_passes_only_when_the_model_is_available(compose):
    """The health check looks for AVAILABLE in the model's REST status, the same probe as k8s readiness."""
    check = compose["services"]["serving"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "bash", "-c"], "the official image has bash but no curl or wget"
    script = check[3]
    assert f"GET /v1/models/{MODEL_NAME} " in script and "grep -q '\"AVAILABLE\"'" in script
    assert f"--rest_api_port={script.split('/dev/tcp/127.0.0.1/')[1].split()[0]}" in compose["services"]["serving"]["command"]
    deployment = yaml.safe_load((K8S / "serving" / "deployment.yaml").read_text())
    ready = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
    assert ready == check[1:]


def test_clients_wait_for_a_healthy_server_and_dial_its_grpc_port(compose):
    """web and bot start only once serving is healthy, and point at serving's gRPC port."""
    grpc_port = _flag(compose["services"]["serving"]["command"], "port")
    assert grpc_port == str(DEFAULT_GRPC_PORT)
    for name in ("web", "bot"):
        service = compose["services"][name]
        assert service["depends_on"]["serving"]["condition"] == "service_healthy"
        assert service["environment"]["TF_SERVING_TARGET"] == f"serving:{grpc_port}"
        assert service["healthcheck"]["test"][0] == "CMD"


def test_every_service_runs_non_root_on_a_read_only_root_filesystem(compose):
    """No service runs as root; root filesystems are read-only, with a tmpfs /tmp."""
    for name, service in compose["services"].items():
        user = str(service["user"]).split(":")[0]
        assert user not in ("0", "root", ""), name
        assert service["read_only"] is True, name
        assert any(str(t).startswith("/tmp") for t in service["tmpfs"]), name
        assert service["cap_drop"] == ["ALL"], name


def test_bot_token_comes_from_an_uncommitted_env_file(compose):
    """The token is in .env (git-ignored, from .env.example, which holds no token), never in compose."""
    bot = compose["services"]["bot"]
    env_files = [e["path"] if isinstance(e, dict) else e for e in bot["env_file"]]
    assert env_files == [".env"]
    for service in compose["services"].values():
        assert not any("TOKEN" in key for key in service.get("environment", {})), "token set inline"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode
    assert ignored == 0, ".env is not git-ignored"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO, capture_output=True)
    assert tracked.returncode != 0, ".env is committed"
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["TELEGRAM_BOT_TOKEN"] == ""


def _flag(args: list[str], name: str) -> str:
    """The value of --name=value in a command list."""
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return value
