"""Leave-one-real-source-out: how often real photos from a source the model never saw are called fake.

Run (through training.evaluate, which owns the command line):
  python -m training.evaluate --leave-one-real-out --config training/configs/loo_real.json --out runs/loo_real
Score another checkpoint of one such run (a fine-tune epoch the selection did not keep) the same way:
  python -m training.real_holdout --run runs/loo_real/without-real-aaf-<key> --checkpoint checkpoints/stage2_last.weights.h5

This is the stand-in for users' own photos. For each real-only source S (utkface, aaf, ffhq), a model is
trained with `exclude_real_sources=[S]` (S leaves training and training-time validation alike). It is then
calibrated as a release is (Platt scaling on its own validation logits, then training.calibrate's threshold
and band rules), and every image of S, none of which it has seen, is scored two ways:
  - whole image: the file's bytes through the same decode-and-resize ops as the served `from_bytes`;
  - client crop: the client core's own preparation (its face detector and the shared crop rule), the most
    suspicious face of each image, as the page, the bot and the CLI would send it.
The figure is the false-positive rate at that model's threshold (and the share of 'uncertain' verdicts).
Runs are cached by name and config in `--out`, so an interrupted report resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from training import metrics

HOLDOUT_MAX = 400
"""Images of a held-out source that are scored (all of them where the source is smaller)."""


def real_only_sources(samples) -> list[str]:
    """Sources that hold reals and no fakes: the ones a user's own photos resemble."""
    with_fakes = {s.source for s in samples if s.label == 1}
    return sorted({s.source for s in samples if s.label == 0} - with_fakes)


def holdout_images(samples, source: str, cap: int, seed: int) -> list:
    """A fixed, capped draw of one source's real images (deterministic for a seed)."""
    chosen = [s for s in samples if s.source == source and s.label == 0]
    if len(chosen) > cap:
        idx = np.sort(np.random.default_rng([seed, 7]).choice(len(chosen), cap, replace=False))
        chosen = [chosen[i] for i in idx]
    return chosen


def false_alarms(probs: np.ndarray, threshold: float, band: tuple[float, float]) -> dict:
    """On reals only: the share called fake at the threshold, the share 'uncertain', the share firmly fake."""
    p = np.asarray(probs, np.float64)
    if p.size == 0:
        return {"n": 0, "false_positive_rate": None, "uncertain_share": None, "firm_fake_share": None}
    low, high = band
    return {"n": int(p.size),
            "false_positive_rate": round(float(np.mean(p >= threshold)), 4),
            "uncertain_share": round(float(np.mean((p >= low) & (p <= high))), 4),
            "firm_fake_share": round(float(np.mean(p > high)), 4)}


def held_out_aucs(val_samples: list, val_logits: np.ndarray, held_logits: np.ndarray) -> dict:
    """Per validation fake source, the AUC of its fakes against the held-out reals (whole images): whether any
    threshold could keep those reals apart, free of where calibration put the threshold."""
    from training.train import auc

    out = {}
    for source in sorted({s.source for s in val_samples if s.label == 1}):
        fakes = val_logits[[i for i, s in enumerate(val_samples) if s.label == 1 and s.source == source]]
        labels = np.r_[np.zeros(len(held_logits)), np.ones(len(fakes))]
        out[source] = round(auc(labels, np.r_[held_logits, fakes]), 4)
    return out


