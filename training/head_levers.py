"""Head-only levers against false alarms on a real source the model never saw, on a leave-one-real-out run's cache.

Run (after `python -m training.evaluate --leave-one-real-out ...` has trained the run):
  python -m training.head_levers --run runs/loo7_real/without-real-aaf-24b0ef54

Each variant trains a fresh head on the run's own cached frozen-backbone features (the augmented views its stage 1
saw; minutes on a CPU), is calibrated on the run's cached validation features as a release is (Platt, then the
threshold and band rules), and scores the held-out source's images, none seen in training: whole images and the
clients' own face crops, whose features the run's backbone computes once. Writes <run>/head_levers.json.

Variants (every one in the same loop, same seed, same epochs, best epoch by the run's selection metric):
  plain             the stage-1 head and loss (class weights)
  balanced[:P]      inside the real class a source of n views weighs ~ n^(1-P): P=1 every real source the same
  fakes-balanced[:P] the same for the fake sources
  adversarial:W     a classifier of the real source on the head's hidden layer, through gradient reversal
                    (Ganin and Lempitsky 2015) at weight W: the hidden layer is trained to hide which real
                    source a real photo came from, so "real" cannot mean "like one of the real sources seen"
  nullspace:N       the features projected off N rounds of linear real-source classifiers (Ravfogel et al.
                    2020) before the head: a fixed linear map that removes what tells the real sources apart
  portrait:S        one extra view of a share S of the training images (every source, both classes) re-rendered in
                    FFHQ's portrait look (training.augment.portrait_style) before the run's augmentation: whether
                    that look stops meaning "fake" when a real source with it (FFHQ) is held out
  Parts join with '+', e.g. balanced+nullspace:5.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = "model.keras"
"""The model a run kept; head_levers can take another of its files (e.g. checkpoints/stage2_best.keras)."""
DEFAULT_VARIANTS = ("plain", "balanced", "balanced:0.5", "balanced+fakes-balanced", "adversarial:1", "nullspace:5",
                    "nullspace:20", "balanced+nullspace:5")


@dataclass(frozen=True)
class Variant:
    """One head recipe: how sources are weighted, the real-source adversary's strength, the nullspace depth."""

    name: str
    real_balance: float = 0.0
    """0: reals weigh as many as they are; 1: every real source weighs the same; between: weight ~ count^-power."""
    fake_balance: float = 0.0
    """The same for the fake sources."""
    adversary_weight: float = 0.0
    nullspace_iterations: int = 0
    portrait_share: float = 0.0
    """Share of the training images given one extra portrait-style view (0 = none)."""

    @classmethod
    def parse(cls, name: str) -> "Variant":
        """'plain', or '+'-joined parts: balanced[:power], fakes-balanced[:power], adversarial:W, nullspace:N."""
        fields: dict = {}
        for part in name.split("+"):
            key, colon, value = part.partition(":")
            try:
                if colon and not value:
                    raise ValueError(part)
                if key == "plain" and not colon:
                    continue
                if key == "balanced":
                    fields["real_balance"] = float(value or 1.0)
                elif key == "fakes-balanced":
                    fields["fake_balance"] = float(value or 1.0)
                elif key == "adversarial" and value:
                    fields["adversary_weight"] = float(value)
                elif key == "nullspace" and value:
                    fields["nullspace_iterations"] = int(value)
                elif key == "portrait" and value:
                    fields["portrait_share"] = float(value)
                else:
                    raise ValueError(part)
            except ValueError:
                raise ValueError(f"unknown variant {name!r}: expected 'plain' or '+'-joined parts balanced[:power], "
                                 "fakes-balanced[:power], adversarial:<weight>, nullspace:<iterations>, portrait:<share>") from None
        return cls(name, **fields)


def loss_weights(labels: np.ndarray, sources: np.ndarray, real_balance: float = 0.0,
                 fake_balance: float = 0.0) -> np.ndarray:
    """Per-view loss weights: the classes even, and inside each class a source of n views weighing ~ n^(1-power)."""
    from training.train import source_balanced

    w = source_balanced(np.ones(len(labels)), labels, sources, real_balance, fake_balance)
    for label in (0, 1):
        cls = (labels > 0.5) == bool(label)
        if cls.any():
            w[cls] *= 0.5 / w[cls].sum()  # each class carries half of the loss
    return (w / w.mean()).astype(np.float32)


