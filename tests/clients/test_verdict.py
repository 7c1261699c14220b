"""The Verdict: typed, JSON round-trips, and reads in words."""
from __future__ import annotations

import json

from clients.verdict import FaceResult, QualityWarning, Verdict
from clients.config import ClientConfig


def _verdict(label="fake", p=0.8) -> Verdict:
    face = FaceResult(box=(1, 2, 3, 4), fake_probability=p, label=label, confidence=p,
                      heatmap=[[0.0] * 7] * 7, crop_box=(0, 0, 10, 10))
    return Verdict(label=label, fake_probability=p, confidence=p, threshold=0.5, uncertain_band=(0.4, 0.6),
                   faces=[face], whole_image=False, model_name="deepfake_detector", model_version=3,
                   timings_ms={"total": 12.5}, warnings=[QualityWarning("blur", "The image is blurry.")],
                   sha256="ab" * 32, filename="ünïcode 名前.png", image_size=(640, 480), original_size=(1280, 960))


def test_json_round_trip_keeps_every_field():
    v = _verdict()
    text = v.to_json()
    assert "ünïcode 名前.png" in text  # readable, not \\u-escaped
    d = json.loads(text)
    assert d["faces"][0]["box"] == [1, 2, 3, 4] and d["warnings"][0]["code"] == "blur"
    assert Verdict.from_dict(d) == v


def test_summary_in_words():
    assert _verdict("fake", 0.87).summary == "Likely fake (confidence 87%)"
    assert _verdict("real", 0.9).summary == "Likely real (confidence 90%)"


def test_config_from_env_reads_every_variable():
    env = {"TF_SERVING_TARGET": "10.0.0.1:9000", "DEEPFAKE_TIMEOUT_S": "2.5", "DEEPFAKE_MAX_BYTES": "1000",
           "DEEPFAKE_MAX_PIXELS": "2000000", "DEEPFAKE_MIN_SIDE": "32", "DEEPFAKE_RETRIES": "5"}
    c = ClientConfig.from_env(env)
    assert (c.target, c.timeout_s, c.max_bytes, c.max_pixels, c.min_side, c.retries) == (
        "10.0.0.1:9000", 2.5, 1000, 2_000_000, 32, 5)
    assert ClientConfig.from_env({}).target == "localhost:8500"
    assert ClientConfig.from_env(env, target="127.0.0.1:1", timeout_s=None).target == "127.0.0.1:1"
