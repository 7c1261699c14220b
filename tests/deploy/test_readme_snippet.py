"""The README's "calling the gRPC API" snippet works, run as written against a real model server."""
from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.deploy.manifests import REPO

pytestmark = pytest.mark.integration


def _deployment_snippet() -> str:
    """The Python block of the README's Deployment section."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Deployment", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_readme_grpc_snippet_gets_a_probability(model_server, tmp_path, monkeypatch):
    """Another service copying the snippet gets P(fake) in [0, 1] and the version's threshold."""
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(tmp_path / "face.jpg", quality=90)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TF_SERVING_TARGET", model_server)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_deployment_snippet(), "README.md#deployment", "exec"), {"__name__": "readme_snippet"})
    match = re.search(r"model version (\d+): P\(fake\)=([0-9.]+), threshold ([0-9.]+)", out.getvalue())
    assert match, out.getvalue()
    assert int(match.group(1)) >= 1
    assert 0.0 <= float(match.group(2)) <= 1.0 and 0.0 < float(match.group(3)) < 1.0
