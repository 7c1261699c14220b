"""Backbone comparison at one budget on one split: which feature extractor to ship.

Run: python -m training.backbones --config training/configs/backbones.json --out runs/backbones

Every backbone gets the same recipe (the config's: same images, same augmented views, same head,
same epochs) with only `backbone`, `scaling` and `input_size` changed, so the rows differ by the
backbone alone. Each run is calibrated as a release is (training.real_holdout.calibrate_run) and
scored on the group-disjoint validation split through the `from_bytes` decode ops: AUC per fake
source, the false-positive rate on each real source at its threshold, ECE, and the forward time
per image (batch 1 and batch 32, in this process, after a warm-up). Runs are cached in --out.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from training import metrics

WEIGHTS = "../shared/weights"
CANDIDATES: list[tuple[str, dict]] = [
    ("MobileNetV2-0.35 (ImageNet)", {"backbone": "mobilenet_v2", "scaling": "minus1_1"}),
    ("EfficientNet-Lite0 (ImageNet)", {"backbone": f"{WEIGHTS}/efficientnet_lite0_imagenet_notop.keras",
                                       "scaling": "lite"}),
    ("EfficientNet-Lite2 (ImageNet, at 224)", {"backbone": f"{WEIGHTS}/efficientnet_lite2_imagenet_notop.keras",
                                               "scaling": "lite"}),
    ("EfficientNet-Lite2 (ImageNet, at 260)", {"backbone": f"{WEIGHTS}/efficientnet_lite2_imagenet_notop.keras",
                                               "scaling": "lite", "input_size": 260}),
    ("MobileNetV1 (VGGFace2 face identity)", {"backbone": f"{WEIGHTS}/mobilenet_v1_1.0_224_vggface2_faceres_notop.keras",
                                              "scaling": "bgr_imagenet"}),
]


def forward_ms(model, repeats: int = 20) -> dict:
    """Milliseconds per image of the whole detector in this process: one image alone, and in a batch of 32."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = {}
    for batch in (1, 32):
        x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32))
        fn(x)
        fn(x)
        n = repeats if batch == 1 else max(3, repeats // 4)
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x).numpy()
        out[f"batch{batch}_ms_per_image"] = round((time.perf_counter() - t0) * 1000 / (n * batch), 2)
    return out


def score_run(model, cfg) -> dict:
    """Calibrated validation figures of one trained run."""
    from training.calibrate import keras_logits
    from training.real_holdout import calibrate_run, false_alarms
    from training.train import fake_source_aucs, per_source_metrics, prepare_samples

    _, val = prepare_samples(dataclasses.replace(cfg, max_val=None))
    raw = keras_logits(model, [s.path for s in val])
    cal = calibrate_run(val, raw)
    probs = cal.probs(raw)
    labels = np.array([s.label for s in val])
    per = per_source_metrics(val, probs, cal.threshold)
    sources = np.array([s.source for s in val])
    fake_aucs = {k: round(v, 4) for k, v in fake_source_aucs(per).items()}
    reals = {src: false_alarms(probs[(sources == src) & (labels == 0)], cal.threshold, cal.band)["false_positive_rate"]
             for src in sorted(set(sources[labels == 0]))}
    return {"threshold": round(cal.threshold, 4), "auc": round(metrics.roc_auc(labels, probs), 4),
            "auc_per_fake_source": fake_aucs, "fpr_per_real_source": reals,
            "fpr_all_reals": round(float(np.mean(probs[labels == 0] >= cal.threshold)), 4),
            "ece": round(metrics.expected_calibration_error(labels, probs), 4), "n_val": len(val)}


def compare(config_path: str | Path, out: str | Path, names: list[str] | None = None) -> dict:
    """Train (or reuse) one run per candidate and score each; returns the table as a dict."""
    import keras

    from training.ablation import config_key, find_run, load_config
    from training.train import train

    base = load_config(config_path)
    out = Path(out)
    rows = []
    for label, overrides in CANDIDATES:
        if names and not any(n.lower() in label.lower() for n in names):
            continue
        cfg = dataclasses.replace(base, **overrides)
        slug = label.split(" ")[0].lower()
        run_dir = find_run(out, slug, cfg) or out / f"{slug}-{config_key(cfg)}"
        result_path = run_dir / "backbone_result.json"
        if result_path.exists():
            rows.append(json.loads(result_path.read_text()))
            continue
        keras.backend.clear_session()
        t0 = time.time()
        if not (run_dir / "model.keras").exists():
            train(cfg, run_dir, resume=(run_dir / "state.json").exists())
        wall = time.time() - t0
        keras.backend.clear_session()
        model = keras.models.load_model(run_dir / "model.keras", compile=False)
        row = {"name": label, **overrides, "params": int(model.count_params()), "train_wall_s": round(wall),
               **score_run(model, cfg), **forward_ms(model)}
        result_path.write_text(json.dumps(row, indent=2) + "\n")
        rows.append(row)
    return {"config": str(config_path), "rows": rows}


def markdown(table: dict) -> str:
    """The comparison as a Markdown table for the model card."""
    rows = table["rows"]
    fakes = sorted({k for r in rows for k in r["auc_per_fake_source"]})
    reals = sorted({k for r in rows for k in r["fpr_per_real_source"]})
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = ["# Backbone comparison (same recipe, same split, same budget)", "",
             f"Config: `{table['config']}` (frozen backbone, head on cached features). Validation through the "
             "from_bytes decode ops, after Platt calibration on that split; FPR at each run's threshold.", "",
             "| backbone | params | AUC | " + " | ".join(f"AUC {f}" for f in fakes) + " | "
             + " | ".join(f"FPR {r}" for r in reals) + " | ECE | ms/img alone | ms/img in 32 |",
             "|---|---|---|" + "---|" * (len(fakes) + len(reals)) + "---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('name', r['backbone'])} | {r['params'] / 1e6:.2f}M | {r['auc']:.3f} | "
                     + " | ".join(f"{r['auc_per_fake_source'].get(f, float('nan')):.3f}" for f in fakes) + " | "
                     + " | ".join(pct(r["fpr_per_real_source"].get(x)) for x in reals)
                     + f" | {r['ece']:.3f} | {r['batch1_ms_per_image']:.1f} | {r['batch32_ms_per_image']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line: a TrainConfig for the shared recipe, an output folder, optionally some candidates."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--only", help="comma-separated name fragments of the candidates to run")
    args = p.parse_args(argv)
    table = compare(args.config, args.out, [n for n in (args.only or "").split(",") if n] or None)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "backbones.json").write_text(json.dumps(table, indent=2) + "\n")
    md = markdown(table)
    (Path(args.out) / "backbones.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
