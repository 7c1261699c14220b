"""The paired comparison that decides whether a new version is better than the shipped one or only different."""
from __future__ import annotations

import numpy as np
import pytest

from training import metrics
from training.compare import compare_scores, false_alarm_rate, markdown, paired_bootstrap
from training.data import Sample

AUC = metrics.roc_auc


def _labels(n_fake: int, n_real: int) -> np.ndarray:
    return np.r_[np.ones(n_fake, np.int64), np.zeros(n_real, np.int64)]


def test_the_same_scores_differ_by_nothing_and_are_called_noise():
    labels = _labels(40, 60)
    scores = np.random.default_rng(0).uniform(size=100)
    out = paired_bootstrap(labels, scores, scores.copy(), AUC, n_boot=200)
    assert out["difference"] == 0 and out["ci95"] == [0, 0]
    assert out["verdict"] == "within noise" and out["share_candidate_better"] == 0


def test_a_clearly_better_candidate_is_called_better_and_the_swap_worse():
    rng = np.random.default_rng(1)
    labels = _labels(150, 150)
    weak = labels * 0.2 + rng.normal(0, 0.5, 300)
    strong = labels * 1.5 + rng.normal(0, 0.5, 300)
    better = paired_bootstrap(labels, weak, strong, AUC, n_boot=300)
    assert better["verdict"] == "better" and better["ci95"][0] > 0 and better["share_candidate_better"] == 1
    assert better["difference"] == pytest.approx(AUC(labels, strong) - AUC(labels, weak), abs=1e-4)
    assert paired_bootstrap(labels, strong, weak, AUC, n_boot=300)["verdict"] == "worse"


def test_a_small_difference_on_few_images_is_noise_not_a_win():
    rng = np.random.default_rng(2)
    labels = _labels(30, 30)
    base = labels * 1.0 + rng.normal(0, 1, 60)
    candidate = base + rng.normal(0, 0.3, 60)  # a retrained twin: a little different, not better
    out = paired_bootstrap(labels, base, candidate, AUC, n_boot=500)
    assert out["ci95"][0] < 0 < out["ci95"][1] and out["verdict"] == "within noise"


def test_every_resample_keeps_both_classes_even_with_two_fakes():
    labels = _labels(2, 80)
    scores = np.random.default_rng(3).uniform(size=82)
    out = paired_bootstrap(labels, scores, scores[::-1].copy(), AUC, n_boot=300)
    assert all(np.isfinite(v) for v in (out["difference"], *out["ci95"]))


def test_false_alarms_are_counted_at_each_versions_own_threshold():
    labels = _labels(0, 50)
    scores = np.full(50, 0.4)
    out = paired_bootstrap(labels, scores, scores, false_alarm_rate(0.5), false_alarm_rate(0.3), n_boot=50,
                           higher_is_better=False)
    assert (out["base"], out["candidate"], out["difference"]) == (0.0, 1.0, 1.0)
    assert out["ci95"] == [1.0, 1.0]
    assert out["verdict"] == "worse" and out["share_candidate_better"] == 0  # more false alarms is worse


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap(_labels(2, 2), np.zeros(4), np.zeros(3), AUC)
    with pytest.raises(ValueError):
        paired_bootstrap(np.zeros(0), np.zeros(0), np.zeros(0), AUC)


def test_the_report_covers_the_overall_auc_each_pairing_and_each_real_source():
    plan = [("swap", 1, 10), ("swap", 0, 10), ("gan", 1, 6), ("photos", 0, 8)]
    samples = [Sample(f"/x/{s}{y}{i}.jpg", y, s, f"{s}{y}{i}") for s, y, n in plan for i in range(n)]
    labels = np.array([s.label for s in samples])
    rng = np.random.default_rng(4)
    base = labels * 0.5 + rng.uniform(size=labels.size)
    candidate = labels * 1.0 + rng.uniform(size=labels.size)
    figures = compare_scores(samples, labels, base, candidate, (0.5, 0.6), n_boot=100)
    assert set(figures) == {"overall_auc", "swap_fake_vs_swap_real_auc", "gan_vs_real_photos_auc",
                            "swap_false_alarms", "photos_false_alarms"}
    assert figures["gan_vs_real_photos_auc"]["n"] == 6 + 18
    assert figures["photos_false_alarms"]["base"] == pytest.approx(np.mean(base[-8:] >= 0.5), abs=1e-4)
    assert figures["photos_false_alarms"]["higher_is_better"] is False
    table = markdown({"base": "a/5", "candidate": "b/6", "thresholds": [0.5, 0.6], "data": {"n": len(samples)},
                      "n_boot": 100, "figures": figures})
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    assert [r.split(" | ")[0][2:] for r in rows] == list(figures)
