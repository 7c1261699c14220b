"""The Verdict: typed, JSON round-trips, and reads in words."""
from __future__ import annotations

import json

import numpy as np

from clients.core.verdict import (NO_FACE, FaceResult, Label, QualityWarning, Verdict, band_text, format_score,
                                  rule_text)
from clients.core.config import ClientConfig


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


def test_labels_are_the_enum_and_the_json_keeps_their_words():
    """Label replaces bare strings in the core; its values are the old words, so every JSON stays as it was."""
    assert [m.value for m in Label] == ["real", "fake", "uncertain", "no_face"] and NO_FACE is Label.NO_FACE
    v = _verdict("uncertain", 0.5)
    assert v.label is Label.UNCERTAIN and v.faces[0].label is Label.UNCERTAIN  # a word given is made the Label
    d = json.loads(v.to_json())
    assert d["label"] == "uncertain" and d["faces"][0]["label"] == "uncertain"
    assert '"label": "uncertain"' in v.to_json() and "Label" not in v.to_json()
    back = Verdict.from_dict(d)
    assert back.label is Label.UNCERTAIN and back.faces[0].label is Label.UNCERTAIN
    whole = _verdict("fake", 0.9)
    whole.whole_image = True
    assert whole.shown_label is Label.NO_FACE and whole.label == "fake" and f"{whole.shown_label}" == "no_face"


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


def test_no_face_headline_gives_no_real_or_fake_verdict():
    """Without a face the headline says so; the whole-image score is offered only as a labelled check."""
    v = _verdict("fake", 0.81)
    v.whole_image = True
    assert v.shown_label == "no_face" and v.headline.startswith("No face found")
    assert "fake" not in v.headline.lower().replace("real/fake", "") and "81%" not in v.headline
    assert v.summary == v.headline
    assert v.whole_image_check.startswith("Whole-image check, not a verdict") and "0.810" in v.whole_image_check
    assert _verdict("fake", 0.81).whole_image_check == "" and _verdict("fake", 0.81).shown_label == "fake"


def test_uncertain_headline_says_what_its_number_is():
    """'Uncertain, confidence 58%' said nothing; the headline names the fake score and the band it falls in."""
    v = _verdict("uncertain", 0.42)
    v.uncertain_band = (0.385, 0.455)
    assert v.headline == ("Uncertain: the model's fake score is 0.420, inside the band 0.385–0.455 "
                          "where it is not reliable")
    assert "confidence" not in v.headline and "58%" not in v.headline


def test_band_is_formatted_exactly_from_the_float32_the_server_sends():
    """0.385 and 0.455 arrive as float32 (0.38499999...): they read 0.385-0.455, never 0.38-0.46 or 0.39."""
    band = (float(np.float32(0.385)), float(np.float32(0.455)))
    assert band_text(band) == "0.385–0.455"
    assert band_text((0.4, 0.6)) == "0.40–0.60" and band_text((0.5, 0.5)) == ""
    assert format_score(float(np.float32(0.42))) == "0.42" and format_score(0.3875) == "0.3875"
    assert rule_text(float(np.float32(0.42)), band) == "threshold 0.42, uncertain band 0.385–0.455"
    assert rule_text(0.5, (0.5, 0.5)) == "threshold 0.50"
