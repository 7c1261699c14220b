"""The evaluation figures on cases small enough to check by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from training import metrics


def test_auc_hand_checkable_case():
    # Fakes score 0.9, 0.4, 0.6; reals 0.1, 0.5. Of the 6 fake/real pairs, the fake wins 5
    # (0.4 loses to 0.5), so AUC = 5/6.
    labels = [1, 1, 1, 0, 0]
    scores = [0.9, 0.4, 0.6, 0.1, 0.5]
    assert metrics.roc_auc(labels, scores) == pytest.approx(5 / 6)


def test_auc_counts_ties_as_half():
    # One fake and one real with the same score: a coin flip, AUC 0.5.
    assert metrics.roc_auc([1, 0], [0.3, 0.3]) == pytest.approx(0.5)
    # Fakes {0.8, 0.5}, reals {0.5, 0.2}: pairs won 1+1+1, tied 1 -> 3.5/4.
    assert metrics.roc_auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.2]) == pytest.approx(3.5 / 4)


def test_auc_perfect_inverted_and_undefined():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.9]))


def test_auc_equals_area_under_roc_curve():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 2)  # rounding makes ties
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(labels, scores), abs=1e-12)


def test_ece_on_a_known_toy_case():
    # 10 bins. Bin [0.1,0.2): four images scored 0.15, one of them fake -> gap |0.25-0.15| = 0.10.
    # Bin [0.8,0.9): six images scored 0.85, three fake -> gap |0.5-0.85| = 0.35.
    # ECE = (4*0.10 + 6*0.35) / 10 = 0.25.
    labels = [1, 0, 0, 0, 1, 1, 1, 0, 0, 0]
    scores = [0.15] * 4 + [0.85] * 6
    assert metrics.expected_calibration_error(labels, scores, n_bins=10) == pytest.approx(0.25)


def test_ece_zero_when_scores_match_the_fake_rate():
    labels = [1, 0, 0, 0, 1, 1, 1, 0]  # 1/4 fake at 0.25, 3/4 fake at 0.75
    scores = [0.25] * 4 + [0.75] * 4
    assert metrics.expected_calibration_error(labels, scores, n_bins=10) == pytest.approx(0.0)


def test_reliability_bins_put_edges_and_one_in_the_right_bin():
    bins = metrics.reliability_bins([0, 1, 1], [0.0, 0.5, 1.0], n_bins=2)
    assert [b.count for b in bins] == [1, 2]  # 0.5 opens the upper bin; 1.0 stays in the last
    assert bins[1].fake_rate == 1.0 and bins[1].mean_score == pytest.approx(0.75)


def test_accuracy_and_balanced_accuracy():
    labels = [1, 0, 0, 0]
    scores = [0.9, 0.6, 0.1, 0.2]  # at 0.5: fake right, one real wrong
    assert metrics.accuracy(labels, scores, 0.5) == pytest.approx(0.75)
    assert metrics.balanced_accuracy(labels, scores, 0.5) == pytest.approx((1.0 + 2 / 3) / 2)
    assert metrics.accuracy(labels, scores, 0.7) == 1.0


def test_summary_is_json_ready_for_one_class_sets():
    s = metrics.summary([1, 1, 1], [0.9, 0.8, 0.2])
    assert s["auc"] is None and s["n_fake"] == 3 and s["accuracy"] == pytest.approx(2 / 3, abs=1e-6)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        metrics.roc_auc([0, 1], [0.5])
