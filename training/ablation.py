"""Leave-one-method-out matrix and the ablation table, from short trainings with one config.

Run (through training.evaluate, which owns the command line):
  python -m training.evaluate --leave-one-out --config training/configs/quick.json --out runs/loo
  python -m training.evaluate --ablation --config training/configs/quick.json --out runs/ablation
  python -m training.ablation --run runs/loo/without-dfdc-<hash> --checkpoint checkpoints/stage2_last.weights.h5

Leave-one-out: for each fake source S, train with `exclude_fake_sources=[S]` (S's fakes leave both
training and training-time validation), then score S's fakes against the reals they should be told
from: a two-label source's own reals (DFDC swaps vs DFDC reals), or all real photos for a fake-only
source (MobileStyleGAN vs UTKFace + DFDC reals). A model trained on every source gives the
reference row. Scores come from the Keras model through the same decode-and-resize ops that the
exported `from_bytes` signature runs (training.calibrate.keras_logits), on a fixed, capped subset
of the group-disjoint validation split, so every row is scored on the same images.

Ablation: each row is a set of TrainConfig overrides (baseline without self-blended fakes or crop
jitter, then each lever added); each row is trained twice, on everything (in-distribution figures)
and without DFDC fakes (leave-DFDC-out figure). Runs are cached by name in the output folder, so
an interrupted table resumes and identical runs are shared between the two experiments.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import numpy as np

from training import metrics

EVAL_PER_SOURCE = 100
"""Validation images per (source, label) that every run is scored on."""

ABLATION_ROWS: list[tuple[str, dict]] = [
    # The full recipe first: its two runs are the leave-one-out matrix's reference and DFDC rows too.
    ("SBI + crop jitter (the shipped recipe's levers)", {"sbi_fraction": 0.3, "crop_jitter": True}),
    ("baseline (JPEG/scale/blur/noise/colour augmentation only)", {"sbi_fraction": 0.0, "crop_jitter": False}),
    ("baseline + self-blended fakes (SBI)", {"sbi_fraction": 0.3, "crop_jitter": False}),
    ("baseline + crop jitter", {"sbi_fraction": 0.0, "crop_jitter": True}),
]


def _cpu_seconds() -> float:
    """CPU time used by this process and its finished children (the experiment budget's unit)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_config(path: str | Path, manifest: str | None = None, **overrides):
    """A TrainConfig from JSON with overrides (and the data path replaced when a manifest is given)."""
    from training.train import TrainConfig

    cfg = TrainConfig.from_json(path)
    changes = dict(overrides)
    if manifest:
        changes["data"] = str(Path(manifest).resolve())
    return dataclasses.replace(cfg, **changes)


def eval_samples(cfg, per_source: int = EVAL_PER_SOURCE):
    """The fixed scoring set: a capped subset of the group-disjoint validation split of `cfg.data`."""
    from training.data import limit_per_source, load_samples, split_by_group
    from training.train import resolve

    _, val = split_by_group(load_samples(resolve(cfg.data)), cfg.val_fraction, cfg.seed)
    return limit_per_source(val, per_source, cfg.seed)


def pair_auc(samples, probs: np.ndarray, source: str) -> dict:
    """The figure for one fake source: vs its own reals if it has them, else vs every real photo."""
    labels = np.array([s.label for s in samples])
    src = np.array([s.source for s in samples])
    fake = (src == source) & (labels == 1)
    own_real = (src == source) & (labels == 0)
    real = own_real if own_real.any() else labels == 0
    sel = fake | real
    against = f"{source} real" if own_real.any() else "real photos (" + ", ".join(sorted(set(src[labels == 0]))) + ")"
    return {"auc": _r(metrics.roc_auc(labels[sel], probs[sel])), "against": against,
            "n_fake": int(fake.sum()), "n_real": int(real.sum()),
            "fake_recall_at_0.5": _r(float(np.mean(probs[fake] >= 0.5))) if fake.any() else None}


def _r(x: float) -> float | None:
    """Round for JSON (null for undefined)."""
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def config_key(cfg) -> str:
    """8 hex digits that identify a training config (verbosity aside): equal configs share one run."""
    import hashlib

    data = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("verbose", "workers")}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _same_config(saved: dict, cfg) -> bool:
    """A run's saved config.json equals `cfg`; fields added to TrainConfig since count as their defaults."""
    current = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(cfg)}
    defaults = json.loads(json.dumps(defaults, default=str))
    for key in set(current) | set(saved):
        if key in ("verbose", "workers"):
            continue
        if saved.get(key, defaults.get(key)) != current.get(key):
            return False
    return True


