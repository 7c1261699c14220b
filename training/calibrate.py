"""Temperature scaling, the decision threshold and the 'uncertain' band, fitted on the validation split.

Run: python -m training.calibrate --checkpoint runs/X/model.keras --manifest ../shared/data/faces/manifest.csv \
         --out runs/X/calibration.json --plot runs/X/reliability.png

The output JSON loads as `training.export.ExportInfo(**json)`: the exported module then serves
sigmoid(logit / temperature), so `fake_probability` means what it says.

Rules (all on the group-disjoint validation split that training.data.split_by_group makes with the
training seed, so no image the model trained on is used):
- temperature: the T that minimises the binary cross-entropy of sigmoid(logit / T) (a 1-D convex
  problem in 1/T, solved by golden-section search over log T in [0.05, 20]);
- threshold: 0.5 unless another threshold raises balanced accuracy by more than `threshold_tolerance`
  (0.005); with a calibrated probability 0.5 is the honest default and does not overfit our split;
- uncertain band: symmetric around the threshold, half-width h = the widest band whose validation
  images are classified correctly less than `target_accuracy` (80%) of the time ("the model is
  unsure there"), at least `min_half_width` (0.05), but never covering more than `max_coverage` (20%)
  of the validation images: when both cannot hold, the coverage cap wins (a band that swallowed most
  verdicts would make the detector useless), and the metadata records `capped_by_coverage`.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training import metrics

T_MIN, T_MAX = 0.05, 20.0


@dataclass(frozen=True)
class BandRule:
    """How the 'uncertain' band is chosen from validation figures (see the module docstring)."""

    target_accuracy: float = 0.80
    min_half_width: float = 0.05
    max_coverage: float = 0.20
    min_count: int = 10
    step: float = 0.005


@dataclass
class Calibration:
    """Everything calibration decides and measures; `export_info()` is the JSON for training.export."""

    temperature: float
    threshold: float
    uncertain_band: tuple[float, float]
    metrics: dict = field(default_factory=dict)
    rule: dict = field(default_factory=dict)

    def export_info(self, training_data: str = "") -> dict:
        """A dict that `ExportInfo(**d)` accepts."""
        return {
            "threshold": round(self.threshold, 6),
            "uncertain_band": [round(self.uncertain_band[0], 6), round(self.uncertain_band[1], 6)],
            "temperature": round(self.temperature, 6),
            "training_data": training_data,
            "metrics": self.metrics,
            "extra": {"calibration_rule": self.rule},
        }


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean binary cross-entropy of sigmoid(logit / T), computed stably from logits."""
    z = np.asarray(logits, np.float64) / temperature
    y = np.asarray(labels, np.float64)
    # softplus(z) - y*z == -[y log s(z) + (1-y) log(1 - s(z))]
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits, labels, t_min: float = T_MIN, t_max: float = T_MAX, iters: int = 80) -> float:
    """The temperature minimising validation NLL (golden-section search over log T)."""
    logits = np.asarray(logits, np.float64).ravel()
    labels = np.asarray(labels, np.float64).ravel()
    if logits.size == 0 or labels.min() == labels.max():
        return 1.0  # nothing to fit on: one class only
    lo, hi = math.log(t_min), math.log(t_max)
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return float(math.exp((lo + hi) / 2.0))


def choose_threshold(labels, probs, tolerance: float = 0.005) -> tuple[float, dict]:
    """0.5, unless a threshold in 0.02..0.98 beats its balanced accuracy by more than `tolerance`."""
    grid = np.round(np.arange(0.02, 0.981, 0.005), 3)
    bas = np.array([metrics.balanced_accuracy(labels, probs, t) for t in grid])
    best = int(np.nanargmax(bas))
    at_half = metrics.balanced_accuracy(labels, probs, 0.5)
    chosen = 0.5 if at_half >= bas[best] - tolerance else float(grid[best])
    return chosen, {"best_threshold": float(grid[best]), "best_balanced_accuracy": float(bas[best]),
                    "balanced_accuracy_at_0.5": float(at_half), "tolerance": tolerance}