@dataclasses.dataclass(frozen=True)
class Calibrated:
    """A run's Platt scaling and the release rules' threshold and band, all on its own validation split."""

    a: float
    b: float
    temperature: float
    threshold: float
    band: tuple[float, float]

    def probs(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from raw head logits."""
        return metrics.sigmoid((self.a * np.asarray(logits) + self.b) / self.temperature)


def calibrate_run(val, raw: np.ndarray) -> Calibrated:
    """Calibrate like training.release does, from a run's raw logits on its own (held-out-free) validation split."""
    from training.calibrate import calibrate_logits
    from training.release import fit_platt

    labels = np.array([s.label for s in val])
    a, b = fit_platt(raw, labels)
    cal = calibrate_logits(a * raw + b, labels)
    return Calibrated(a, b, cal.temperature, cal.threshold, tuple(cal.uncertain_band))


def client_crop_logits(model, samples, crops=None) -> tuple[np.ndarray, float, int]:
    """Per image, the highest logit over the client's face crops; the share with a face; images refused.

    `crops` is (name, crop function), by default the client core's own (training.evaluate.client_crops)."""
    from training.calibrate import keras_logits_bytes
    from training.evaluate import client_crops, prepare_client_crops

    _, make_crops = crops if crops is not None else client_crops()
    if make_crops is None:
        return np.zeros(0), float("nan"), 0
    prepared = prepare_client_crops([Path(s.path).read_bytes() for s in samples], make_crops)
    logits = prepared.most_suspicious(keras_logits_bytes(model, prepared.flat))
    face_share = float(prepared.found.mean()) if prepared.found.size else float("nan")
    return logits, face_share, prepared.refused


def score_holdout(model, cfg, source: str, cap: int = HOLDOUT_MAX, crops: bool = True) -> dict:
    """Calibrate a trained run and measure its false alarms on the held-out real source."""
    from training.calibrate import keras_logits
    from training.data import load_samples
    from training.train import prepare_samples, resolve

    _, val = prepare_samples(dataclasses.replace(cfg, max_val=None))
    val_logits = keras_logits(model, [s.path for s in val])
    cal = calibrate_run(val, val_logits)
    images = holdout_images(load_samples(resolve(cfg.data)), source, cap, cfg.seed)
    whole_logits = keras_logits(model, [s.path for s in images])
    whole = cal.probs(whole_logits)
    result = {"source": source, "threshold": round(cal.threshold, 4), "band": [round(x, 4) for x in cal.band],
              "platt": [round(cal.a, 4), round(cal.b, 4)], "temperature": round(cal.temperature, 4),
              "whole_image": false_alarms(whole, cal.threshold, cal.band),
              "held_out_vs_val_fakes_auc": held_out_aucs(val, val_logits, whole_logits)}
    if crops:
        logits, face_share, refused = client_crop_logits(model, images)
        result["client_crop"] = {**false_alarms(cal.probs(logits), cal.threshold, cal.band),
                                 "face_found_share": None if face_share != face_share else round(face_share, 4),
                                 "refused_by_client": refused}
    from training.train import fake_source_aucs, per_source_metrics, source_auc, source_real_auc

    vprobs = cal.probs(val_logits)
    per = per_source_metrics(val, vprobs, cal.threshold)
    result["validation"] = {"source_auc": round(source_auc(per), 4), "source_real_auc": round(source_real_auc(per), 4),
                            **{str(k): round(v, 4) for k, v in fake_source_aucs(per).items()}}
    return result


def load_checkpoint(run: Path, checkpoint: str, cfg):
    """A run's model file or weights file (`checkpoints/stage2_last.weights.h5`) as a Keras model."""
    import keras

    from training.model import build_model
    from training.train import model_config

    path = Path(run) / checkpoint
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint in the run")
    if path.name.endswith(".weights.h5"):
        model = build_model(model_config(cfg))
        model.load_weights(path)
        return model
    return keras.models.load_model(path, compile=False)


def score_checkpoint(run: Path, checkpoint: str, cap: int = HOLDOUT_MAX, crops: bool = True) -> dict:
    """The held-out report for one checkpoint of a leave-one-real-out run, written beside the run's own."""
    from training.train import TrainConfig

    run = Path(run)
    cfg = TrainConfig.from_json(run / "config.json")
    if len(cfg.exclude_real_sources) != 1:
        raise ValueError(f"{run}: not a leave-one-real-out run (exclude_real_sources={cfg.exclude_real_sources})")
    result = {"checkpoint": checkpoint,
              **score_holdout(load_checkpoint(run, checkpoint, cfg), cfg, cfg.exclude_real_sources[0], cap, crops)}
    stem = Path(checkpoint).name.split(".")[0]
    (run / f"holdout_result_{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_holdout(cfg, source: str, out_root: Path, train_missing: bool = True, crops: bool = True) -> dict | None:
    """Train without `source` into out_root (reused when there), then score it; None when not run."""
    import keras

    from training.ablation import config_key, find_run
    from training.train import train

    held = dataclasses.replace(cfg, exclude_real_sources=[source])
    name = f"without-real-{source}"
    run_dir = find_run(out_root, name, held) or out_root / f"{name}-{config_key(held)}"
    result_path = run_dir / "holdout_result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    model_path = run_dir / "model.keras"
    if not model_path.exists():
        if not train_missing:
            return None
        keras.backend.clear_session()
        t0 = time.time()
        train(held, run_dir, resume=(run_dir / "state.json").exists())
        (run_dir / "train_wall_s.txt").write_text(f"{time.time() - t0:.0f}\n")
    keras.backend.clear_session()
    model = keras.models.load_model(model_path, compile=False)
    result = score_holdout(model, held, source, crops=crops)
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def leave_one_real_out(config_path: str | Path, out: str | Path, sources: list[str] | None = None,
                       manifest: str | None = None, train_missing: bool = True, crops: bool = True) -> dict:
    """One held-out run per real-only source; returns the report as a dict."""
    from training.ablation import load_config
    from training.data import load_samples
    from training.train import resolve

    cfg = load_config(config_path, manifest)
    sources = sources or real_only_sources(load_samples(resolve(cfg.data)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = {src: run_holdout(cfg, src, out, train_missing, crops) for src in sources}
    return {"config": str(config_path), "rows": rows}


def holdout_markdown(report: dict) -> str:
    """The report as a Markdown table for the model card."""
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        "# Leave-one-real-source-out: false alarms on real photos never seen",
        "",
        f"Config: `{report['config']}`. Each row: trained without that real source, calibrated on its own "
        "validation split, then every image of the source (up to "
        f"{HOLDOUT_MAX}) scored. FPR = share called fake at that model's threshold.",
        "",
        "| held-out real source | n | threshold | FPR whole image | uncertain | FPR client crop | uncertain (crop) "
        "| faces found | val source AUC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for src, r in report["rows"].items():
        if r is None:
            lines.append(f"| {src} | not run | | | | | | | |")
            continue
        w, c = r["whole_image"], r.get("client_crop") or {}
        face = c.get("face_found_share")
        lines.append(f"| {src} | {w['n']} | {r['threshold']:.3f} | {fmt(w['false_positive_rate'])} | "
                     f"{fmt(w['uncertain_share'])} | {fmt(c.get('false_positive_rate'))} | "
                     f"{fmt(c.get('uncertain_share'))} | {fmt(face)} | {r['validation']['source_auc']:.3f} |")
    return "\n".join(lines) + "\n"


def leave_one_real_out_main(config_path: str, out: str, sources: list[str] | None = None,
                            manifest: str | None = None, train_missing: bool = True) -> dict:
    """Run the report and write loo_real.json and loo_real.md in `out`."""
    report = leave_one_real_out(config_path, out, sources, manifest, train_missing)
    (Path(out) / "loo_real.json").write_text(json.dumps(report, indent=2) + "\n")
    md = holdout_markdown(report)
    (Path(out) / "loo_real.md").write_text(md)
    print(md)
    return report


def main(argv: list[str] | None = None) -> None:
    """Command line: score one checkpoint of a leave-one-real-out run."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a leave-one-real-out run directory (config.json inside)")
    p.add_argument("--checkpoint", default="model.keras", help="file in the run, .keras or .weights.h5 "
                   "(default: %(default)s)")
    p.add_argument("--cap", type=int, default=HOLDOUT_MAX, help="held-out images scored")
    p.add_argument("--no-crops", action="store_true", help="whole images only")
    args = p.parse_args(argv)
    r = score_checkpoint(Path(args.run), args.checkpoint, args.cap, not args.no_crops)
    crop = r.get("client_crop", {}).get("false_positive_rate")
    print(f"{r['source']} held out, {args.checkpoint}: threshold {r['threshold']:.3f}, FPR whole "
          f"{r['whole_image']['false_positive_rate']:.3f}, crop {crop if crop is None else round(crop, 3)}, "
          f"validation {r['validation']}")


if __name__ == "__main__":
    main()
