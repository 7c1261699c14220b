"""Average the weights of several fine-tune epochs of one run (a uniform model soup, as in stochastic weight averaging).

Run: python -m training.average --run runs/X --weights runs/X/checkpoints/epochs/stage2_epoch_*.weights.h5 \
         --score-each --out runs/X/model_avg.keras --json runs/X/average.json

(a run keeps its last epochs' weights there when its config sets `keep_epochs`)

Stage 2 fine-tunes with BatchNorm frozen, so the epochs share their normalisation statistics and their average is a
model like any other (nothing to re-estimate). Its use: the selection score of one run swings by several points from
epoch to epoch (the StyleGAN AUC of the balanced-stream run between 0.83 and 0.97), and an average of the late
epochs smooths that without any cost at serving time. The run's own validation split scores the average and, with
--score-each, every input, on the same figures the run selected its epoch by. `<out>` then goes through
`training.release` and `training.export` like any run's model.keras.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


class AverageError(ValueError):
    """The weight files cannot be averaged into the run's model (missing, or another architecture)."""


def average_weights(model, files: list[Path]) -> None:
    """Set the model's weights to the mean of the files' (float64 sums, so the order of the files does not matter)."""
    if not files:
        raise AverageError("no weight files to average")
    total = None
    for f in files:
        if not Path(f).exists():
            raise AverageError(f"no such weight file: {f}")
        try:
            model.load_weights(f)
        except ValueError as e:  # Keras's message for a file of another architecture
            raise AverageError(f"{f} does not fit this run's model: {e}") from e
        weights = [np.asarray(w, np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([(t / len(files)).astype(np.float32) for t in total])


def figures(metrics: dict, select_metric: str) -> dict:
    """The selection score and the per-source AUCs a reader compares epochs by."""
    from training.train import fake_source_aucs, selection_score

    reals = {f"{src}_reals_vs_all_fakes": entry["auc_vs_all_fakes"] for src, entry in metrics.items()
             if isinstance(entry, dict) and "auc_vs_all_fakes" in entry}
    return {select_metric: selection_score(metrics, select_metric), "overall": metrics["overall"]["auc"],
            **fake_source_aucs(metrics), **reals}


def main(argv: list[str] | None = None) -> None:
    """Average, score on the run's validation split, and write the model and the figures."""
    from training.model import build_model
    from training.train import TrainConfig, log, model_config, prepare_samples, val_metrics, write_whole

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="the run directory (its config.json builds the model)")
    p.add_argument("--weights", required=True, nargs="+", type=Path, help=".weights.h5 or .keras files of the run")
    p.add_argument("--score-each", action="store_true", help="also score every input file alone")
    p.add_argument("--out", type=Path, help="write the averaged model here (.keras)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)

    cfg = TrainConfig.from_json(args.run / "config.json")
    _, val = prepare_samples(cfg)
    model = build_model(model_config(cfg))
    result: dict = {"run": str(args.run), "select_metric": cfg.select_metric, "inputs": {}}
    try:
        for f in args.weights if args.score_each else []:
            average_weights(model, [f])
            result["inputs"][str(f)] = figures(val_metrics(model, val, cfg), cfg.select_metric)
            log(f"{f.name}: {json.dumps(result['inputs'][str(f)])}")
        average_weights(model, args.weights)
    except AverageError as e:
        raise SystemExit(f"training.average: {e}") from None
    result["average"] = figures(val_metrics(model, val, cfg), cfg.select_metric)
    result["average_of"] = [str(f) for f in args.weights]
    log(f"average of {len(args.weights)}: {json.dumps(result['average'])}")
    if args.out:
        write_whole(args.out, model.save)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
