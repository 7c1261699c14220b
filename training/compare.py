"""Is a candidate version better than the shipped one, or only different? A paired bootstrap on the same images.

Run:
  python -m training.compare --base saved_model/deepfake_detector/5 \
      --candidate runs/release6/export/deepfake_detector/6 --json runs/compare_5_6.json

Both versions score the same images (the training run's validation split by default) through their
`from_bytes` signature, as training.evaluate does. The images are then resampled with replacement,
fakes and reals separately so every resample holds both, and each figure's difference (candidate
minus base) is recomputed on every resample: AUC overall and for each pairing of training.evaluate,
and each real source's false-alarm rate at each version's own threshold. A difference whose 95%
interval holds 0 is noise at this validation size, not a reason to ship a new version.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from training import metrics
from training.paths import recorded

Stat = Callable[[np.ndarray, np.ndarray], float]
"""A figure of (labels, scores), e.g. the AUC."""


@dataclass
class CompareConfig:
    """The two versions and the images; filled from the command line in one place (`parse_args`)."""

    base: str
    candidate: str
    manifest: str
    split: str = "val"
    val_fraction: float = 0.15
    seed: int = 1234
    max_per_source: int | None = None
    n_boot: int = 2000
    json_out: str | None = None


def _resample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices drawn with replacement within each label (fakes first), so an AUC is defined on every resample."""
    parts = [rng.choice(idx, idx.size) for idx in (np.flatnonzero(labels == v) for v in np.unique(labels)[::-1])]
    return np.concatenate(parts)


def paired_bootstrap(labels, base, candidate, stat_base: Stat, stat_candidate: Stat | None = None,
                     n_boot: int = 2000, seed: int = 0, higher_is_better: bool = True, digits: int = 4) -> dict:
    """The candidate-minus-base difference of a figure, with its 95% interval over paired resamples."""
    labels, base, candidate = (np.asarray(a) for a in (labels, base, candidate))
    if not labels.size or base.shape != labels.shape or candidate.shape != labels.shape:
        raise ValueError("labels and both score arrays must be non-empty and of one length")
    stat_candidate = stat_candidate or stat_base
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = _resample(labels, rng)
        diffs[i] = stat_candidate(labels[idx], candidate[idx]) - stat_base(labels[idx], base[idx])
    b, c = stat_base(labels, base), stat_candidate(labels, candidate)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    sign = 1.0 if higher_is_better else -1.0
    gain_lo, gain_hi = sorted((sign * lo, sign * hi))
    return {"n": int(labels.size), "base": round(float(b), digits), "candidate": round(float(c), digits),
            "difference": round(float(c - b), digits), "ci95": [round(float(lo), digits), round(float(hi), digits)],
            "higher_is_better": higher_is_better,
            "share_candidate_better": round(float(np.mean(sign * diffs > 0)), 3),
            "verdict": "better" if gain_lo > 0 else "worse" if gain_hi < 0 else "within noise"}


def false_alarm_rate(threshold: float) -> Stat:
    """The share of (real) images called fake at a version's threshold."""
    return lambda _labels, scores: float(np.mean(scores >= threshold))


def compare_scores(samples, labels: np.ndarray, base: np.ndarray, candidate: np.ndarray,
                   thresholds: tuple[float, float], n_boot: int = 2000, seed: int = 0) -> dict:
    """Every figure of both versions on the same samples, each with its paired-bootstrap difference."""
    from training.evaluate import _index, pairing_indices

    auc = lambda y, s: metrics.roc_auc(y, s)  # noqa: E731
    out = {"overall_auc": paired_bootstrap(labels, base, candidate, auc, n_boot=n_boot, seed=seed)}
    for name, (idx, _) in pairing_indices(samples).items():
        out[f"{name}_auc"] = paired_bootstrap(labels[idx], base[idx], candidate[idx], auc, n_boot=n_boot, seed=seed)
    for src in sorted({s.source for s in samples}):
        idx = _index(samples, src, 0)
        if idx.size:
            out[f"{src}_false_alarms"] = paired_bootstrap(
                labels[idx], base[idx], candidate[idx], false_alarm_rate(thresholds[0]),
                false_alarm_rate(thresholds[1]), n_boot=n_boot, seed=seed, higher_is_better=False)
    return out


def compare(cfg: CompareConfig) -> dict:
    """Score the images with both versions and compare every figure."""
    from serving import contract
    from training.evaluate import BytesScorer, EvalConfig, read_version_metadata, resolve_version, select_samples

    samples = select_samples(EvalConfig(manifest=cfg.manifest, split=cfg.split, val_fraction=cfg.val_fraction,
                                        seed=cfg.seed, max_per_source=cfg.max_per_source))
    labels = np.array([s.label for s in samples], np.int64)
    dirs = [resolve_version(cfg.base), resolve_version(cfg.candidate)]
    thresholds = tuple(float(read_version_metadata(d).get("threshold", contract.DEFAULT_THRESHOLD)) for d in dirs)
    base, candidate = (BytesScorer(d).score_files([s.path for s in samples]) for d in dirs)
    report = {"base": recorded(dirs[0]), "candidate": recorded(dirs[1]), "thresholds": list(thresholds),
              "data": {"manifest": recorded(cfg.manifest), "split": cfg.split, "seed": cfg.seed, "n": len(samples)},
              "n_boot": cfg.n_boot,
              "figures": compare_scores(samples, labels, base, candidate, thresholds, cfg.n_boot, cfg.seed)}
    if cfg.json_out:
        Path(cfg.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def markdown(report: dict) -> str:
    """The comparison as a Markdown table for a model card."""
    lines = [f"Base `{report['base']}` (threshold {report['thresholds'][0]}) against candidate "
             f"`{report['candidate']}` (threshold {report['thresholds'][1]}), {report['data']['n']} images, "
             f"{report['n_boot']} paired resamples.", "",
             "| figure | n | base | candidate | difference | 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
    for name, f in report["figures"].items():
        lines.append(f"| {name} | {f['n']} | {f['base']:.4f} | {f['candidate']:.4f} | {f['difference']:+.4f} | "
                     f"{f['ci95'][0]:+.4f} .. {f['ci95'][1]:+.4f} | {f['verdict']} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> CompareConfig:
    """Command line to CompareConfig."""
    from training.evaluate import DEFAULT_MANIFEST

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the shipped version folder (or model base: its highest version)")
    p.add_argument("--candidate", required=True, help="the new version folder")
    p.add_argument("--manifest", default=DEFAULT_MANIFEST)
    p.add_argument("--split", choices=("val", "all"), default="val")
    p.add_argument("--val-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=1234, help="the training seed (same split); also the bootstrap's")
    p.add_argument("--max-per-source", type=int)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--json", dest="json_out")
    a = p.parse_args(argv)
    return CompareConfig(base=a.base, candidate=a.candidate, manifest=a.manifest, split=a.split,
                         val_fraction=a.val_fraction, seed=a.seed, max_per_source=a.max_per_source,
                         n_boot=a.n_boot, json_out=a.json_out)


def main(argv: list[str] | None = None) -> int:
    """Entry point: compare, print the table (or one line saying which version or file is missing)."""
    from training.cli import run_and_print

    cfg = parse_args(argv)
    return run_and_print(lambda: compare(cfg), markdown)


if __name__ == "__main__":
    sys.exit(main())