def find_run(out_root: Path, name: str, cfg) -> Path | None:
    """An existing run folder `name-*` under out_root whose config equals `cfg` (robust to new TrainConfig fields)."""
    for run_dir in sorted(Path(out_root).glob(f"{name}-*")):
        saved = run_dir / "config.json"
        if saved.is_file() and _same_config(json.loads(saved.read_text()), cfg):
            return run_dir
    return None


def fake_sources(samples) -> list[str]:
    """Sources that hold fakes, sorted."""
    return sorted({s.source for s in samples if s.label == 1})


def score_model(model, samples) -> dict:
    """The matrix's figures for one Keras model on the fixed set, so every run and checkpoint is scored alike."""
    from training.calibrate import keras_logits

    probs = metrics.sigmoid(keras_logits(model, [s.path for s in samples]))
    labels = np.array([s.label for s in samples])
    return {
        "overall_auc": _r(metrics.roc_auc(labels, probs)),
        "degenerate": bool(np.ptp(probs) < 1e-3),  # a dead head answers one constant: flag, never hide
        "per_fake_source": {src: pair_auc(samples, probs, src) for src in fake_sources(samples)},
    }


def score_checkpoint(run: Path, checkpoint: str, per_source: int = EVAL_PER_SOURCE) -> dict:
    """One checkpoint of a leave-one-out run on the matrix's fixed set, written beside the run's own result."""
    from training.real_holdout import load_checkpoint
    from training.train import TrainConfig

    run = Path(run)
    cfg = TrainConfig.from_json(run / "config.json")
    result = {"checkpoint": checkpoint, "excluded": list(cfg.exclude_fake_sources),
              **score_model(load_checkpoint(run, checkpoint, cfg), eval_samples(cfg, per_source))}
    stem = Path(checkpoint).name.split(".")[0]
    (run / f"eval_result_{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_once(name: str, cfg, out_root: Path, samples, train_missing: bool = True) -> dict | None:
    """Train `cfg` into out_root/name (reused if already there) and score the fixed set per fake source.

    With train_missing=False a run that has no result yet is not started: None ('not run').
    """
    import keras

    from training.train import train

    run_dir = find_run(out_root, name, cfg) or out_root / f"{name}-{config_key(cfg)}"
    result_path = run_dir / "eval_result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    if not train_missing:
        return None
    keras.backend.clear_session()
    t0, c0 = time.time(), _cpu_seconds()
    model_path = run_dir / "model.keras"
    if not model_path.exists():
        train(cfg, run_dir)
    keras.backend.clear_session()
    model = keras.models.load_model(model_path, compile=False)
    result = {
        "name": name,
        "excluded": list(cfg.exclude_fake_sources),
        "overrides": {k: getattr(cfg, k) for k in ("sbi_fraction", "crop_jitter", "augment", "max_per_source",
                                                   "frozen_epochs", "finetune_epochs", "finetune_blocks")},
        **score_model(model, samples),
        "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(_cpu_seconds() - c0, 1),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def leave_one_out(config_path: str | Path, out: str | Path, sources: list[str] | None = None,
                  manifest: str | None = None, overrides: dict | None = None, eval_per_source: int = EVAL_PER_SOURCE,
                  train_missing: bool = True, reference: bool = True) -> dict:
    """Train once on everything (the reference row) and once without each fake source; return the matrix."""
    out = Path(out)
    base = load_config(config_path, manifest, **(overrides or {}))
    samples = eval_samples(base, eval_per_source)
    sources = sources or fake_sources(samples)
    rows = {"none": run_once("all", base, out, samples, train_missing)} if reference else {}
    for src in sources:
        cfg = dataclasses.replace(base, exclude_fake_sources=[src])
        rows[src] = run_once(f"without-{src}", cfg, out, samples, train_missing)
    columns = fake_sources(samples)
    return {
        "config": str(config_path),
        "columns": columns,
        "rows": {held: _loo_row(held, r, columns) for held, r in rows.items()},
        "eval_counts": _counts(samples),
    }


def _loo_row(held: str, run: dict | None, columns: list[str]) -> dict:
    """One matrix row from a run's result (or a 'not run' row)."""
    if run is None:
        return {"not_run": True, "held_out": None, "in_distribution": {}, "aucs": {c: None for c in columns},
                "against": {}, "cpu_s": None, "degenerate": False}
    per = run["per_fake_source"]
    return {"held_out": None if held == "none" else per[held]["auc"],
            "in_distribution": {c: per[c]["auc"] for c in columns if c != held},
            "aucs": {c: per[c]["auc"] for c in columns},
            "against": {c: per[c]["against"] for c in columns},
            "cpu_s": run["cpu_s"], "degenerate": run.get("degenerate", False)}


def _counts(samples) -> dict:
    """Images per source and label in the scoring set."""
    from training.data import summarize

    return summarize(samples)


def loo_markdown(matrix: dict, budget_note: str) -> str:
    """The leave-one-method-out matrix as a Markdown table for the model card."""
    cols = matrix["columns"]
    against = next((r["against"] for r in matrix["rows"].values() if r["against"]), {c: "?" for c in cols})
    lines = [
        "# Leave-one-method-out matrix",
        "",
        budget_note,
        "",
        "Rows: the fake source left out of training. Cells: AUC of that model on each fake source against "
        "the reals it must be told from (" + "; ".join(f"{c} vs {against[c]}" for c in cols) + "). "
        "**Bold** = the held-out (never seen) method; the other cells are in-distribution.",
        "",
        "| held out | " + " | ".join(f"AUC {c}" for c in cols) + " | CPU s |",
        "|---|" + "---|" * (len(cols) + 1),
    ]
    for held, row in matrix["rows"].items():
        cells = []
        for c in cols:
            v = row["aucs"].get(c)
            text = "n/a" if v is None else f"{v:.3f}"
            cells.append(f"**{text}**" if c == held else text)
        name = held if held != "none" else "none (reference)"
        name += " (constant output: head did not train)" if row.get("degenerate") else ""
        if row.get("not_run"):
            lines.append(f"| {name} | " + " | ".join("not run (time budget)" for _ in cols) + " | - |")
            continue
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['cpu_s']:.0f} |")
    counts = ", ".join(f"{s}: {c['real']} real / {c['fake']} fake" for s, c in matrix["eval_counts"].items())
    lines += ["", f"Scored on a fixed subset of the group-disjoint validation split ({counts})."]
    return "\n".join(lines) + "\n"


