"""Self-blended fakes on/off x leave-DFDC-fakes-out, on a finished run's feature cache (stage-1 heads, minutes on a CPU).

Run: python -m training.cache_ablation --run runs/shipped --config training/configs/shipped.json
Writes <run>/../exp_cache/results.json. Reuses the run's cached backbone features, so the four heads see the
same augmented views as the run's own stage 1; only which views they may train on changes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

VARIANTS = (("sbi_all", True, False), ("sbi_loo_dfdc", True, True),
            ("nosbi_all", False, False), ("nosbi_loo_dfdc", False, True))


def main(argv: list[str] | None = None) -> None:
    """Train the four heads and print/write DFDC and MobileStyleGAN AUCs on the cached validation features."""
    import keras

    from training.model import build_model
    from training.train import TrainConfig, auc, cache_plan, head_tail, model_config, prepare_samples, stage1

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="runs/shipped")
    parser.add_argument("--config", default="training/configs/shipped.json")
    parser.add_argument("--held-out", default="dfdc")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    run = Path(args.run)
    cfg = dataclasses.replace(TrainConfig.from_json(args.config), frozen_epochs=args.epochs, frozen_patience=4, verbose=0)
    train, val = prepare_samples(cfg)
    plan = cache_plan(train, cfg)
    reals = np.array([i for i, s in enumerate(train) if s.label == 0])
    idx = np.concatenate([np.arange(len(train))] * max(1, cfg.cache_views) + [reals] * cfg.cache_sbi_views)
    src, sbi, lab = np.array([train[i].source for i in idx]), plan["sbi"], plan["label"]
    feats = np.load(run / "cache" / "train_features.npy", mmap_mode="r")
    vfeats = np.load(run / "cache" / "val_features.npy")
    vmeta = np.load(run / "cache" / "val_meta.npz")
    vsrc, vlab = np.array([s.source for s in val]), np.array([s.label for s in val])
    out_root = run.parent / "exp_cache"
    results = {}
    for name, use_sbi, leave_out in VARIANTS:
        keep = np.ones(len(idx), bool)
        if not use_sbi:
            keep &= ~sbi
        if leave_out:
            keep &= ~((src == args.held_out) & (lab == 1) & ~sbi)
        vkeep = ~((vsrc == args.held_out) & (vlab == 1)) if leave_out else np.ones(len(val), bool)
        arrays = {"train": (np.asarray(feats[np.flatnonzero(keep)]), lab[keep], sbi[keep]),
                  "val": (vfeats[vkeep], vmeta["label"][vkeep], vmeta["sbi"][vkeep])}
        c = dataclasses.replace(cfg, sbi_fraction=cfg.sbi_fraction if use_sbi else 0.0)
        keras.utils.set_random_seed(cfg.seed)
        model = build_model(model_config(c))
        out = out_root / name
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        stage1(model, arrays, c, out)
        p = head_tail(model).predict(vfeats.astype(np.float32), verbose=0).ravel()
        d = vsrc == args.held_out
        g = (vsrc == "mobilestylegan") | (vlab == 0)
        results[name] = {f"{args.held_out}_vs_{args.held_out}_real": round(auc(vlab[d], p[d]), 4),
                         "mobilestylegan_vs_all_reals": round(auc(vlab[g], p[g]), 4)}
        print(name, results[name], flush=True)
        (out_root / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
