"""Fixtures for the deployment checks: the kustomize render, the compose file, and the tools they need."""
from __future__ import annotations

import pytest
import yaml

from tests.deploy.manifests import COMPOSE_FILE, K8S, find_kubectl, render


@pytest.fixture(scope="session")
def kubectl() -> str:
    """Path of a kubectl with kustomize v4+, or skip with the reason none could be had."""
    path, why = find_kubectl()
    if path is None:
        print(f"SKIP k8s render: {why}")
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def rendered(kubectl) -> list[dict]:
    """Every object `kubectl apply -k k8s/` would send."""
    return render(kubectl, K8S)


@pytest.fixture(scope="session")
def compose() -> dict:
    """docker-compose.yml parsed."""
    return yaml.safe_load(COMPOSE_FILE.read_text())