def ablation(config_path: str | Path, out: str | Path, manifest: str | None = None,
             rows: list[tuple[str, dict]] | None = None, holdout: str = "dfdc",
             eval_per_source: int = EVAL_PER_SOURCE, train_missing: bool = True) -> dict:
    """Each ablation row trained on everything and without `holdout` fakes; returns the table as a dict."""
    out = Path(out)
    rows = rows or ABLATION_ROWS
    table = []
    samples = None
    for label, overrides in rows:
        base = load_config(config_path, manifest, **overrides)
        samples = samples or eval_samples(base, eval_per_source)
        full = run_once("all", base, out, samples, train_missing)
        loo = run_once(f"without-{holdout}", dataclasses.replace(base, exclude_fake_sources=[holdout]), out, samples,
                       train_missing)
        if full is None or loo is None:
            table.append({"row": label, "overrides": overrides, "not_run": True, "in_distribution": {},
                          f"leave_{holdout}_out": None, "cpu_s": None, "degenerate": False,
                          "partial": {"all": full, f"without_{holdout}": loo}})
            continue
        table.append({
            "row": label, "overrides": overrides,
            "in_distribution": {"overall_auc": full["overall_auc"],
                                **{src: v["auc"] for src, v in full["per_fake_source"].items()}},
            f"leave_{holdout}_out": loo["per_fake_source"][holdout]["auc"],
            f"leave_{holdout}_out_rest": {src: v["auc"] for src, v in loo["per_fake_source"].items() if src != holdout},
            "cpu_s": round(full["cpu_s"] + loo["cpu_s"], 1),
            "degenerate": bool(full.get("degenerate") or loo.get("degenerate")),
        })
    return {"config": str(config_path), "holdout": holdout, "rows": table,
            "eval_counts": _counts(samples) if samples else {}}


