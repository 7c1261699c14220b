"""The model contract: the one place that says what the served model takes and returns.

Everything that talks to the model (training's export, the local server, the clients,
the tests, the deployment files) imports its names from here, so they cannot drift apart.
This module is pure Python: clients import it without TensorFlow.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

MODEL_NAME = "deepfake_detector"
"""The name TensorFlow Serving serves the model under."""

IMAGE_SIZE = 224
"""Side of the square face crop the network sees, in pixels."""

DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
DEFAULT_TARGET = f"localhost:{DEFAULT_GRPC_PORT}"
TARGET_ENV = "TF_SERVING_TARGET"

# Signatures ---------------------------------------------------------------------------------
SIGNATURE_PIXELS = "serving_default"
"""Input `image`: float32 [None, 224, 224, 3], RGB in 0..255."""
SIGNATURE_BYTES = "from_bytes"
"""Input `image_bytes`: string [None], each an encoded JPEG, PNG or WebP crop of any size."""

INPUT_PIXELS = "image"
INPUT_BYTES = "image_bytes"

OUTPUT_PROBABILITY = "fake_probability"
"""float32 [None]: calibrated probability that the face was manipulated or generated."""
OUTPUT_THRESHOLD = "threshold"
"""float32 [None]: the decision threshold of the model version that answered (same for every row)."""
OUTPUT_UNCERTAIN_BAND = "uncertain_band"
"""float32 [None, 2]: (low, high) probabilities between which the verdict is 'uncertain'."""
OUTPUT_HEATMAP = "heatmap"
"""float32 [None, H, W] in 0..1: Grad-CAM toward 'fake' over the last convolutional block."""

OUTPUTS = (OUTPUT_PROBABILITY, OUTPUT_THRESHOLD, OUTPUT_UNCERTAIN_BAND, OUTPUT_HEATMAP)

SIGNATURE_INPUTS = {SIGNATURE_PIXELS: INPUT_PIXELS, SIGNATURE_BYTES: INPUT_BYTES}

# Files inside a version directory -----------------------------------------------------------
METADATA_FILE = "assets.extra/metadata.json"
"""Metadata JSON beside each version: name, version, threshold, band, training data, metrics."""
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
"""TF Serving's warm-up records (PredictionLog in TFRecord), replayed at load time."""

DEFAULT_THRESHOLD = 0.5

_VERSION_DIR = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class ModelMetadata:
    """What a client may know about a model version beyond its signatures."""

    name: str = MODEL_NAME
    version: int = 0
    threshold: float = DEFAULT_THRESHOLD
    uncertain_band: tuple[float, float] = (DEFAULT_THRESHOLD, DEFAULT_THRESHOLD)
    training_data: str = ""
    metrics: dict = field(default_factory=dict)

    def label_for(self, probability: float) -> str:
        """Turn a fake probability into 'fake', 'real' or 'uncertain' for this version."""
        return label_for(probability, self.threshold, self.uncertain_band)


def label_for(probability: float, threshold: float, band: tuple[float, float]) -> str:
    """The one rule that maps a probability to a verdict label, used by every client."""
    low, high = band
    if low < high and low <= probability <= high:
        return "uncertain"
    return "fake" if probability >= threshold else "real"


def confidence_for(probability: float, label: str) -> float:
    """The probability of the reported label (not of the other class, as the seed did)."""
    if label == "fake":
        return probability
    if label == "real":
        return 1.0 - probability
    return max(probability, 1.0 - probability)


def version_dirs(base_path: str | Path) -> list[int]:
    """Integer versions present under a model base path, the way TF Serving lists them."""
    base = Path(base_path)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and _VERSION_DIR.match(p.name))


def is_complete_version(version_path: str | Path) -> bool:
    """A version is servable only once its graph and variables are fully written."""
    p = Path(version_path)
    has_graph = (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file()
    has_vars = (p / "variables" / "variables.index").is_file()
    return has_graph and has_vars