def choose_band(labels, probs, threshold: float, rule: BandRule = BandRule()) -> tuple[tuple[float, float], dict]:
    """The symmetric 'uncertain' band around the threshold, by `rule` (see the module docstring)."""
    y = np.asarray(labels, np.int64).ravel()
    p = np.asarray(probs, np.float64).ravel()
    correct = (p >= threshold).astype(np.int64) == y
    dist = np.abs(p - threshold)
    half_widths = np.round(np.arange(rule.step, 0.5 + 1e-9, rule.step), 6)
    unsure = 0.0
    for h in half_widths:
        inside = dist <= h
        n = int(inside.sum())
        if n >= rule.min_count and correct[inside].mean() < rule.target_accuracy:
            unsure = float(h)
    h = max(unsure, rule.min_half_width)
    capped = False
    while h > rule.step and np.mean(dist <= h) > rule.max_coverage:
        h = round(h - rule.step, 6)
        capped = True
    low, high = max(0.0, threshold - h), min(1.0, threshold + h)
    inside = (p >= low) & (p <= high)
    info = {
        "half_width": h,
        "half_width_from_accuracy": unsure,
        "capped_by_coverage": capped,
        "coverage": float(inside.mean()) if p.size else None,
        "accuracy_inside": float(correct[inside].mean()) if inside.any() else None,
        "accuracy_outside": float(correct[~inside].mean()) if (~inside).any() else None,
    }
    return (float(low), float(high)), info


def calibrate_logits(logits, labels, band_rule: BandRule = BandRule(), n_bins: int = metrics.DEFAULT_BINS) -> Calibration:
    """Fit T, pick the threshold and band, and measure before/after on the same validation logits."""
    logits = np.asarray(logits, np.float64).ravel()
    labels = np.asarray(labels, np.int64).ravel()
    before = metrics.sigmoid(logits)
    temperature = fit_temperature(logits, labels)
    after = metrics.sigmoid(logits / temperature)
    threshold, t_info = choose_threshold(labels, after)
    band, b_info = choose_band(labels, after, threshold, band_rule)
    figures = {
        "validation": metrics.summary(labels, after, threshold, n_bins),
        "ece_before": round(metrics.expected_calibration_error(labels, before, n_bins), 6),
        "ece_after": round(metrics.expected_calibration_error(labels, after, n_bins), 6),
        "nll_before": round(nll(logits, labels, 1.0), 6),
        "nll_after": round(nll(logits, labels, temperature), 6),
        "reliability_after": metrics.bins_as_dicts(metrics.reliability_bins(labels, after, n_bins)),
    }
    rule = {"threshold": t_info, "band": {**asdict(band_rule), **b_info}, "ece_bins": n_bins,
            "temperature_bounds": [T_MIN, T_MAX]}
    return Calibration(temperature, threshold, band, figures, rule)


# ---- Keras checkpoint -> validation logits -------------------------------------------------------

def decoded_batches(items: list, from_bytes: bool = False, batch_size: int = 64):
    """tf.data batches of files (paths) or encoded images (bytes), decoded and resized as `from_bytes` does."""
    import tensorflow as tf

    from training.preprocess import decode_and_resize

    read = decode_and_resize if from_bytes else (lambda p: decode_and_resize(tf.io.read_file(p)))
    return tf.data.Dataset.from_tensor_slices(tf.constant(list(items), dtype=tf.string)).map(
        read, num_parallel_calls=2).batch(batch_size).prefetch(1)


def keras_logits(model, paths: list[str], batch_size: int = 64) -> np.ndarray:
    """Logits (before the sigmoid) of a build_model Keras model, on files decoded like `from_bytes` does."""
    from training.model import backbone_of, head_of

    return _run_logits(backbone_of(model), head_of(model), decoded_batches(paths, batch_size=batch_size))


def keras_logits_bytes(model, blobs: list[bytes], batch_size: int = 64) -> np.ndarray:
    """Logits of a build_model Keras model on encoded images in memory (a client's crops), decoded like `from_bytes`."""
    from training.model import backbone_of, head_of

    return _run_logits(backbone_of(model), head_of(model), decoded_batches(blobs, True, batch_size))


