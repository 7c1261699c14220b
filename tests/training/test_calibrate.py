"""Temperature scaling, threshold and uncertain band on synthetic logits whose truth we know."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training import calibrate, metrics
from training.export import ExportInfo


def _synthetic(true_temperature: float, n: int = 20000, seed: int = 0):
    """Labels drawn from sigmoid(z), reported as logits z * T: a model overconfident by T."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < metrics.sigmoid(z)).astype(np.int64)
    return z * true_temperature, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    logits, labels = _synthetic(true_t)
    assert calibrate.fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.06)


def test_calibration_brings_ece_under_target_and_lowers_nll():
    logits, labels = _synthetic(3.0, seed=1)
    cal = calibrate.calibrate_logits(logits, labels)
    assert cal.metrics["ece_before"] > 0.05
    assert cal.metrics["ece_after"] <= 0.02
    assert cal.metrics["nll_after"] < cal.metrics["nll_before"]


def test_threshold_stays_half_when_classes_are_symmetric_and_moves_when_not():
    logits, labels = _synthetic(1.0, seed=2)
    t, _ = calibrate.choose_threshold(labels, metrics.sigmoid(logits))
    assert t == 0.5
    # Shift every score up by a lot: 0.5 now calls many reals fake, a higher threshold is clearly better.
    shifted = metrics.sigmoid(logits + 2.0)
    t2, info = calibrate.choose_threshold(labels, shifted)
    assert t2 > 0.6 and info["best_balanced_accuracy"] > info["balanced_accuracy_at_0.5"]


def test_band_surrounds_threshold_and_follows_the_rule():
    logits, labels = _synthetic(1.0, seed=3)
    probs = metrics.sigmoid(logits)
    rule = calibrate.BandRule(target_accuracy=0.8, max_coverage=0.2)
    (low, high), info = calibrate.choose_band(labels, probs, 0.5, rule)
    assert low < 0.5 < high
    assert high - 0.5 == pytest.approx(0.5 - low)
    assert info["coverage"] <= 0.2 + 1e-9
    assert info["accuracy_inside"] < info["accuracy_outside"]
    # A calibrated model is right max(p, 1-p) of the time; the band where it is < 80% right on
    # average is narrower than |p - 0.5| < 0.3, and not empty.
    assert 0.05 <= high - 0.5 < 0.3


def test_band_has_a_floor_for_a_perfect_validation_set():
    labels = np.array([0] * 50 + [1] * 50)
    probs = np.r_[np.full(50, 0.01), np.full(50, 0.99)]
    band, info = calibrate.choose_band(labels, probs, 0.5, calibrate.BandRule(min_half_width=0.05))
    assert band == pytest.approx((0.45, 0.55)) and info["half_width_from_accuracy"] == 0.0


def test_export_info_json_round_trips_into_exportinfo():
    logits, labels = _synthetic(2.0, n=2000, seed=4)
    cal = calibrate.calibrate_logits(logits, labels)
    info = ExportInfo(**json.loads(json.dumps(cal.export_info("synthetic"))))
    assert info.temperature == pytest.approx(cal.temperature, abs=1e-5)
    assert info.uncertain_band[0] < info.threshold < info.uncertain_band[1]
    assert {"ece_before", "ece_after", "validation"} <= set(info.metrics)
