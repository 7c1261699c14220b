"""Evaluation figures in plain numpy: AUC, ROC, accuracy, balanced accuracy, ECE, reliability bins.

Everything takes `labels` (1 = fake, 0 = real) and `scores` (the fake probability), so the same
functions serve the evaluation of an exported model, calibration and the ablation runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_BINS = 15
"""Equal-width bins for ECE and the reliability diagram (Guo et al., 2017 use 15)."""


def _arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int 0/1 and scores as float64, same length, checked."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return y, s


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (what the Mann-Whitney U needs)."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(values.size, dtype=np.float64)
    # Boundaries of runs of equal values.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    ends = np.r_[starts[1:], values.size]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    return ranks


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the chance a random fake scores above a random real (ties count half).

    NaN when only one class is present, because the figure is then undefined.
    """
    y, s = _arrays(labels, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and the thresholds (score >= t is 'fake'), from (0,0) to (1,1)."""
    y, s = _arrays(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[distinct]
    fps = (distinct + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int(y.size - y.sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[distinct]]
    return fpr, tpr, thresholds


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Share of images whose verdict (score >= threshold is 'fake') matches the label."""
    y, s = _arrays(labels, scores)
    if y.size == 0:
        return float("nan")
    return float(np.mean((s >= threshold).astype(np.int64) == y))


def balanced_accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Mean of the true-positive and true-negative rates (plain accuracy when one class is absent)."""
    y, s = _arrays(labels, scores)
    pred = (s >= threshold).astype(np.int64)
    rates = [float(np.mean(pred[y == c] == c)) for c in (0, 1) if np.any(y == c)]
    return float(np.mean(rates)) if rates else float("nan")


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of the reliability diagram: its range, how many images, mean score, share of fakes."""

    low: float
    high: float
    count: int
    mean_score: float
    fake_rate: float


def reliability_bins(labels, scores, n_bins: int = DEFAULT_BINS) -> list[ReliabilityBin]:
    """Equal-width bins over the fake probability; empty bins are kept (count 0, NaN means)."""
    y, s = _arrays(labels, scores)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds low <= s < high; the last bin also holds s == 1.
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, n_bins - 1)
    out = []
    for i in range(n_bins):
        mask = idx == i
        n = int(mask.sum())
        out.append(ReliabilityBin(
            float(edges[i]), float(edges[i + 1]), n,
            float(s[mask].mean()) if n else float("nan"),
            float(y[mask].mean()) if n else float("nan"),
        ))
    return out


def expected_calibration_error(labels, scores, n_bins: int = DEFAULT_BINS) -> float:
    """ECE of the fake probability: the count-weighted mean gap |share of fakes - mean score| over bins.

    This is the binary ("does 0.7 mean 70% are fake?") form, which is what `fake_probability` promises.
    """
    y, _ = _arrays(labels, scores)
    if y.size == 0:
        return float("nan")
    total = 0.0
    for b in reliability_bins(labels, scores, n_bins):
        if b.count:
            total += b.count * abs(b.fake_rate - b.mean_score)
    return float(total / y.size)


def log_loss(labels, scores, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (clipped away from 0 and 1)."""
    y, s = _arrays(labels, scores)
    s = np.clip(s, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(s) + (1 - y) * np.log(1.0 - s)))


def _nan_to_none(value: float) -> float | None:
    """JSON has no NaN: undefined figures become null."""
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


def summary(labels, scores, threshold: float = 0.5, n_bins: int = DEFAULT_BINS) -> dict:
    """The standard figures for one set of images, JSON-ready (undefined figures are null)."""
    y, s = _arrays(labels, scores)
    return {
        "n": int(y.size),
        "n_fake": int(y.sum()),
        "n_real": int(y.size - y.sum()),
        "auc": _nan_to_none(roc_auc(y, s)),
        "accuracy": _nan_to_none(accuracy(y, s, threshold)),
        "balanced_accuracy": _nan_to_none(balanced_accuracy(y, s, threshold)),
        "ece": _nan_to_none(expected_calibration_error(y, s, n_bins)),
        "mean_score": _nan_to_none(float(s.mean()) if s.size else float("nan")),
    }


def bins_as_dicts(bins: list[ReliabilityBin]) -> list[dict]:
    """Reliability bins as JSON-ready dicts (NaN means become null)."""
    return [{k: (_nan_to_none(v) if isinstance(v, float) else v) for k, v in asdict(b).items()} for b in bins]


def sigmoid(x) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))