def _run_logits(backbone, head, ds) -> np.ndarray:
    """The head's logit over a dataset of image batches, in order."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def logit_fn(images):
        return head(backbone(images, training=False), training=False)[:, 0]

    out = [logit_fn(batch).numpy() for batch in ds]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def validation_samples(manifest: str, val_fraction: float = 0.15, seed: int = 1234, max_per_source: int | None = None):
    """The group-disjoint validation split that training uses (same function, same seed)."""
    from training.data import limit_per_source, load_samples, split_by_group

    samples = load_samples(manifest)
    _, val = split_by_group(samples, val_fraction=val_fraction, seed=seed)
    return limit_per_source(val, max_per_source, seed=seed) if max_per_source else val


def calibrate_checkpoint(checkpoint: str, manifest: str, val_fraction: float = 0.15, seed: int = 1234,
                         max_per_source: int | None = None, band_rule: BandRule = BandRule(),
                         plot: str | None = None) -> Calibration:
    """Load a model.keras, score the validation split and calibrate it; optionally draw the diagram."""
    import keras

    model = keras.models.load_model(checkpoint, compile=False)
    val = validation_samples(manifest, val_fraction, seed, max_per_source)
    labels = np.array([s.label for s in val])
    logits = keras_logits(model, [s.path for s in val])
    cal = calibrate_logits(logits, labels, band_rule)
    cal.metrics["per_source"] = _per_source(val, metrics.sigmoid(logits / cal.temperature), cal.threshold)
    cal.metrics["split"] = {"val_fraction": val_fraction, "seed": seed, "n": len(val),
                            "max_per_source": max_per_source}
    if plot:
        from training.plots import reliability_plot

        reliability_plot(plot, labels, {"before (T=1)": metrics.sigmoid(logits),
                                        f"after (T={cal.temperature:.2f})": metrics.sigmoid(logits / cal.temperature)},
                         title="Reliability on the validation split")
    return cal


def _per_source(samples, probs: np.ndarray, threshold: float) -> dict:
    """Summary figures per source of a scored list."""
    out = {}
    for source in sorted({s.source for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.source == source]
        out[source] = metrics.summary([samples[i].label for i in idx], probs[idx], threshold)
    return out


def main(argv: list[str] | None = None) -> None:
    """Calibrate a checkpoint on the validation split and write the ExportInfo JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="model.keras written by training.train")
    parser.add_argument("--manifest", required=True, help="the training data (any layout training.data reads)")
    parser.add_argument("--out", required=True, help="ExportInfo-compatible JSON to write")
    parser.add_argument("--plot", help="reliability diagram PNG to write")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=1234, help="the training seed, so the split is the same")
    parser.add_argument("--max-per-source", type=int, help="score at most this many validation images per source/label")
    parser.add_argument("--target-accuracy", type=float, default=BandRule.target_accuracy)
    parser.add_argument("--max-coverage", type=float, default=BandRule.max_coverage)
    parser.add_argument("--min-half-width", type=float, default=BandRule.min_half_width)
    parser.add_argument("--training-data", default="", help="text for the metadata's training_data field")
    args = parser.parse_args(argv)
    rule = BandRule(target_accuracy=args.target_accuracy, max_coverage=args.max_coverage,
                    min_half_width=args.min_half_width)
    cal = calibrate_checkpoint(args.checkpoint, args.manifest, args.val_fraction, args.seed,
                               args.max_per_source, rule, args.plot)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cal.export_info(args.training_data), indent=2, sort_keys=True) + "\n")
    m = cal.metrics
    print(f"temperature {cal.temperature:.4f}  threshold {cal.threshold:.3f}  band {cal.uncertain_band[0]:.3f}..{cal.uncertain_band[1]:.3f}")
    print(f"ECE before {m['ece_before']:.4f}  after {m['ece_after']:.4f}  validation {m['validation']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