def source_nullspace(feats: np.ndarray, sources: np.ndarray, iterations: int, ridge: float = 1e-2) -> np.ndarray:
    """A d x d projection removing the directions in which a linear classifier tells the real sources apart.

    Iterative nullspace projection (Ravfogel et al. 2020): fit a one-vs-rest ridge classifier of the source
    (every source weighing the same) on the projected features, remove its directions, repeat. A fixed linear
    map, so it can sit in front of the head in an exported graph."""
    x = feats.reshape(len(feats), -1).astype(np.float64)
    x = x - x.mean(0)
    names = np.unique(sources)
    y = np.where(sources[:, None] == names[None, :], 1.0, -1.0)
    sw = np.zeros(len(x))
    for name in names:
        sw[sources == name] = 1.0 / (sources == name).sum()
    d = x.shape[1]
    basis = np.zeros((d, 0))
    scale = float(np.mean(np.sum(x * x, axis=1))) / d
    for _ in range(iterations):
        xp = x - (x @ basis) @ basis.T
        gram = xp.T @ (xp * sw[:, None]) + ridge * scale * np.eye(d)
        w = np.linalg.solve(gram, xp.T @ (y * sw[:, None]))
        w = w - basis @ (basis.T @ w)
        u, sv, _ = np.linalg.svd(w, full_matrices=False)
        new = u[:, sv > 1e-6 * max(sv.max(), 1e-30)]  # one-vs-rest columns are dependent: keep their span only
        if new.shape[1] == 0:
            break
        basis = np.linalg.qr(np.c_[basis, new])[0]
    return (np.eye(d) - basis @ basis.T).astype(np.float32)


