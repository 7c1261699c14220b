"""What /about and the verdict reply say, from metadata and a Verdict (no servers)."""
from __future__ import annotations

from clients.bot import DEFAULT_MODEL_DIR
from clients.bot_handlers import measured_accuracy, newest_version, read_metadata, verdict_text
from clients.verdict import FaceResult, QualityWarning, Verdict


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
    assert verdict.summary in text and "between 0.40 and 0.60" in text
    assert "1. fake, 91% confidence (fake probability 0.91) at x=10, y=20, 100×120 px" in text
    assert "2. real, 88% confidence" in text
    assert warning.message in text and "v3" in text
    whole = Verdict(label="real", fake_probability=0.2, confidence=0.8, threshold=0.5, uncertain_band=(0.5, 0.5),
                    faces=[], whole_image=True, model_name="deepfake_detector", model_version=3)
    assert "No face found" in verdict_text(whole) and "uncertain" not in verdict_text(whole)
