"""Training's dependency on the clients: only the crop rule at import time; the whole-photo check takes its crops."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.helpers import REPO
from training.data import Sample
from training.evaluate import EvalConfig, whole_photo_vs_crop


def test_importing_training_loads_only_the_crop_rule_from_the_clients():
    code = ("import sys\n"
            "import training.augment, training.evaluate, training.train, training.real_holdout, training.clips\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'clients'))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['clients', 'clients.core', 'clients.core.facecrop']"


class _ByteScorer:
    """Scores an encoded image by its first byte, so a crop and its photo can score differently."""

    def score(self, batch: list[bytes]) -> np.ndarray:
        return np.array([b[0] / 255.0 for b in batch], np.float32)


def test_the_whole_photo_check_takes_a_crop_function(tmp_path):
    """Given (name, crops), the check uses them and never reaches for the client core's own preparation."""
    samples = []
    for i, (label, first) in enumerate([(1, 200), (0, 20), (1, 220), (0, 40)]):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(bytes([first]) + b"photo")
        samples.append(Sample(str(path), label, "src", str(i)))
    crops = ("stub", lambda data: ([bytes([255 - data[0]]), bytes([data[0]])], data[0] > 100))
    report = whole_photo_vs_crop(_ByteScorer(), samples, 0.5, EvalConfig(whole_photos_max=0), crops=crops)
    assert report["detector"] == "stub" and report["n"] == 4 and report["face_found_share"] == 0.5
    assert report["as_is"]["overall"]["auc"] == 1.0
