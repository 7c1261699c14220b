"""Would an "unfamiliar photo" flag catch the real sources a model never saw? (a lever of issue 18, measured)

Run on a finished leave-one-real-source-out run (its feature cache, split and model):
  python -m training.familiarity --run runs/lever/loo5_frozen/without-real-aaf-<hash> --source aaf \
      --json saved_model/deepfake_detector/metrics/v5/loo_real/familiarity_aaf.json

The idea: a photo unlike every training image could be answered "uncertain: unfamiliar" instead of "fake". The
familiarity score is the Mahalanobis distance in the backbone's pooled features (the head's input), on the top
principal components of the run's cached training views. The report says how well that distance tells the held-out
source's images (never seen) from the run's validation images (seen sources), and what share of the held-out images
a flag set at the validation 95th percentile would catch.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import metrics
from training.real_holdout import HOLDOUT_MAX, holdout_images

COMPONENTS = (16, 32, 64, 128)
"""Principal components tried: few keep the broad directions, more keep finer ones."""


@dataclass(frozen=True)
class Gaussian:
    """Mean and the top principal directions (with their variances) of training features."""

    mean: np.ndarray
    directions: np.ndarray
    variances: np.ndarray

    def distance(self, feats: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row within the kept components."""
        z = (np.asarray(feats, np.float64) - self.mean) @ self.directions.T
        return np.sqrt((z * z / self.variances).sum(axis=1))


def fit(train: np.ndarray, components: int) -> Gaussian:
    """Fit the mean and the top principal components of the training features."""
    x = np.asarray(train, np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(components, len(s))
    return Gaussian(mean, vt[:k], np.maximum(s[:k] ** 2 / max(1, len(x) - 1), 1e-12))


def flag_report(gauss: Gaussian, seen: np.ndarray, unseen: np.ndarray, quantile: float = 95.0) -> dict:
    """How the distance separates unseen-source images from seen ones, and what a flag at a seen quantile catches."""
    d_seen, d_unseen = gauss.distance(seen), gauss.distance(unseen)
    cut = float(np.percentile(d_seen, quantile))
    labels = np.r_[np.zeros(len(d_seen)), np.ones(len(d_unseen))]
    return {"auroc_unseen_vs_seen": round(float(metrics.roc_auc(labels, np.r_[d_seen, d_unseen])), 4),
            "flag_cut": round(cut, 3), "seen_flagged": round(float(np.mean(d_seen > cut)), 4),
            "unseen_flagged": round(float(np.mean(d_unseen > cut)), 4),
            "median_seen": round(float(np.median(d_seen)), 3), "median_unseen": round(float(np.median(d_unseen)), 3)}


def holdout_features(run: Path, manifest: Path, source: str, seed: int) -> np.ndarray:
    """Pooled backbone features of the held-out source's real images, through the served decode-and-resize ops."""
    import keras
    import tensorflow as tf

    from training.preprocess import decode_and_resize

    from training.data import load_samples

    rows = holdout_images(load_samples(manifest), source, HOLDOUT_MAX, seed)  # the images the FPR report scored
    backbone = keras.models.load_model(run / "model.keras", compile=False).get_layer("backbone")
    out = []
    for i in range(0, len(rows), 32):
        batch = tf.stack([decode_and_resize(tf.io.read_file(r.path)) for r in rows[i:i + 32]])
        out.append(np.asarray(backbone(batch, training=False)).max(axis=(1, 2)))
    return np.concatenate(out)


def cached(run: Path, name: str) -> np.ndarray:
    """A run's cached pooled features (one row per view)."""
    feats = np.load(run / "cache" / f"{name}_features.npy", mmap_mode="r")
    return np.asarray(feats, np.float32).reshape(len(feats), -1)


def report(run: Path, manifest: Path, source: str, seed: int = 1234) -> dict:
    """The familiarity report of one leave-one-real-source-out run, for every number of components."""
    train, val = cached(run, "train"), cached(run, "val")
    unseen = holdout_features(run, manifest, source, seed)
    return {"run": str(run), "source": source, "n_train_views": len(train), "n_seen": len(val), "n_unseen": len(unseen),
            "by_components": {str(k): flag_report(fit(train, k), val, unseen) for k in COMPONENTS}}


def main() -> None:
    """Command line: one run, one held-out source, the JSON report."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished leave-one-real-out run folder (cache, model.keras)")
    p.add_argument("--source", required=True, help="the real source that run left out")
    p.add_argument("--manifest", default="../shared/data/faces/manifest.csv")
    p.add_argument("--json", dest="json_out", help="write the report here")
    args = p.parse_args()
    out = report(Path(args.run), Path(args.manifest), args.source)
    text = json.dumps(out, indent=2)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