def ablation_markdown(result: dict, budget_note: str) -> str:
    """The ablation table as Markdown for the model card."""
    h = result["holdout"]
    srcs = sorted({k for r in result["rows"] for k in r["in_distribution"] if k != "overall_auc"}
                  | {k for r in result["rows"] for k in (((r.get("partial") or {}).get("all") or {}).get("per_fake_source") or {})})
    lines = [
        "# Ablation",
        "",
        budget_note,
        "",
        f"In-distribution: trained on every source, AUC per fake source on the validation subset. "
        f"Leave-{h}-out: trained without {h} fakes, AUC of {h} fakes against {h} reals.",
        "",
        "| row | in-dist overall AUC | " + " | ".join(f"in-dist {s}" for s in srcs) + f" | **leave-{h}-out** | CPU s |",
        "|---|---|" + "---|" * len(srcs) + "---|---|",
    ]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for r in result["rows"]:
        if r.get("not_run"):
            full = (r.get("partial") or {}).get("all")
            if full:  # in-distribution run done, leave-out run not
                lines.append(f"| {r['row']} | {fmt(full['overall_auc'])} | "
                             + " | ".join(fmt(full["per_fake_source"].get(s, {}).get("auc")) for s in srcs)
                             + f" | not run (time budget) | {full['cpu_s']:.0f} |")
            else:
                lines.append(f"| {r['row']} | not run (time budget) |" + " |" * len(srcs) + " | |")
            continue
        flag = " (constant output: head did not train)" if r.get("degenerate") else ""
        lines.append(f"| {r['row']}{flag} | {fmt(r['in_distribution']['overall_auc'])} | "
                     + " | ".join(fmt(r["in_distribution"].get(s)) for s in srcs)
                     + f" | **{fmt(r[f'leave_{h}_out'])}** | {r['cpu_s']:.0f} |")
    return "\n".join(lines) + "\n"


def budget_note(config_path: str | Path) -> str:
    """One sentence with the runs' budget, so a reader knows whether the rows compare with a release."""
    cfg = json.loads(Path(config_path).read_text())
    per_source, epochs = cfg.get("max_per_source"), cfg.get("finetune_epochs")
    fine_tuned = bool(epochs and cfg.get("finetune_blocks"))
    data = f"at most {per_source} training images per source and label" if per_source else "every training image"
    tune = f", then up to {epochs} fine-tune epochs" if fine_tuned else ", no fine-tune"
    kind = "Quick-budget runs" if per_source or not fine_tuned else "Runs"
    return (f"**{kind}** (`{config_path}`: {data}, frozen backbone for {cfg.get('frozen_epochs')} head epochs{tune}),"
            " not the shipped model: compare rows with each other, not with the shipped figures.")


def leave_one_out_main(config_path: str, out: str, sources: list[str] | None = None, manifest: str | None = None,
                       train_missing: bool = True, reference: bool = True) -> dict:
    """Run the matrix and write loo.json and loo.md in `out`."""
    matrix = leave_one_out(config_path, out, sources, manifest, train_missing=train_missing, reference=reference)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "loo.json").write_text(json.dumps(matrix, indent=2) + "\n")
    md = loo_markdown(matrix, budget_note(config_path))
    (Path(out) / "loo.md").write_text(md)
    print(md)
    return matrix


def ablation_main(config_path: str, out: str, manifest: str | None = None, train_missing: bool = True) -> dict:
    """Run the ablation and write ablation.json and ablation.md in `out`."""
    result = ablation(config_path, out, manifest, train_missing=train_missing)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ablation_markdown(result, budget_note(config_path))
    (Path(out) / "ablation.md").write_text(md)
    print(md)
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line: score one checkpoint of a leave-one-out run on the matrix's fixed set."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a leave-one-out run directory (config.json inside)")
    p.add_argument("--checkpoint", default="model.keras", help="file in the run, .keras or .weights.h5 "
                   "(default: %(default)s)")
    args = p.parse_args(argv)
    r = score_checkpoint(Path(args.run), args.checkpoint)
    print(f"{args.checkpoint} (without {', '.join(r['excluded']) or 'nothing'}): "
          + ", ".join(f"{src} {v['auc']}" for src, v in r["per_fake_source"].items()))


if __name__ == "__main__":
    main()