def project(feats: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Features mapped through a d x d projection, shape kept."""
    return (feats.reshape(len(feats), -1) @ p).reshape(feats.shape).astype(np.float32)


def source_probe_accuracy(feats: np.ndarray, sources: np.ndarray, seed: int = 0) -> float:
    """How well a fresh linear probe reads the real source from features (half fit, half scored; balanced)."""
    x = feats.reshape(len(feats), -1).astype(np.float64)
    names = np.unique(sources)
    half = np.random.default_rng(seed).random(len(x)) < 0.5
    a = np.c_[x, np.ones(len(x))]
    y = np.where(sources[:, None] == names[None, :], 1.0, -1.0)
    coef = np.linalg.lstsq(a[half], y[half], rcond=None)[0]
    pred = names[np.argmax(a[~half] @ coef, axis=1)]
    truth = sources[~half]
    return float(np.mean([np.mean(pred[truth == n] == n) for n in names]))


def source_targets(labels: np.ndarray, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Class index of each real view's source (-1 for fakes), per-view weights that balance the sources, names."""
    names = sorted(np.unique(sources[labels < 0.5]).tolist())
    target = np.array([names.index(s) if lab < 0.5 else -1 for s, lab in zip(sources, labels)], np.int32)
    weight = np.zeros(len(target), np.float32)
    for k in range(len(names)):
        sel = target == k
        weight[sel] = 1.0 / (len(names) * sel.sum())
    return target, (weight * (target >= 0).sum()).astype(np.float32), names


def train_head(head_cfg, feats: np.ndarray, labels: np.ndarray, sources: np.ndarray, variant: Variant,
               select, epochs: int, batch: int, lr: float, seed: int):
    """A fresh head trained on cached features; returns it at its best epoch by `select(head)`, and the history."""
    import keras
    import tensorflow as tf

    from training.model import build_head

    keras.utils.set_random_seed(seed)
    head = build_head(head_cfg, tuple(feats.shape[1:]))
    hidden = keras.Model(head.input, [head.output, head.get_layer(f"dense_{len(head_cfg.dense_units) - 1}").output])
    source_index, src_w, names = source_targets(labels, sources)
    adversary = keras.Sequential([keras.Input((head_cfg.dense_units[-1],)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(len(names))], name="real_source_adversary")
    w = loss_weights(labels, sources, variant.real_balance, variant.fake_balance)
    opt_head, opt_adv = keras.optimizers.Adam(lr), keras.optimizers.Adam(lr)
    lam = tf.constant(variant.adversary_weight, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(x, y, sw, st, stw):
        with tf.GradientTape(persistent=True) as tape:
            logit, h = hidden(x, training=True)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logit[:, 0])
            loss = tf.reduce_sum(bce * sw) / tf.cast(tf.shape(x)[0], tf.float32)
            src_logits = adversary(h, training=True)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(st, 0), logits=src_logits)
            adv = tf.reduce_sum(ce * stw) / tf.maximum(1.0, tf.reduce_sum(stw))
            total = loss - lam * adv
        opt_head.apply_gradients(zip(tape.gradient(total, head.trainable_variables), head.trainable_variables))
        if variant.adversary_weight > 0:
            opt_adv.apply_gradients(zip(tape.gradient(adv, adversary.trainable_variables),
                                        adversary.trainable_variables))
        del tape
        return loss, adv

    rng = np.random.default_rng([seed, 3])
    best, best_weights, history = -np.inf, None, []
    for epoch in range(epochs):
        order = rng.permutation(len(labels))
        losses = []
        for k in range(0, len(order), batch):
            idx = np.sort(order[k:k + batch])
            losses.append([float(v) for v in step(feats[idx], labels[idx], w[idx], source_index[idx], src_w[idx])])
        score = select(head)
        history.append({"epoch": epoch + 1, "loss": float(np.mean([a for a, _ in losses])),
                        "adversary_ce": float(np.mean([b for _, b in losses])), "selection": score})
        if best_weights is None or score > best:  # a NaN score still leaves a head to return
            best, best_weights = score, head.get_weights()
    head.set_weights(best_weights)
    return head, history


@dataclass
class Features:
    """Cached and freshly computed pooled backbone features of one run."""

    train: np.ndarray
    train_labels: np.ndarray
    train_sources: np.ndarray
    val: np.ndarray
    val_samples: list
    whole: np.ndarray
    crops: np.ndarray
    crop_groups: object


def pooled_features(model, items: list, from_bytes: bool) -> np.ndarray:
    """Pooled backbone features of images decoded like `from_bytes` (files, or encoded bytes)."""
    import tensorflow as tf

    from training.calibrate import decoded_batches
    from training.train import pooled_backbone

    net = pooled_backbone(model)
    fn = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
    return np.concatenate([fn(b).numpy() for b in decoded_batches(items, from_bytes)]).astype(np.float32)


def cache_sources(train: list, cfg) -> tuple[dict, np.ndarray]:
    """The run's cache plan and the source of each of its views; refused when the plan holds self-blended views,
    whose label is not their source's."""
    from training.train import cache_plan

    plan = cache_plan(train, cfg)
    if plan["sbi"].any():
        raise ValueError("head levers need a cache without self-blended views (cache_sbi_views = 0)")
    by_path = {s.path: s.source for s in train}
    return plan, np.array([by_path[p] for p in plan["path"]])


def load_features(run: Path, cfg, source: str, cap: int, model, model_file: str = MODEL_FILE) -> Features:
    """The run's cache, and features of the held-out source's whole images and client crops, by `model` (loaded
    from the run's `model_file`).

    For another model file of the run (a fine-tuned checkpoint), its own cache is built beside the run's first."""
    from training.data import load_samples
    from training.evaluate import client_crops, prepare_client_crops
    from training.real_holdout import holdout_images
    from training.train import build_cache, prepare_samples, resolve

    train, val = prepare_samples(cfg)
    plan, sources = cache_sources(train, cfg)
    cache = run / "cache"
    if model_file != MODEL_FILE:
        own = run / f"features_{Path(model_file).stem}"
        build_cache(model, train, val, cfg, own, resume=True)
        cache = own / "cache"
    feats = np.load(cache / "train_features.npy", mmap_mode="r")
    if len(feats) != len(plan["label"]):
        raise ValueError(f"cache has {len(feats)} views, the config's plan {len(plan['label'])}: not this run's cache")
    images = holdout_images(load_samples(resolve(cfg.data)), source, cap, cfg.seed)
    whole = pooled_features(model, [s.path for s in images], from_bytes=False)
    _, make_crops = client_crops()
    groups = prepare_client_crops([Path(s.path).read_bytes() for s in images], make_crops)
    crops = pooled_features(model, groups.flat, from_bytes=True)
    return Features(np.asarray(feats, np.float32), plan["label"], sources,
                    np.load(cache / "val_features.npy").astype(np.float32), val, whole, crops, groups)


def logits_of(head, feats: np.ndarray) -> np.ndarray:
    """Raw head logits, in order."""
    return head.predict(feats, batch_size=1024, verbose=0)[:, 0].astype(np.float64)


def run_head(model):
    """The run's own trained head on pooled features, returning logits like a fresh head: the reference row."""
    from training.train import head_tail

    return head_tail(model, sigmoid=False)


def calibrated_validation(head, f: Features) -> tuple[object, dict]:
    """The head calibrated on the run's validation features like a release, and its AUCs per fake source and
    accuracy per real source there."""
    from training.real_holdout import calibrate_run
    from training.train import fake_source_aucs, per_source_metrics, source_auc

    val_logits = logits_of(head, f.val)
    cal = calibrate_run(f.val_samples, val_logits)
    per = per_source_metrics(f.val_samples, cal.probs(val_logits), cal.threshold)
    fakes = fake_source_aucs(per)
    return cal, {"threshold": round(cal.threshold, 4), "source_auc": round(source_auc(per), 4),
                 "overall_auc": round(per["overall"]["auc"], 4), **{str(k): round(v, 4) for k, v in fakes.items()},
                 **{f"{k}_accuracy": round(v["accuracy"], 4) for k, v in per.items()
                    if isinstance(v, dict) and k not in fakes and k != "overall"}}


def validation_report(head, f: Features) -> dict:
    """The validation figures of `calibrated_validation` alone."""
    return calibrated_validation(head, f)[1]


def evaluate_head(head, f: Features) -> dict:
    """Calibrate on the run's validation features and measure false alarms on the held-out source."""
    from training.real_holdout import false_alarms, held_out_aucs

    cal, validation = calibrated_validation(head, f)
    whole = logits_of(head, f.whole)
    crop_probs = f.crop_groups.most_suspicious(cal.probs(logits_of(head, f.crops)))
    return {"threshold": round(cal.threshold, 4),
            "whole_image": false_alarms(cal.probs(whole), cal.threshold, cal.band),
            "client_crop": false_alarms(crop_probs, cal.threshold, cal.band),
            "held_out_vs_val_fakes_auc": held_out_aucs(f.val_samples, logits_of(head, f.val), whole),
            "validation": validation}


def levers_markdown(reports: list[dict]) -> str:
    """One row per variant, one column per held-out source: FPR whole / crop, then validation DFDC and StyleGAN AUC."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    names = [k for k in reports[0] if isinstance(reports[0][k], dict)]
    head = "| variant | " + " | ".join(f"{r['held_out']} held out: FPR whole / crop (val DFDC, StyleGAN AUC)"
                                        for r in reports) + " |"
    lines = [head, "|---|" + "---|" * len(reports)]
    for name in names:
        cells = []
        for r in reports:
            v = r.get(name)
            cells.append("-" if v is None else
                         f"{pct(v['whole_image']['false_positive_rate'])} / {pct(v['client_crop']['false_positive_rate'])}"
                         f" ({v['validation'].get('dfdc', float('nan')):.3f}, "
                         f"{v['validation'].get('mobilestylegan', float('nan')):.3f})")
        lines.append(f"| {'the run' + chr(39) + 's own head' if name == 'run' else name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Train every variant's head on the run's cache, score it, print one line each, write head_levers.json."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", nargs="+", metavar="JSON", help="only print the Markdown table of these head_levers.json")
    p.add_argument("--run", help="a leave-one-real-out run directory (config.json, cache/, model.keras)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="comma-separated (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--cap", type=int, default=400, help="held-out images scored")
    p.add_argument("--model", default=MODEL_FILE, help="the run's model file whose backbone gives the features "
                   "(default: %(default)s; e.g. checkpoints/stage2_best.keras, cached in features_<name>/)")
    args = p.parse_args(argv)
    if args.table:
        print(levers_markdown([json.loads(Path(j).read_text()) for j in args.table]), end="")
        return
    if not args.run:
        p.error("--run is required unless --table is given")
    import keras  # after --table, which needs no TensorFlow

    from training.model import ModelConfig
    from training.train import TrainConfig, model_config

    run = Path(args.run)
    train_cfg = TrainConfig.from_json(run / "config.json")
    (source,) = train_cfg.exclude_real_sources
    model = keras.models.load_model(run / args.model, compile=False)
    f = load_features(run, train_cfg, source, args.cap, model, args.model)
    head_cfg: ModelConfig = model_config(train_cfg)

    out = run / ("head_levers.json" if args.model == MODEL_FILE else f"head_levers_{Path(args.model).stem}.json")
    results = json.loads(out.read_text()) if out.exists() else {}
    results["held_out"] = source
    results["model"] = args.model
    results["run"] = evaluate_head(run_head(model), f)
    print(f"run's own head: {results['run']}", flush=True)
    for name in [v for v in args.variants.split(",") if v]:
        variant = Variant.parse(name)
        fp = with_views(f, *portrait_views(run, train_cfg, variant.portrait_share, model, args.model))
        fv, extra = with_variant_features(fp, variant)
        head, history = train_head(head_cfg, fv.train, fv.train_labels, fv.train_sources, variant,
                                   lambda h: selection(h, fv, train_cfg.select_metric), args.epochs, train_cfg.frozen_batch,
                                   train_cfg.frozen_lr, train_cfg.seed)
        results[name] = {**dataclasses.asdict(variant), **extra, **evaluate_head(head, fv), "history": history}
        r = results[name]
        print(f"{name}: FPR whole {r['whole_image']['false_positive_rate']:.3f} crop "
              f"{r['client_crop']['false_positive_rate']:.3f} | held out vs val fakes AUC "
              f"{r['held_out_vs_val_fakes_auc']} | val {r['validation']} {extra}", flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")


def selection(head, f: Features, metric: str) -> float:
    """The run's selection metric (`select_metric`) on its validation features."""
    from training.metrics import sigmoid
    from training.train import per_source_metrics, selection_score

    return selection_score(per_source_metrics(f.val_samples, sigmoid(logits_of(head, f.val))), metric)


def portrait_views(run: Path, cfg, share: float, model, model_file: str = MODEL_FILE) -> tuple:
    """Features, labels and sources of one portrait-style view of a seeded share of the run's training images,
    computed by `model`'s backbone (loaded from the run's `model_file`, which names the file kept beside the run)."""
    if share <= 0:
        return np.zeros((0,), np.float32), np.zeros(0, np.float32), np.zeros(0, str)
    out = run / f"portrait_views_{Path(model_file).stem}_{share:g}.npz"
    if out.exists():
        z = np.load(out)
        return z["features"], z["label"], z["source"]
    from training.train import _plan_rows, make_dataset, pooled_backbone, prepare_samples

    train, _ = prepare_samples(cfg)
    rng = np.random.default_rng([cfg.seed, 11])
    chosen = [train[i] for i in np.sort(rng.choice(len(train), max(1, round(share * len(train))), replace=False))]
    plan = _plan_rows(chosen, np.arange(len(chosen)), np.zeros(len(chosen), bool), rng.integers(0, 2**62, len(chosen)))
    ds = make_dataset(plan, dataclasses.replace(cfg, portrait_prob=1.0), train=True, batch=64).map(lambda x, y: x)
    feats = pooled_backbone(model).predict(ds, verbose=0).astype(np.float32)
    sources = np.array([s.source for s in chosen])
    np.savez(out, features=feats, label=plan["label"], source=sources)
    return feats, plan["label"], sources


def with_views(f: Features, feats: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> Features:
    """The features with extra training views appended (unchanged when there are none)."""
    if not len(labels):
        return f
    return dataclasses.replace(f, train=np.concatenate([f.train, feats.reshape((-1,) + f.train.shape[1:])]),
                               train_labels=np.concatenate([f.train_labels, labels]),
                               train_sources=np.concatenate([f.train_sources, sources]))


def with_variant_features(f: Features, variant: Variant) -> tuple[Features, dict]:
    """The features a variant's head sees (projected for a nullspace variant), and what the projection did."""
    if not variant.nullspace_iterations:
        return f, {}
    reals = f.train_labels < 0.5
    p = source_nullspace(f.train[reals], f.train_sources[reals], variant.nullspace_iterations)
    val_reals = np.array([s.label == 0 for s in f.val_samples])
    val_sources = np.array([s.source for s in f.val_samples])[val_reals]
    fv = dataclasses.replace(f, train=project(f.train, p), val=project(f.val, p), whole=project(f.whole, p),
                             crops=project(f.crops, p))
    return fv, {"directions_removed": int(round(p.shape[0] - np.trace(p))),
                "val_source_probe_before": round(source_probe_accuracy(f.val[val_reals], val_sources), 4),
                "val_source_probe_after": round(source_probe_accuracy(fv.val[val_reals], val_sources), 4)}


if __name__ == "__main__":
    main()
