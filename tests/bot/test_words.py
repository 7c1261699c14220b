"""What /about and the verdict reply say, from metadata and a Verdict (no servers)."""
from __future__ import annotations

import json

import numpy as np

from clients.bot.config import DEFAULT_MODEL_DIR
from clients.bot.handlers import about_text, measured_accuracy, newest_version, read_metadata, verdict_text
from clients.core.grpc_client import ModelInfo
from clients.core.verdict import FaceResult, QualityWarning, Verdict


def test_accuracy_prefers_test_then_validation_and_ignores_per_source():
    """Overall figures win over per-source ones; test over validation; absent figures give None."""
    metrics = {"per_source": {"utkface": {"accuracy": 0.99}}, "validation": {"accuracy": 0.8, "auc": 0.9},
               "test": {"accuracy": 0.75, "auc": 0.85}, "ece_after": 0.05}
    assert measured_accuracy(metrics) == "75.0% (test accuracy), AUC 0.850 (test)"
    del metrics["test"]
    assert measured_accuracy(metrics) == "80.0% (validation accuracy), AUC 0.900 (validation)"
    assert measured_accuracy({"per_source": {"a": {"accuracy": 1.0}}}) is None


def test_accuracy_of_the_shipped_model_is_found():
    """The shipped version's metadata yields the accuracy /about quotes (skips before a model ships)."""
    import pytest

    version = newest_version(DEFAULT_MODEL_DIR)
    if version is None:
        pytest.skip("no model shipped under saved_model/deepfake_detector yet")
    metrics = read_metadata(DEFAULT_MODEL_DIR, version).get("metrics") or {}
    overall = (metrics.get("test") or metrics.get("validation") or {}).get("accuracy")
    if overall is None:
        pytest.skip("the shipped metadata holds no overall accuracy")
    assert measured_accuracy(metrics).startswith(f"{overall:.1%}")


def test_reply_lists_faces_and_warnings_or_says_no_face():
    """Each face gets a numbered line; each warning is quoted; a whole-image verdict says no face was found."""
    faces = [FaceResult(box=(10, 20, 100, 120), fake_probability=0.91, label="fake", confidence=0.91),
             FaceResult(box=(200, 30, 80, 90), fake_probability=0.12, label="real", confidence=0.88)]
    warning = QualityWarning("blur", "The image is blurry, so the verdict is less certain.")
    verdict = Verdict(label="fake", fake_probability=0.91, confidence=0.91, threshold=0.5, uncertain_band=(0.4, 0.6),
                      faces=faces, whole_image=False, model_name="deepfake_detector", model_version=3,
                      timings_ms={"total": 420.0}, warnings=[warning])
    text = verdict_text(verdict)
    assert verdict.summary in text and "uncertain band 0.40–0.60" in text
    assert "1. fake, 91% confidence (fake score 0.910) at x=10, y=20, 100×120 px" in text
    assert "2. real, 88% confidence" in text
    assert warning.message in text and "v3" in text
    whole = Verdict(label="real", fake_probability=0.2, confidence=0.8, threshold=0.5, uncertain_band=(0.5, 0.5),
                    faces=[], whole_image=True, model_name="deepfake_detector", model_version=3)
    assert "No face found" in verdict_text(whole) and "uncertain" not in verdict_text(whole)


def _whole_image_verdict(p: float, label: str) -> Verdict:
    """What the core returns for a picture without a face: the centre square scored, labelled by the rule."""
    face = FaceResult(box=(80, 0, 480, 480), fake_probability=p, label=label,
                      confidence=p if label == "fake" else 1 - p)
    return Verdict(label=label, fake_probability=p, confidence=face.confidence, threshold=0.42,
                   uncertain_band=(0.385, 0.455), faces=[face], whole_image=True, model_name="deepfake_detector",
                   model_version=3)


def test_no_face_reply_gives_no_real_or_fake_verdict():
    """'Likely fake 81%' was the headline of a landscape; now it says no face was found, the score a labelled check."""
    text = verdict_text(_whole_image_verdict(0.81, "fake"))
    first = text.splitlines()[0]
    assert "No face found" in first and "fake" not in first.replace("real/fake", "")
    assert "Likely fake" not in text and "81%" not in text
    assert "Whole-image check, not a verdict" in text and "0.810" in text


def test_uncertain_reply_says_what_its_number_is():
    """No bare 'confidence 58%' beside 'Uncertain': the fake score and the band it falls in, with exact edges."""
    face = FaceResult(box=(1, 2, 30, 40), fake_probability=0.42, label="uncertain", confidence=0.58)
    verdict = Verdict(label="uncertain", fake_probability=0.42, confidence=0.58, threshold=0.42,
                      uncertain_band=(0.385, 0.455), faces=[face], whole_image=False,
                      model_name="deepfake_detector", model_version=3)
    text = verdict_text(verdict)
    assert text.splitlines()[0].endswith(
        "Uncertain: the model's fake score is 0.420, inside the band 0.385–0.455 where it is not reliable")
    assert "58%" not in text and "0.39" not in text and "0.46" not in text
    assert "1. uncertain, no confidence: inside the uncertain band (fake score 0.420)" in text


def test_about_shows_the_model_in_words_not_internal_paths(tmp_path):
    """/about names the model, its version, the exact band and the training data in words: no paths, no config."""
    meta = tmp_path / "3" / "assets.extra" / "metadata.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"training_data": "../shared/data/faces (dfdc, utkface, mobilestylegan); "
                                                  "training/configs/shipped.json", "metrics": {}}))
    info = ModelInfo("deepfake_detector", 3, float(np.float32(0.42)), (float(np.float32(0.385)),
                                                                        float(np.float32(0.455))))
    text = about_text(info, tmp_path)
    assert "deepfake_detector, version 3" in text and "threshold 0.42, uncertain band 0.385–0.455" in text
    assert "UTKFace" in text and "MobileStyleGAN" in text and "Deepfake Detection Challenge" in text
    assert "/" not in text and ".json" not in text and "shared" not in text and "configs" not in text


def test_clip_reply_lists_tracks_in_order_or_says_no_face():
    """A clip's reply: headline, score with the rule and band, one numbered line per face track (Face 1 appears
    first), warnings; a clip without faces says so and gives no score."""
    from clients.bot.handlers import clip_verdict_text
    from tests.clients.test_clip_report import clip_analysis

    clip = clip_analysis(warnings=[QualityWarning("small_face", "The face is small in most frames.")]).verdict
    text = clip_verdict_text(clip)
    lines = text.splitlines()
    assert lines[0] == f"🔴 {clip.headline}"
    assert "threshold 0.42, uncertain band 0.385–0.455" in text and f"Rule: {clip.rule}." in text
    assert "16 frames checked over 0:10.0" in text and "Faces (2):" in text
    first = next(line for line in lines if line.startswith("1. "))
    second = next(line for line in lines if line.startswith("2. "))
    assert first.startswith("1. fake") and "seen in 16 of 16 frames" in first and "most telling at 0:0" in first
    assert second.startswith("2. real") and "seen in 8 of 16 frames" in second
    assert "⚠️ The face is small in most frames." in text and "v5" in text
    empty = clip_analysis(tracks=0).verdict
    words = clip_verdict_text(empty)
    assert words.startswith("⚪ No face found") and "none showed a face" in words and "Fake score" not in words
