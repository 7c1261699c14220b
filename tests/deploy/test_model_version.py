"""Which model version is deployed is said once, in serving/models.config; compose and k8s must agree with it."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from serving.contract import MODEL_NAME, is_complete_version
from tests.deploy.manifests import K8S, REPO, pod_specs, render

MODELS_CONFIG = REPO / "serving" / "models.config"
MODEL_IMAGE = "deepfake-detector-model"


def deployed_version(config_text: str) -> int:
    """The one version a models.config pins with `specific { versions: N }` (fails on any other policy)."""
    text = re.sub(r"#.*", "", config_text)
    policies = re.findall(r"model_version_policy\s*\{\s*(\w+)\s*\{([^}]*)\}", text)
    assert len(policies) == 1, f"models.config must have exactly one version policy, found {policies}"
    kind, body = policies[0]
    versions = re.findall(r"versions\s*:\s*(\d+)", body)
    assert kind == "specific" and len(versions) == 1, \
        f"models.config must pin one version (specific {{ versions: N }}), not {kind} {{{body.strip()}}}"
    return int(versions[0])


def version_disagreements(version: int, docs: list[dict], compose: dict) -> list[str]:
    """Where the k8s render or the compose file would deploy something else than `version`."""
    problems = []
    model_dir = REPO / "saved_model" / MODEL_NAME / str(version)
    if not is_complete_version(model_dir):
        problems.append(f"{model_dir.relative_to(REPO)} is missing or incomplete")
    for workload, pod in pod_specs(docs).items():
        for c in pod.get("initContainers", []):
            name, _, tag = c["image"].rpartition(":")
            if name.rsplit("/", 1)[-1] == MODEL_IMAGE and tag != str(version):
                problems.append(f"k8s {workload}/{c['name']} runs {c['image']}, not version {version}")
    config_maps = [d for d in docs if d["kind"] == "ConfigMap" and "models.config" in d.get("data", {})]
    if [deployed_version(c["data"]["models.config"]) for c in config_maps] != [version]:
        problems.append(f"k8s serving-config does not pin version {version}")
    serving = compose["services"]["serving"]
    mounts = {v["target"]: v["source"] for v in serving["volumes"]}
    config_flag = next(a.split("=", 1)[1] for a in serving["command"] if a.startswith("--model_config_file="))
    if (REPO / mounts.get(config_flag, "")).resolve() != MODELS_CONFIG.resolve():
        problems.append(f"compose serving reads {mounts.get(config_flag)} as its model config, "
                        "not serving/models.config")
    if not any((REPO / src).resolve() == (REPO / "saved_model" / MODEL_NAME).resolve() for src in mounts.values()):
        problems.append("compose serving does not mount saved_model/deepfake_detector/")
    return problems


def test_the_deployed_version_is_pinned_shipped_and_agreed_on_by_k8s_and_compose(rendered, compose):
    """serving/models.config pins one version; it is on disk and complete; k8s and compose deploy exactly it."""
    version = deployed_version(MODELS_CONFIG.read_text())
    assert version in [int(p.name) for p in (REPO / "saved_model" / MODEL_NAME).iterdir() if p.name.isdigit()]
    assert version_disagreements(version, rendered, compose) == []


def test_a_bump_in_one_place_only_is_caught(kubectl, rendered, compose, tmp_path):
    """Changing the version in serving/models.config alone, or the k8s image tag alone, fails the check."""
    version = deployed_version(MODELS_CONFIG.read_text())
    bumped = version_disagreements(version + 1000, rendered, compose)
    assert any("missing" in p for p in bumped) and any("k8s" in p for p in bumped)

    shutil.copytree(K8S, tmp_path / "k8s")
    shutil.copytree(REPO / "serving", tmp_path / "serving", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    kustomization = tmp_path / "k8s" / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    for image in data["images"]:
        if image["name"] == MODEL_IMAGE:
            image["newTag"] = str(version + 1)
    kustomization.write_text(yaml.safe_dump(data))
    tag_only = version_disagreements(version, render(kubectl, tmp_path / "k8s"), compose)
    assert any(f"{MODEL_IMAGE}:{version + 1}" in p for p in tag_only), tag_only


def test_deployed_version_reads_only_a_pinned_policy():
    assert deployed_version('model_version_policy { specific { versions: 4 } }  # versions: 9') == 4
    for text in ("model_version_policy { latest { num_versions: 1 } }",
                 "model_version_policy { specific { versions: 3 versions: 4 } }", ""):
        with pytest.raises(AssertionError):
            deployed_version(text)


def test_the_readme_build_command_builds_the_deployed_version():
    """README's `V=...` line (which model image to build and push) yields the version serving/models.config pins."""
    readme = (REPO / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith("V=$("))
    out = subprocess.run(["bash", "-c", f"{line}\necho \"$V\""], cwd=REPO, capture_output=True, text=True, timeout=10)
    assert out.stdout.strip() == str(deployed_version(MODELS_CONFIG.read_text())), (line, out.stderr)
