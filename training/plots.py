"""PNG figures for the model card: ROC curves and reliability diagrams (matplotlib, no display)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training import metrics


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported late: no work at import time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def roc_plot(path: str | Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC") -> Path:
    """One ROC curve per named (labels, scores) pair, with its AUC in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=110)
    for name, (labels, scores) in curves.items():
        if len(set(np.asarray(labels).tolist())) < 2:
            continue
        fpr, tpr, _ = metrics.roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.roc_auc(labels, scores):.3f}, n={len(labels)})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false-positive rate (reals called fake)", ylabel="true-positive rate (fakes caught)",
           title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def reliability_plot(path: str | Path, labels, series: dict[str, np.ndarray], n_bins: int = metrics.DEFAULT_BINS,
                     title: str = "Reliability") -> Path:
    """Share of fakes against mean fake probability per bin, for each named score series, with ECE."""
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), dpi=110, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect calibration")
    for name, scores in series.items():
        bins = [b for b in metrics.reliability_bins(labels, scores, n_bins) if b.count]
        ece = metrics.expected_calibration_error(labels, scores, n_bins)
        ax.plot([b.mean_score for b in bins], [b.fake_rate for b in bins], marker="o", ms=4,
                label=f"{name} (ECE {ece:.3f})")
        hist.hist(np.asarray(scores), bins=n_bins, range=(0, 1), histtype="step", label=name)
    ax.set(ylabel="share that is fake", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=7)
    hist.set(xlabel="predicted fake probability", ylabel="images")
    hist.set_yscale("log")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
