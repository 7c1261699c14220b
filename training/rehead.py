"""Retrain only the head of a shipped version, on its own fine-tuned backbone, with a training.head_levers recipe.

Run:
  python -m training.rehead --version-dir saved_model/deepfake_detector/7 \
      --config saved_model/deepfake_detector/metrics/v7/config.json --variant balanced --out runs/v7_balanced

The version's weights are read back from its SavedModel into the Keras model its config builds (the export tracks
exactly `model.variables`, in order), checked against the served probabilities, and its backbone's pooled
features are cached for the training split (the config's augmented views) and the validation subset. A fresh head
is trained on them with the variant's loss (training.head_levers.train_head, best epoch by the config's selection
metric) and put on the backbone; the result is `<out>/model.keras`, ready for `training.release` and
`training.export` like any run. The backbone is not changed, so the serving cost is the version's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def keras_model_of_version(version_dir: Path, cfg):
    """The Keras detector with a SavedModel version's weights (its head as exported, Platt scaling folded in)."""
    import tensorflow as tf

    from training.model import build_model
    from training.train import model_config

    model = build_model(model_config(cfg))
    loaded = tf.saved_model.load(str(version_dir))
    saved = list(loaded.model_variables)
    if len(saved) != len(model.variables):
        raise ValueError(f"{version_dir} holds {len(saved)} model variables, the config builds {len(model.variables)}")
    for mine, theirs in zip(model.variables, saved):
        if tuple(mine.shape) != tuple(theirs.shape):
            raise ValueError(f"variable {mine.path}: shape {tuple(mine.shape)} in the config's model, "
                             f"{tuple(theirs.shape)} in {version_dir}")
        mine.assign(theirs.numpy())
    return model, loaded


def check_against_served(model, loaded, paths: list[str], temperature: float) -> float:
    """Largest gap between the rebuilt model and the version's own `from_bytes` probability on some files."""
    import tensorflow as tf

    from serving import contract
    from training.calibrate import keras_logits
    from training.metrics import sigmoid

    logits = keras_logits(model, paths)
    blobs = tf.constant([Path(p).read_bytes() for p in paths])
    served = loaded.signatures[contract.SIGNATURE_BYTES](**{contract.SIGNATURE_INPUTS[contract.SIGNATURE_BYTES]: blobs})
    probs = served[contract.OUTPUT_PROBABILITY].numpy().reshape(-1)
    return float(np.max(np.abs(probs - sigmoid(logits / temperature))))


def main(argv: list[str] | None = None) -> None:
    """Rebuild the version, cache its features, train the variant's head, save model.keras and rehead.json."""
    import dataclasses

    from training.head_levers import Features, Variant, cache_sources, selection, train_head, validation_report
    from training.model import head_of
    from training.train import TrainConfig, build_cache, log, model_config, prepare_samples

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version-dir", required=True, help="an exported version, e.g. saved_model/deepfake_detector/7")
    p.add_argument("--config", required=True, help="the TrainConfig JSON the version was trained with")
    p.add_argument("--variant", default="balanced", help="a training.head_levers variant (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig.from_json(args.config)
    variant = Variant.parse(args.variant)
    if variant.nullspace_iterations:
        raise SystemExit("rehead does not fold a nullspace projection into the head; choose a variant without it")
    version = Path(args.version_dir)
    meta = json.loads((version / "assets.extra" / "metadata.json").read_text())
    model, loaded = keras_model_of_version(version, cfg)
    train, val = prepare_samples(cfg)
    gap = check_against_served(model, loaded, [s.path for s in val[:64]], float(meta.get("temperature", 1.0)))
    log(f"rebuilt {version}: largest gap to its served probability {gap:.2e}")
    if gap > 1e-3:
        raise SystemExit(f"the rebuilt model differs from {version} by {gap:.3g}: wrong config?")
    _, sources = cache_sources(train, cfg)
    arrays = build_cache(model, train, val, cfg, out, resume=True)
    feats, labels, _ = arrays["train"]
    none = np.zeros((0, *feats.shape[1:]), np.float32)
    f = Features(np.asarray(feats, np.float32), np.asarray(labels, np.float32), sources,
                 np.asarray(arrays["val"][0], np.float32), val, none, none, None)
    head, history = train_head(model_config(cfg), f.train, f.train_labels, f.train_sources, variant,
                               lambda h: selection(h, f, cfg.select_metric), args.epochs, cfg.frozen_batch, cfg.frozen_lr, cfg.seed)
    head_of(model).set_weights(head.get_weights())
    model.save(out / "model.keras")
    (out / "config.json").write_text(cfg.to_json())
    report = {"version_dir": str(version), "variant": dataclasses.asdict(variant), "served_gap": gap,
              "validation": validation_report(head, f), "history": history}
    (out / "rehead.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done: {out / 'model.keras'} validation {report['validation']}")


if __name__ == "__main__":
    main()
