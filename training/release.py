"""Prepare a trained model for export: Platt scaling folded into the head, then the evaluator's threshold/band rules.

Run: python -m training.release --checkpoint runs/shipped/model.keras --manifest ../shared/data/faces/manifest.csv \
         --out-model runs/shipped/model_calibrated.keras --out-info runs/shipped/calibration.json --max-per-source 300

Temperature scaling alone cannot move scores that are offset (a bias, not over-confidence). Platt scaling
p = sigmoid(a * logit + b), fitted on the group-disjoint validation split, can; folding it into the head's
last Dense layer (kernel * a, bias * a + b) is exact and needs no change to the export or the contract. The
folded model is then passed through `training.calibrate.calibrate_logits` (temperature ~1, threshold, band).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def fit_platt(logits: np.ndarray, labels: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Logistic regression of the labels on the logit (Newton's method, tiny ridge for stability)."""
    x = np.stack([np.asarray(logits, np.float64), np.ones(len(logits))], axis=1)
    y = np.asarray(labels, np.float64)
    w = np.array([1.0, 0.0])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - y) + 1e-6 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def fold_platt(model, a: float, b: float) -> None:
    """Make the head's logit a * logit + b, in place."""
    from training.model import head_of

    layer = head_of(model).get_layer("logit")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel * a, bias * a + b])


def main(argv: list[str] | None = None) -> None:
    """Fit Platt scaling on validation logits, fold it, calibrate, write the model and the ExportInfo JSON."""
    import keras

    from training import calibrate, metrics

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out-model", required=True)
    parser.add_argument("--out-info", required=True)
    parser.add_argument("--plot")
    parser.add_argument("--max-per-source", type=int)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--training-data", default="")
    args = parser.parse_args(argv)

    model = keras.models.load_model(args.checkpoint, compile=False)
    val = calibrate.validation_samples(args.manifest, args.val_fraction, args.seed, args.max_per_source)
    labels = np.array([s.label for s in val])
    raw = calibrate.keras_logits(model, [s.path for s in val])
    a, b = fit_platt(raw, labels)
    if a <= 0:
        raise SystemExit(f"Platt slope {a:.3f} <= 0: the model ranks fakes below reals; refusing to fold")
    fold_platt(model, a, b)
    folded = a * raw + b
    cal = calibrate.calibrate_logits(folded, labels)
    probs = metrics.sigmoid(folded / cal.temperature)
    cal.metrics["per_source"] = calibrate._per_source(val, probs, cal.threshold)
    cal.metrics["split"] = {"val_fraction": args.val_fraction, "seed": args.seed, "n": len(val),
                            "max_per_source": args.max_per_source}
    cal.metrics["ece_raw_model"] = round(metrics.expected_calibration_error(labels, metrics.sigmoid(raw)), 6)
    info = cal.export_info(args.training_data)
    info["extra"]["platt"] = {"a": a, "b": b, "note": "folded into the head's logit layer before export"}
    model.save(args.out_model)
    Path(args.out_info).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    if args.plot:
        from training.plots import reliability_plot

        reliability_plot(args.plot, labels, {"raw model": metrics.sigmoid(raw), "Platt + temperature": probs},
                         title="Reliability on the validation split")
    print(f"platt a={a:.4f} b={b:.4f}  temperature {cal.temperature:.4f}  threshold {cal.threshold:.3f}  "
          f"band {cal.uncertain_band[0]:.3f}..{cal.uncertain_band[1]:.3f}")
    print(f"ECE raw {cal.metrics['ece_raw_model']:.4f} -> {cal.metrics['ece_after']:.4f}; validation {cal.metrics['validation']}")


if __name__ == "__main__":
    main()
