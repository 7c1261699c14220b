"""Train the detector in two stages, reproducibly, and write everything beside the checkpoints.

Run: python -m training.train --config training/configs/shipped.json [--out runs/NAME] [--resume]

Stage 1 trains the head on a cache of frozen-backbone features (several augmented views per
image, self-blended pseudo-fakes among them), which is fast on a CPU. Stage 2 optionally
fine-tunes the top blocks at a low learning rate through the real image pipeline. Both stages
keep their best epoch by the selection metric and stop early (stage 2's best model, patience and Adam state carry
across --resume). The run directory gets config.json,
env.json, history.json, checkpoints/, stage1.keras and the final model.keras.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from training.augment import AugmentConfig, augment
from training.data import Sample, limit_per_source, load_samples, split_by_group, summarize
from training.paths import REPO_ROOT, recorded, resolve

DEFAULT_DATA = "../shared/data/faces/manifest.csv"
DEFAULT_WEIGHTS = "../shared/weights/mobilenet_v2_0.35_224_imagenet_notop.weights.h5"


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as config.json and loadable from it."""

    data: str = DEFAULT_DATA
    """A manifest.csv, a Kaggle Train/Validation/Test folder or a flat real/fake folder (relative: to the repo root)."""
    val_fraction: float = 0.15
    seed: int = 1234
    alpha: float = 0.35
    weights: str | None = DEFAULT_WEIGHTS
    """'imagenet', a local .weights.h5 (relative: to the repo root) or null for random weights."""
    backbone: str = "mobilenet_v2"
    """'mobilenet_v2' (alpha and weights above), or a complete Keras feature-extractor file (relative: to the repo root)."""
    scaling: str = "minus1_1"
    """The backbone's input scaling (training.model.SCALINGS): minus1_1, lite or bgr_imagenet."""
    input_size: int = 224
    """The backbone's working side (the served input stays 224; the graph resizes)."""
    pool_size: int | None = 2
    """The head's MaxPooling2D window; null = over the whole feature map (global max)."""
    dense_units: tuple[int, ...] = (128,)
    dropout: float = 0.4
    class_weight: bool = False
    """Weigh each class by the inverse of its share of the training views (both stages)."""
    max_per_source: int | None = None
    """At most this many images per (source, label), for quick runs."""
    max_val: int | None = None
    """At most this many validation images per (source, label) during training (speed)."""
    exclude_fake_sources: list[str] = field(default_factory=list)
    """Fake sources left out of training and validation (leave-one-method-out)."""
    exclude_real_sources: list[str] = field(default_factory=list)
    """Real sources left out of training and validation (leave-one-real-source-out: their false-alarm rate)."""
    source_repeats: dict = field(default_factory=dict)
    """How many times each pass of stage 2's stream shows a source's images (default 1): e.g. {"ffhq": 4} so a
    small real source weighs as much as the fake source it must be told from."""
    stream_real_balance: float = 0.0
    """Stage 2's stream inside the real class: a source of n images (after source_repeats) is drawn ~ n^(1-P)
    times, so P=1 shows every real source equally often (no source is 'the real look'); 0 = off, the classes'
    shares are kept either way."""
    stream_fake_balance: float = 0.0
    """The same for the fake sources."""
    sbi_fraction: float = 0.25
    """Share of each training batch that is self-blended pseudo-fakes made from real images (0 = off)."""
    crop_jitter: bool = True
    augment: bool = True
    jpeg_prob: float = 0.75
    jpeg_quality: tuple[int, int] = (30, 95)
    rescale_prob: float = 0.5
    rescale_range: tuple[float, float] = (0.3, 0.9)
    """Down-and-up scaling factor range."""
    blur_prob: float = 0.2
    noise_prob: float = 0.2
    colour_prob: float = 0.5
    portrait_prob: float = 0.0
    """Share of training views re-rendered in FFHQ's portrait look first (training.augment.portrait_style): the
    lever for a real source whose look the training set shows only on fakes (leave-FFHQ-out)."""
    flip: bool = True
    # Stage 1: frozen backbone on cached features.
    cache_views: int = 2
    """Augmented views per training image in the feature cache."""
    cache_sbi_views: int = 1
    """Self-blended views per real training image in the feature cache."""
    frozen_epochs: int = 40
    frozen_lr: float = 1e-3
    frozen_batch: int = 64
    frozen_patience: int = 6
    # Stage 2: fine-tune the top blocks through the image pipeline.
    finetune_epochs: int = 0
    finetune_lr: float = 5e-5
    finetune_blocks: int = 0
    """How many of MobileNetV2's top inverted-residual blocks to unfreeze (with Conv_1); 0 = skip stage 2;
    more than the network has (e.g. 99) = the whole backbone, stem included (BatchNorm stays frozen)."""
    finetune_warmup_steps: int = 0
    """Linear warm-up from finetune_lr/10 over this many steps (0 = none)."""
    finetune_cosine: bool = False
    """Cosine-decay the fine-tune learning rate to zero over the planned steps (after the warm-up)."""
    finetune_batch: int = 32
    finetune_steps_per_epoch: int = 100
    finetune_patience: int = 4
    finetune_max_minutes: float | None = None
    """Stop stage 2 before an epoch that would end after this wall time (the best checkpoint is kept)."""
    keep_epochs: int = 0
    """Keep the weights of this many of the last fine-tune epochs (checkpoints/epochs/), for `training.average`."""
    finetune_overrides: dict = field(default_factory=dict)
    """Config fields that differ in stage 2 (e.g. milder augmentation or another sbi_fraction)."""
    select_metric: str = "val_auc"
    """What early stopping, the best checkpoint and the stage-1-vs-stage-2 choice maximise: 'val_auc' (pooled over
    sources), 'val_source_auc' (mean over fake sources of AUC against the reals of the same source where there
    are any, else against all reals: not rewarded for telling sources apart), 'val_source_sbi_auc' (the same
    mean with self-blended fakes of the validation reals as one more source: for leave-one-out runs, whose
    remaining fake sources may be too easy to choose an epoch by) or 'val_source_real_auc' (the fake sources'
    AUCs and each real-only source's AUC against all fakes, averaged: false alarms on one kind of real photo
    count too)."""
    workers: int = 2
    verbose: int = 1

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainConfig":
        """Read a config file; unknown keys are an error so typos do not pass silently."""
        data = json.loads(Path(path).read_text())
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown config keys in {path}: {sorted(unknown)}")
        for key in ("jpeg_quality", "rescale_range", "dense_units"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def to_json(self) -> str:
        """The config as pretty JSON."""
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def augment_config(self) -> AugmentConfig:
        """The augmentation switches of this run."""
        return AugmentConfig(enabled=self.augment, crop_jitter=self.crop_jitter, flip=self.flip,
                             rescale_prob=self.rescale_prob, rescale_range=tuple(self.rescale_range),
                             blur_prob=self.blur_prob, noise_prob=self.noise_prob,
                             colour_prob=self.colour_prob, jpeg_prob=self.jpeg_prob,
                             jpeg_quality=tuple(self.jpeg_quality), portrait_prob=self.portrait_prob)


def log(msg: str) -> None:
    """A timestamped progress line (the log is read by people watching a long run)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# Data ---------------------------------------------------------------------------------------

def prepare_samples(cfg: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """Load, split by group, and apply the run's limits and leave-out list."""
    samples = load_samples(resolve(cfg.data))
    train, val = split_by_group(samples, cfg.val_fraction, cfg.seed)
    train, val = (left_out(part, cfg) for part in (train, val))
    train = limit_per_source(train, cfg.max_per_source, cfg.seed)
    val = limit_per_source(val, cfg.max_val or (cfg.max_per_source and max(4, cfg.max_per_source // 4)), cfg.seed)
    return train, val


def left_out(samples: list[Sample], cfg: TrainConfig) -> list[Sample]:
    """The samples without the run's left-out fake and real sources."""
    fakes, reals = set(cfg.exclude_fake_sources), set(cfg.exclude_real_sources)
    return [s for s in samples if s.source not in (fakes if s.label == 1 else reals)]


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weights (mean weight 1 over the views), so neither class dominates the loss."""
    labels = np.asarray(labels).astype(int)
    n, pos = len(labels), int(labels.sum())
    if pos == 0 or pos == n:
        return {0: 1.0, 1: 1.0}
    return {0: n / (2.0 * (n - pos)), 1: n / (2.0 * pos)}


def _plan_rows(samples: list[Sample], idx: np.ndarray, sbi: np.ndarray, seeds: np.ndarray) -> dict:
    """Columns of a tf.data plan: path, label, whether to self-blend, per-view seed."""
    paths = np.array([samples[i].path for i in idx], dtype=object)
    labels = np.array([1 if (sbi[k] or samples[i].label) else 0 for k, i in enumerate(idx)], np.float32)
    return {"path": paths.astype(str), "label": labels, "sbi": sbi.astype(bool), "seed": seeds.astype(np.int64)}


def cache_plan(samples: list[Sample], cfg: TrainConfig) -> dict:
    """Views for the feature cache: `cache_views` augmented views of every image and SBI views of every real."""
    rng = np.random.default_rng([cfg.seed, 1])
    n = len(samples)
    idx = [np.arange(n)] * max(1, cfg.cache_views)
    sbi = [np.zeros(n, bool)] * max(1, cfg.cache_views)
    if cfg.sbi_fraction > 0 and cfg.cache_sbi_views > 0:
        reals = np.array([i for i, s in enumerate(samples) if s.label == 0])
        idx += [reals] * cfg.cache_sbi_views
        sbi += [np.ones(len(reals), bool)] * cfg.cache_sbi_views
    idx, sbi = np.concatenate(idx), np.concatenate(sbi)
    seeds = rng.integers(0, 2**62, len(idx))
    return _plan_rows(samples, idx, sbi, seeds)


def source_balanced(weights: np.ndarray, labels: np.ndarray, sources: np.ndarray, real_power: float = 0.0,
                    fake_power: float = 0.0) -> np.ndarray:
    """Weights rescaled so that inside each class a source of mass m weighs ~ m^(1-power), each class keeping its
    total: the lever against 'a real photo looks like the big real source'."""
    w = np.asarray(weights, np.float64).copy()
    for label, power in ((0, real_power), (1, fake_power)):
        cls = (np.asarray(labels) > 0.5) == bool(label)
        if power <= 0 or not cls.any():
            continue
        total = w[cls].sum()
        for name in np.unique(sources[cls]):
            sel = cls & (sources == name)
            w[sel] *= w[sel].sum() ** -power
        w[cls] *= total / w[cls].sum()
    return w


def stream_weights(samples: list[Sample], cfg: TrainConfig) -> np.ndarray:
    """Each image's expected showings per pass of stage 2's stream: `source_repeats`, then the source balance."""
    w = np.array([float(cfg.source_repeats.get(s.source, 1)) for s in samples])
    labels = np.array([s.label for s in samples])
    sources = np.array([s.source for s in samples])
    return source_balanced(w, labels, sources, cfg.stream_real_balance, cfg.stream_fake_balance)


def stream_plan(samples: list[Sample], cfg: TrainConfig, n_items: int) -> dict:
    """A deterministic stream for fine-tuning: shuffled passes over the data (drawn by `stream_weights` when a
    source balance is set) with SBI fakes mixed in at `sbi_fraction`."""
    rng = np.random.default_rng([cfg.seed, 2])
    reals = np.array([i for i, s in enumerate(samples) if s.label == 0])
    if cfg.stream_real_balance > 0 or cfg.stream_fake_balance > 0:
        w = stream_weights(samples, cfg)
        idx = rng.choice(len(samples), n_items, p=w / w.sum())
    else:  # the plain passes, unchanged so earlier runs resume on the same stream
        one_pass = np.repeat(np.arange(len(samples)), stream_weights(samples, cfg).astype(int))
        order: list[int] = []
        while len(order) < n_items:
            order.extend(one_pass[rng.permutation(len(one_pass))].tolist())
        idx = np.array(order[:n_items])
    sbi = np.zeros(n_items, bool)
    if cfg.sbi_fraction > 0 and len(reals):
        sbi = rng.random(n_items) < cfg.sbi_fraction
        idx[sbi] = rng.choice(reals, int(sbi.sum()))
    seeds = rng.integers(0, 2**62, n_items)
    return _plan_rows(samples, idx, sbi, seeds)


def make_dataset(plan: dict, cfg: TrainConfig, train: bool, batch: int, blend_only: bool = False):
    """tf.data: read, decode (the serving ops), augment/self-blend in numpy, resize (the serving op), batch.

    `blend_only` self-blends the plan's SBI rows and changes nothing else (clean validation pseudo-fakes)."""
    import cv2
    import tensorflow as tf

    from training.preprocess import resize

    cv2.setNumThreads(1)  # the tf.data workers already use every core; OpenCV's own threads only contend
    aug_cfg = AugmentConfig(enabled=False) if blend_only else cfg.augment_config()

    def _augment(img, sbi, seed):
        rng = np.random.default_rng(int(seed))
        return augment(img, rng, aug_cfg, make_fake=bool(sbi))

    def _load(row):
        img = tf.io.decode_image(tf.io.read_file(row["path"]), channels=3, expand_animations=False, dtype=tf.uint8)
        if train or blend_only:
            img = tf.numpy_function(_augment, [img, row["sbi"], row["seed"]], tf.uint8, stateful=False)
        img.set_shape([None, None, 3])
        return resize(tf.cast(img, tf.float32)), row["label"]

    options = tf.data.Options()
    options.deterministic = True
    ds = tf.data.Dataset.from_tensor_slices(plan).with_options(options)
    ds = ds.map(_load, num_parallel_calls=max(1, cfg.workers), deterministic=True)
    return ds.batch(batch).prefetch(2)


def clean_plan(samples: list[Sample]) -> dict:
    """Validation views: decode and resize only, exactly what `from_bytes` does."""
    n = len(samples)
    return _plan_rows(samples, np.arange(n), np.zeros(n, bool), np.zeros(n, np.int64))


def sbi_plan(samples: list[Sample], seed: int) -> dict:
    """Validation pseudo-fakes: one self-blended view of every real, with fixed seeds (the same every epoch)."""
    reals = np.array([i for i, s in enumerate(samples) if s.label == 0], dtype=np.int64)
    seeds = np.random.default_rng([seed, 4]).integers(0, 2**62, len(reals))
    return _plan_rows(samples, reals, np.ones(len(reals), bool), seeds)


# Metrics ------------------------------------------------------------------------------------

def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank statistic (ties averaged); nan when one class is missing."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def per_source_metrics(samples: list[Sample], probs: np.ndarray, threshold: float = 0.5) -> dict:
    """AUC and accuracy overall and per fake source against the reals (and per source's own reals)."""
    labels = np.array([s.label for s in samples])
    sources = np.array([s.source for s in samples])
    out = {"overall": {"n": len(samples), "auc": auc(labels, probs),
                       "accuracy": float(((probs >= threshold) == labels).mean())}}
    reals = labels == 0
    for src in sorted(set(sources)):
        mask = sources == src
        entry = {"n": int(mask.sum()), "accuracy": float(((probs[mask] >= threshold) == labels[mask]).mean())}
        if labels[mask].min() != labels[mask].max():
            entry["auc_same_source"] = auc(labels[mask], probs[mask])
        if labels[mask].max() == 1:
            sel = (mask & (labels == 1)) | reals
            entry["auc_vs_all_reals"] = auc(labels[sel], probs[sel])
        else:  # a real-only source: how far its photos sit from every fake (its false alarms, threshold-free)
            sel = mask | (labels == 1)
            entry["auc_vs_all_fakes"] = auc(labels[sel], probs[sel])
        out[src] = entry
    return out


def fake_source_aucs(metrics: dict) -> dict:
    """Each fake source's AUC: against the reals of the same source where it has any, else against all reals."""
    return {src: entry.get("auc_same_source", entry["auc_vs_all_reals"]) for src, entry in metrics.items()
            if isinstance(entry, dict) and "auc_vs_all_reals" in entry}


def _mean_known(values) -> float:
    """Mean of the values that are not NaN (NaN when none is)."""
    vals = [v for v in values if v == v]
    return float(np.mean(vals)) if vals else float("nan")


def source_auc(metrics: dict) -> float:
    """Mean over fake sources of the same-source AUC (or vs all reals for fake-only sources)."""
    return _mean_known(fake_source_aucs(metrics).values())


def source_real_auc(metrics: dict) -> float:
    """The fake sources' AUCs and each real-only source's AUC against all fakes, averaged: a fine-tune that halves
    the false alarms on one kind of real photo counts, where `source_auc` sees only the fake sources."""
    reals = [entry["auc_vs_all_fakes"] for entry in metrics.values()
             if isinstance(entry, dict) and "auc_vs_all_fakes" in entry]
    return _mean_known([*fake_source_aucs(metrics).values(), *reals])


SOURCE_METRICS = {"val_source_auc": source_auc, "val_source_sbi_auc": source_auc,
                  "val_source_real_auc": source_real_auc}
"""Selection metrics computed from per-source validation metrics (the rest are Keras's own, e.g. val_auc)."""


def selection_score(metrics: dict, metric: str) -> float:
    """The number a run maximises, from val_metrics output."""
    return SOURCE_METRICS[metric](metrics) if metric in SOURCE_METRICS else metrics["overall"]["auc"]


def val_metrics(model, val: list[Sample], cfg: TrainConfig) -> dict:
    """Per-source validation metrics, with a 'self_blended' pseudo-source when the run selects by it."""
    probs = predict_val(model, val, cfg)
    metrics = per_source_metrics(val, probs)
    if cfg.select_metric == "val_source_sbi_auc":
        fake = predict_plan(model, sbi_plan(val, cfg.seed), cfg, blend_only=True)
        real = probs[np.array([s.label == 0 for s in val])]
        value = auc(np.r_[np.zeros(len(real)), np.ones(len(fake))], np.r_[real, fake])
        metrics["self_blended"] = {"n": int(len(fake)), "accuracy": float((fake >= 0.5).mean()),
                                   "auc_same_source": value, "auc_vs_all_reals": value}
    return metrics


class SourceAUC:
    """A callback factory: after each epoch, score the clean validation set and log val_source_auc."""

    @staticmethod
    def make(val: list[Sample], cfg: "TrainConfig"):
        import keras

        class _SourceAUC(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                m = val_metrics(self.model, val, cfg)
                score = selection_score(m, cfg.select_metric)
                if logs is not None:
                    logs[cfg.select_metric] = score
                log(f"epoch {epoch + 1}: {cfg.select_metric} {score:.4f} "
                    + " ".join(f"{k}={v:.4f}" for k, v in fake_source_aucs(m).items()))

        return _SourceAUC()


# Model pieces -------------------------------------------------------------------------------

def model_config(cfg: TrainConfig):
    """The ModelConfig of this run."""
    from training.model import MOBILENET_V2, ModelConfig

    backbone = cfg.backbone if cfg.backbone == MOBILENET_V2 else resolve(cfg.backbone)
    return ModelConfig(alpha=cfg.alpha, weights=resolve(cfg.weights), backbone=backbone, scaling=cfg.scaling,
                       input_size=cfg.input_size, pool_size=cfg.pool_size, dense_units=tuple(cfg.dense_units),
                       dropout=cfg.dropout)


def pooled_backbone(model):
    """Pixels -> backbone features after the head's parameter-free max-pool (what the cache stores)."""
    import keras

    from training.model import backbone_of, head_of

    head = head_of(model)
    pool = head.get_layer("max_pool")
    pixels = keras.Input(model.input_shape[1:], name="image")
    return keras.Model(pixels, pool(backbone_of(model)(pixels)), name="pooled_backbone")


def head_tail(model, sigmoid: bool = True):
    """The head's trainable part on pooled features, sharing weights with the full model, with a sigmoid (or the
    raw logit, `sigmoid=False`)."""
    import keras

    from training.model import head_of

    head = head_of(model)
    layers_after = head.layers[head.layers.index(head.get_layer("max_pool")) + 1:]
    shape = head.get_layer("max_pool").output.shape[1:]
    x = inp = keras.Input(shape, name="pooled")
    for layer in layers_after:
        x = layer(x)
    return keras.Model(inp, keras.layers.Activation("sigmoid")(x) if sigmoid else x, name="head_tail")


def trainable_from_blocks(model, n_blocks: int) -> int | None:
    """Index (inside the backbone) of the first layer of the top `n_blocks` numbered blocks; None when 0.

    Blocks are MobileNetV2's `block_N_*` or MobileNetV1's `conv_dw_N`/`conv_pw_N` layers; a backbone without
    numbered blocks is fine-tuned whole."""
    from training.model import backbone_of

    if n_blocks <= 0:
        return None
    net = backbone_of(model).layers[-1]
    numbers = [_block_number(layer.name) for layer in net.layers]
    blocks = sorted({n for n in numbers if n is not None})
    if n_blocks > len(blocks):
        return 0
    first = blocks[max(0, len(blocks) - n_blocks)]
    return next(i for i, n in enumerate(numbers) if n == first)


def _block_number(name: str) -> int | None:
    """The block a backbone layer belongs to, from its Keras name (None for stem and head layers)."""
    match = re.match(r"^(?:block|conv_dw|conv_pw)_(\d+)_?", name)
    return int(match.group(1)) if match else None


def finetune_schedule(cfg: TrainConfig):
    """The stage-2 learning rate: constant, or warm-up then cosine decay over the planned steps."""
    import keras

    total = cfg.finetune_epochs * cfg.finetune_steps_per_epoch
    if not cfg.finetune_cosine and not cfg.finetune_warmup_steps:
        return cfg.finetune_lr
    warmup = min(cfg.finetune_warmup_steps, max(0, total - 1))
    if not cfg.finetune_cosine:
        return keras.optimizers.schedules.PolynomialDecay(cfg.finetune_lr / 10, max(1, warmup), cfg.finetune_lr,
                                                          power=1.0)
    return keras.optimizers.schedules.CosineDecay(cfg.finetune_lr / 10 if warmup else cfg.finetune_lr,
                                                  max(1, total - warmup), alpha=0.0,
                                                  warmup_target=cfg.finetune_lr if warmup else None,
                                                  warmup_steps=warmup)


def compile_model(model, lr) -> None:
    """Adam + binary cross-entropy, with AUC and accuracy; `lr` is a number or a Keras schedule."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")])


# Run bookkeeping ----------------------------------------------------------------------------

def environment(cfg: TrainConfig) -> dict:
    """Versions, platform and seeds, for env.json."""
    import cv2
    import keras
    import tensorflow as tf

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "python": sys.version, "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
        "opencv": cv2.__version__, "git_commit": commit, "seed": cfg.seed,
        "argv": [recorded(sys.argv[0]), *sys.argv[1:]],
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


class TimeBudget:
    """A Keras callback factory: stop before an epoch that would overrun the wall-time budget."""

    @staticmethod
    def make(max_minutes: float | None, started: float):
        import keras

        class _Budget(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.time()

            def on_epoch_end(self, epoch, logs=None):
                if max_minutes is None:
                    return
                took = time.time() - self._t
                if time.time() - started + took > max_minutes * 60:
                    log(f"time budget of {max_minutes} min reached after epoch {epoch + 1}; stopping stage 2")
                    self.model.stop_training = True

        return _Budget()


class BestCheckpoint:
    """A callback factory: save the whole model when the score beats the best so far (the best of the sessions
    before a resume included), written whole, so a kill during the write keeps the previous best."""

    @staticmethod
    def make(path: Path, metric: str, best: float | None):
        import keras

        class _Best(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best = float("-inf") if best is None else float(best)

            def on_epoch_end(self, epoch, logs=None):
                score = (logs or {}).get(metric)
                if score is not None and float(score) > self.best:
                    self.best = float(score)
                    write_whole(path, self.model.save)

        return _Best()


class Progress:
    """A callback factory: one line per epoch with its time and an ETA for the stage's remaining epochs."""

    @staticmethod
    def make(stage: str, epochs: int):
        import keras

        class _Progress(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.time()
                self._times = getattr(self, "_times", [])

            def on_epoch_end(self, epoch, logs=None):
                took = time.time() - self._t
                self._times.append(took)
                eta = (epochs - epoch - 1) * float(np.mean(self._times))
                shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
                log(f"{stage} epoch {epoch + 1}/{epochs}: {took:.0f} s, ETA {eta / 60:.1f} min (if not stopped early) {shown}")

        return _Progress()


class StateSaver:
    """A callback factory that records the last finished epoch (and its weights) for --resume."""

    @staticmethod
    def make(out_dir: Path, stage: str, keep: int = 0):
        import keras

        class _Saver(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                ckpt = out_dir / "checkpoints" / f"{stage}_last.weights.h5"
                opt = save_optimizer(self.model, out_dir / "checkpoints" / f"{stage}_last.optimizer.npz")
                write_whole(ckpt, self.model.save_weights)
                if keep > 0:
                    keep_epoch(ckpt, out_dir / "checkpoints" / "epochs", f"{stage}_epoch", epoch + 1, keep)
                state = _read_state(out_dir)
                state[stage] = {"last_epoch": epoch + 1, "weights": str(ckpt), "optimizer": str(opt)}
                hist = state.setdefault(f"{stage}_history", [])
                hist.append({k: float(v) for k, v in (logs or {}).items()})
                _write_state(out_dir, state)

        return _Saver()


def keep_epoch(weights: Path, folder: Path, prefix: str, epoch: int, keep: int) -> Path:
    """Copy an epoch's weights aside for averaging and drop the copies older than the last `keep` epochs."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = write_whole(folder / f"{prefix}_{epoch:03d}.weights.h5", lambda tmp: shutil.copyfile(weights, tmp))
    for old in folder.glob(f"{prefix}_*.weights.h5"):
        number = old.name[len(prefix) + 1:].split(".")[0]
        if number.isdigit() and int(number) <= epoch - keep:
            old.unlink()
    return kept


def write_whole(path: Path, write) -> Path:
    """Write through a temporary name (same suffixes, which Keras and NumPy require) and rename: a session killed
    mid-write leaves the previous file, never half of one."""
    stem, _, suffixes = path.name.partition(".")
    tmp = path.with_name(f"{stem}.tmp.{suffixes}")
    write(tmp)
    os.replace(tmp, path)
    return path


def save_optimizer(model, path: Path) -> Path:
    """Keep Adam's moments and step count beside the resume weights."""
    return write_whole(path, lambda tmp: np.savez(tmp, *[np.asarray(v.numpy()) for v in model.optimizer.variables]))


class ResumeMismatch(ValueError):
    """Adam's saved state does not fit the model being resumed (silently zeroing it undid epochs of two runs); a
    ValueError so that every entry point that resumes a run (training.evaluate's leave-one-out too) reports it in
    one line."""


def restore_optimizer(model, path: str | None) -> bool:
    """Put back Adam's state on resume: with zero moments at a late step count (no bias correction left) the
    steps of the first resumed epoch are 2.7-6.6x too large and undo epochs of fine-tuning. False when there is no
    file; ResumeMismatch when there is one that does not fit."""
    if not path or not Path(path).exists():
        return False
    saved = np.load(path)
    values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    model.optimizer.build(model.trainable_variables)
    variables = model.optimizer.variables
    if len(values) != len(variables) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise ResumeMismatch(
            f"{path} holds Adam's state for {len(values)} variables, the model being resumed has {len(variables)} "
            f"(or other shapes): its trainable layers differ from the session that saved it. Resume with the same "
            f"config and code, or delete that file to restart Adam from zero moments (the first resumed epoch then "
            f"takes oversized steps).")
    for v, a in zip(variables, values):
        v.assign(a)
    return True


def resume_from(model, saved: dict, steps_per_epoch: int) -> int:
    """Load the last finished epoch's weights and Adam's state; returns that epoch. The step count follows the
    weights, because the two files are written one after the other and a kill between them leaves Adam one epoch
    ahead."""
    epoch = int(saved["last_epoch"])
    model.load_weights(saved["weights"])
    step = epoch * steps_per_epoch
    if not restore_optimizer(model, saved.get("optimizer")):
        log("stage 2: no optimizer state saved with the last epoch; Adam restarts from zero moments")
    elif int(model.optimizer.iterations.numpy()) != step:
        log(f"stage 2: Adam's saved state is from step {int(model.optimizer.iterations.numpy())}, the weights from "
            f"step {step}; its moments are kept and its step count set to the weights'")
    model.optimizer.iterations.assign(step)  # the learning-rate schedule resumes where the weights left off
    return epoch


def early_stop_state(history: list[dict], metric: str) -> tuple[float | None, int]:
    """The best score so far and the epochs since it, so that patience counts across resumed sessions as in one
    run (Keras's EarlyStopping starts from zero at every fit)."""
    scores = [float(h[metric]) for h in history if metric in h]
    if not scores:
        return None, 0
    best = max(range(len(scores)), key=scores.__getitem__)  # the first of equal scores, as Keras keeps it
    return scores[best], len(scores) - 1 - best


class ResumedEarlyStopping:
    """A factory of EarlyStopping that starts from the best score and wait of the epochs before a resume."""

    @staticmethod
    def make(metric: str, patience: int, history: list[dict]):
        import keras

        best, wait = early_stop_state(history, metric)

        class _Stop(keras.callbacks.EarlyStopping):
            def on_train_begin(self, logs=None):
                super().on_train_begin(logs)
                self.best, self.wait = best, wait

        return _Stop(monitor=metric, mode="max", patience=patience)


def _read_state(out_dir: Path) -> dict:
    """The resume state of a run ({} when new)."""
    p = out_dir / "state.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _write_state(out_dir: Path, state: dict) -> None:
    """Write the resume state atomically."""
    write_whole(out_dir / "state.json", lambda tmp: tmp.write_text(json.dumps(state, indent=2)))


# Stages -------------------------------------------------------------------------------------

def build_cache(model, train: list[Sample], val: list[Sample], cfg: TrainConfig, out_dir: Path,
                resume: bool = False) -> dict:
    """Compute (or, when resuming, load) pooled features of the augmented training views and clean validation views, float16."""
    cache = out_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    pooled = pooled_backbone(model)
    arrays = {}
    for name, plan, is_train in (("val", clean_plan(val), False), ("train", cache_plan(train, cfg), True)):
        fpath, meta = cache / f"{name}_features.npy", cache / f"{name}_meta.npz"
        if resume and fpath.exists() and meta.exists():
            log(f"cache: reusing {fpath}")
        else:
            n = len(plan["label"])
            log(f"cache: computing {n} {name} views")
            t0 = time.time()
            ds = make_dataset(plan, cfg, train=is_train, batch=64).map(lambda x, y: x)
            feats = pooled.predict(ds, verbose=cfg.verbose).astype(np.float16)
            log(f"cache: {name} {feats.shape} in {time.time() - t0:.0f} s ({n / max(1e-6, time.time() - t0):.1f} img/s)")
            write_whole(fpath, lambda tmp: np.save(tmp, feats))
            np.savez(meta, label=plan["label"], sbi=plan["sbi"])
        m = np.load(meta)
        arrays[name] = (np.load(fpath, mmap_mode="r"), m["label"], m["sbi"])
    return arrays


def stage1(model, arrays: dict, cfg: TrainConfig, out_dir: Path) -> list[dict]:
    """Train the head on cached features; SBI views make up `sbi_fraction` of each batch."""
    import keras
    import tensorflow as tf

    feats, labels, sbi = arrays["train"]
    vfeats, vlabels, _ = arrays["val"]
    head = head_tail(model)
    compile_model(head, cfg.frozen_lr)
    normal_idx, sbi_idx = np.flatnonzero(~sbi), np.flatnonzero(sbi)
    frac = cfg.sbi_fraction if len(sbi_idx) else 0.0
    n_sbi = int(round(cfg.frozen_batch * frac))
    n_normal = cfg.frozen_batch - n_sbi
    steps = max(1, int(np.ceil(len(normal_idx) / n_normal)))
    labels_f = np.asarray(labels, np.float32)
    weights = {0: 1.0, 1: 1.0}
    if cfg.class_weight:  # the batches' real mix: SBI views at `frac`, the rest as cached
        mix = np.r_[labels_f[normal_idx], np.ones(int(round(len(normal_idx) * frac / max(1e-9, 1 - frac))))]
        weights = class_weights(mix)
        log(f"stage 1: class weights {weights}")
    sample_w = np.where(labels_f > 0.5, weights[1], weights[0]).astype(np.float32)

    def batches():
        rng = np.random.default_rng([cfg.seed, 3])
        while True:
            normal = rng.permutation(normal_idx)
            for k in range(steps):
                idx = normal[k * n_normal:(k + 1) * n_normal]
                if n_sbi:
                    idx = np.concatenate([idx, rng.choice(sbi_idx, n_sbi)])
                idx = np.sort(idx)
                yield np.asarray(feats[idx], np.float32), labels_f[idx], sample_w[idx]

    shape = tuple(feats.shape[1:])
    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((None,), tf.float32),
        tf.TensorSpec((None,), tf.float32))).prefetch(2)
    val_ds = tf.data.Dataset.from_tensor_slices((np.asarray(vfeats).astype(np.float32), vlabels)).batch(256)
    ckpt = out_dir / "checkpoints" / "stage1_head_best.weights.h5"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=cfg.frozen_patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(ckpt, monitor="val_auc", mode="max", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_auc", mode="max", factor=0.3, patience=3, min_lr=1e-5),
        Progress.make("stage 1", cfg.frozen_epochs),
    ]
    hist = head.fit(ds, steps_per_epoch=steps, epochs=cfg.frozen_epochs, validation_data=val_ds,
                    callbacks=callbacks, verbose=cfg.verbose)
    if ckpt.exists():
        head.load_weights(ckpt)
    keys = list(hist.history)
    return [{k: float(hist.history[k][i]) for k in keys} for i in range(len(hist.history[keys[0]]))]


def predict_plan(model, plan: dict, cfg: TrainConfig, blend_only: bool = False) -> np.ndarray:
    """Probabilities of the full model on a plan's views, unaugmented (self-blended where `blend_only` asks)."""
    ds = make_dataset(plan, cfg, train=False, batch=64, blend_only=blend_only).map(lambda x, y: x)
    return model.predict(ds, verbose=0).reshape(-1)


def predict_val(model, val: list[Sample], cfg: TrainConfig) -> np.ndarray:
    """Probabilities of the full model on clean validation views."""
    return predict_plan(model, clean_plan(val), cfg)


def stage2(model, train: list[Sample], val: list[Sample], cfg: TrainConfig, out_dir: Path, started: float,
           resume: bool) -> list[dict]:
    """Fine-tune the top blocks (BatchNorm frozen) at a low learning rate through the image pipeline."""
    from training.model import set_backbone_trainable

    base_cfg = cfg
    cfg = dataclasses.replace(cfg, **cfg.finetune_overrides) if cfg.finetune_overrides else cfg
    set_backbone_trainable(model, trainable_from_blocks(model, cfg.finetune_blocks))
    compile_model(model, finetune_schedule(cfg))
    state = _read_state(out_dir)
    initial_epoch = 0
    if resume and "stage2" in state:
        initial_epoch = resume_from(model, state["stage2"], cfg.finetune_steps_per_epoch)
        log(f"stage 2: resuming after epoch {initial_epoch}")
    metric = base_cfg.select_metric
    done = state.get("stage2_history", []) if resume else []
    if initial_epoch >= cfg.finetune_epochs:
        return done
    best_score, since_best = early_stop_state(done, metric)
    if since_best >= cfg.finetune_patience:
        log(f"stage 2: stopped early before the resume ({cfg.finetune_patience} epochs without a better {metric})")
        return done
    per_epoch = cfg.finetune_steps_per_epoch * cfg.finetune_batch
    plan = stream_plan(train, cfg, per_epoch * cfg.finetune_epochs)
    plan = {k: v[initial_epoch * per_epoch:] for k, v in plan.items()}
    weights = class_weights(plan["label"]) if cfg.class_weight else None
    if weights:
        log(f"stage 2: class weights {weights}")
    ds = make_dataset(plan, cfg, train=True, batch=cfg.finetune_batch)
    val_ds = make_dataset(clean_plan(val), cfg, train=False, batch=64) if metric == "val_auc" else None
    best = out_dir / "checkpoints" / "stage2_best.keras"
    callbacks = [
        *([SourceAUC.make(val, base_cfg)] if metric != "val_auc" else []),
        BestCheckpoint.make(best, metric, best_score),
        ResumedEarlyStopping.make(metric, cfg.finetune_patience, done),
        StateSaver.make(out_dir, "stage2", cfg.keep_epochs),
        TimeBudget.make(cfg.finetune_max_minutes, started),
        Progress.make("stage 2", cfg.finetune_epochs),
    ]
    model.fit(ds, steps_per_epoch=cfg.finetune_steps_per_epoch, epochs=cfg.finetune_epochs,
              initial_epoch=initial_epoch, validation_data=val_ds, callbacks=callbacks, verbose=cfg.verbose,
              class_weight=weights)
    return _read_state(out_dir).get("stage2_history", [])


def train(config: TrainConfig, out_dir: Path, resume: bool = False) -> Path:
    """Run both stages and write the run directory; returns the path of the final model.keras."""
    import keras

    from training.model import build_model

    out_dir = Path(out_dir).resolve()
    (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    if not resume:  # a fresh run must not inherit an earlier run's resume state or best score
        (out_dir / "state.json").unlink(missing_ok=True)
    (out_dir / "config.json").write_text(config.to_json())
    (out_dir / "env.json").write_text(json.dumps(environment(config), indent=2) + "\n")
    train_s, val_s = prepare_samples(config)
    log(f"train {len(train_s)} {summarize(train_s)}")
    log(f"val {len(val_s)} {summarize(val_s)}")
    (out_dir / "split.json").write_text(json.dumps({"val": [s.path for s in val_s]}) + "\n")

    model = build_model(model_config(config))
    history: dict = {}
    state = _read_state(out_dir) if resume else {}
    stage1_path = out_dir / "stage1.keras"
    if resume and stage1_path.exists():
        log("stage 1: reusing stage1.keras")
        model.load_weights(stage1_path)
        history["stage1"] = state.get("stage1_history", [])
    else:
        from training.model import set_backbone_trainable

        set_backbone_trainable(model, None)
        arrays = build_cache(model, train_s, val_s, config, out_dir, resume)
        log("stage 1: training the head on cached features")
        history["stage1"] = stage1(model, arrays, config, out_dir)
        model.save(stage1_path)
        state = _read_state(out_dir)
        state["stage1_history"] = history["stage1"]
        _write_state(out_dir, state)
    started = time.time()
    metrics = {"stage1": val_metrics(model, val_s, config)}
    log(f"stage 1 validation: {json.dumps(metrics['stage1'])}")
    final_src = stage1_path

    if config.finetune_blocks > 0 and config.finetune_epochs > 0:
        log(f"stage 2: fine-tuning the top {config.finetune_blocks} blocks")
        history["stage2"] = stage2(model, train_s, val_s, config, out_dir, started, resume)
        best = out_dir / "checkpoints" / "stage2_best.keras"
        if best.exists():
            model.load_weights(best)
            metrics["stage2"] = val_metrics(model, val_s, config)
            log(f"stage 2 validation: {json.dumps(metrics['stage2'])}")
            metrics["selection"] = {name: selection_score(metrics[name], config.select_metric)
                                    for name in ("stage1", "stage2")}
            log(f"selection by {config.select_metric}: {metrics['selection']}")
            if metrics["selection"]["stage2"] >= metrics["selection"]["stage1"]:
                final_src = best
    model = build_model(model_config(config))
    model.load_weights(final_src)
    final = out_dir / "model.keras"
    write_whole(final, model.save)
    metrics["final_from"] = str(final_src.name)
    (out_dir / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    (out_dir / "val_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"done: {final} (from {final_src.name})")
    return final


def main(argv: list[str] | None = None) -> None:
    """Command line: a config file, an output directory, and --resume."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a JSON TrainConfig, e.g. training/configs/shipped.json")
    parser.add_argument("--out", help="run directory (default: runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoints")
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_json(args.config)
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / Path(args.config).stem
    try:
        path = train(cfg, out, resume=args.resume)
    except ResumeMismatch as e:
        parser.exit(2, f"cannot resume {out}: {e}\n")
    print(path)


if __name__ == "__main__":
    main()
