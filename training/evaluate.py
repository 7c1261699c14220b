"""Score an exported detector exactly as a client would, and report what the model card needs.

Run:
  python -m training.evaluate --model saved_model/deepfake_detector --manifest ../shared/data/faces/manifest.csv \
      --json runs/eval.json --split val --plots saved_model/deepfake_detector
  python -m training.evaluate --leave-one-out --config training/configs/quick.json --out runs/loo
  python -m training.evaluate --ablation --config training/configs/quick.json --out runs/ablation

Every image is read as file bytes and sent in batches through the SavedModel's `from_bytes`
signature, the way a client sends its crops. Reported: AUC, accuracy at the version's threshold
(from its metadata), balanced accuracy and ECE, overall, per source and for the cross-source
pairings that matter (a source's fakes against its own reals; generated faces against real photos);
the JPEG shortcut check (real and fake of one source put through the same re-encoding must still
separate); optionally the same set scored as-is and as the client's face crop; ROC and reliability
PNGs. The leave-one-method-out matrix and the ablation table live in training.ablation.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from serving import contract
from training import metrics
from training.paths import REPO_ROOT, recorded

CropFn = Callable[[bytes], tuple[list[bytes], bool]]
"""A client's preparation of one file: its crops (encoded bytes) and whether a face was found."""

DEFAULT_MANIFEST = str(REPO_ROOT / ".." / "shared" / "data" / "faces" / "manifest.csv")
SHORTCUT_QUALITIES = (50, 75)


@dataclass
class EvalConfig:
    """What to score and what to write; filled from the command line in one place (`parse_args`)."""

    model: str = f"saved_model/{contract.MODEL_NAME}"
    version: int | None = None
    manifest: str = DEFAULT_MANIFEST
    json_out: str | None = None
    split: str = "val"
    plots: str | None = None
    threshold: float | None = None
    val_fraction: float = 0.15
    seed: int = 1234
    max_per_source: int | None = None
    batch_size: int = 32
    shortcut_qualities: tuple[int, ...] = SHORTCUT_QUALITIES
    shortcut_max: int | None = 600
    whole_photos: bool = False
    whole_photos_max: int | None = 300
    extra: dict = field(default_factory=dict)


# ---- the exported model ---------------------------------------------------------------------------

def resolve_version(model: str | Path, version: int | None = None) -> Path:
    """The version folder to score: `model` itself if it is one, else the given or highest complete version."""
    base = Path(model)
    if contract.is_complete_version(base):
        return base
    if version is not None:
        path = base / str(version)
        if not contract.is_complete_version(path):
            raise FileNotFoundError(f"no complete version {version} under {base}")
        return path
    complete = [v for v in contract.version_dirs(base) if contract.is_complete_version(base / str(v))]
    if not complete:
        raise FileNotFoundError(f"no exported version under {base}")
    return base / str(complete[-1])


def read_version_metadata(version_dir: Path) -> dict:
    """The metadata JSON beside a version (threshold, band, temperature, metrics)."""
    path = version_dir / contract.METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


class BytesScorer:
    """The exported SavedModel's `from_bytes` signature, fed batches of encoded images like a client."""

    def __init__(self, version_dir: str | Path | None = None, batch_size: int = 32, loaded=None):
        import tensorflow as tf

        self._tf = tf
        self.loaded = loaded if loaded is not None else tf.saved_model.load(str(version_dir))
        self.fn = self.loaded.signatures[contract.SIGNATURE_BYTES]
        self.batch_size = batch_size

    def score(self, blobs: list[bytes]) -> np.ndarray:
        """Fake probabilities for a list of encoded images, in order."""
        out = []
        for i in range(0, len(blobs), self.batch_size):
            batch = self._tf.constant(blobs[i:i + self.batch_size], dtype=self._tf.string)
            result = self.fn(**{contract.INPUT_BYTES: batch})
            out.append(result[contract.OUTPUT_PROBABILITY].numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

    def score_files(self, paths: list[str]) -> np.ndarray:
        """Read each file's bytes (nothing decoded here) and score them."""
        out = []
        step = self.batch_size * 8
        for i in range(0, len(paths), step):
            out.append(self.score([Path(p).read_bytes() for p in paths[i:i + step]]))
        return np.concatenate(out) if out else np.zeros(0)


# ---- the data -----------------------------------------------------------------------------------

def select_samples(cfg: EvalConfig):
    """The images to score: the training run's validation split (same function, same seed) or all."""
    from training.data import limit_per_source, load_samples, split_by_group

    samples = load_samples(cfg.manifest)
    if cfg.split == "val":
        _, samples = split_by_group(samples, val_fraction=cfg.val_fraction, seed=cfg.seed)
    elif cfg.split != "all":
        raise ValueError(f"--split must be val or all, not {cfg.split!r}")
    return limit_per_source(samples, cfg.max_per_source, seed=cfg.seed) if cfg.max_per_source else samples


def _index(samples, source: str | None = None, label: int | None = None) -> np.ndarray:
    """Indices of samples matching a source and/or label."""
    return np.array([i for i, s in enumerate(samples)
                     if (source is None or s.source == source) and (label is None or s.label == label)], dtype=np.int64)


# ---- the figures --------------------------------------------------------------------------------

def band_figures(labels: np.ndarray, probs: np.ndarray, threshold: float, band: tuple[float, float]) -> dict:
    """How often the verdict is 'uncertain', and how right the decided verdicts are."""
    low, high = band
    inside = (probs >= low) & (probs <= high) if low < high else np.zeros(probs.shape, bool)
    decided = ~inside
    return {
        "uncertain_share": round(float(inside.mean()), 6) if probs.size else None,
        "accuracy_when_decided": round(metrics.accuracy(labels[decided], probs[decided], threshold), 6)
        if decided.any() else None,
    }


def per_source(samples, labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Summary per source (AUC is null for one-label sources, where accuracy is the figure)."""
    return {src: metrics.summary(labels[idx], probs[idx], threshold)
            for src in sorted({s.source for s in samples}) for idx in [_index(samples, src)]}


def pairing_indices(samples) -> dict[str, tuple[np.ndarray, list[str] | None]]:
    """The cross-source comparisons that matter, as index sets (and the real sources of a generated-face one).

    - `<src>_fake_vs_<src>_real` for every source holding both labels (e.g. DFDC swaps vs DFDC reals);
    - `<src>_vs_real_photos` for every fake-only source (e.g. MobileStyleGAN vs UTKFace + DFDC reals).
    """
    out: dict[str, tuple[np.ndarray, list[str] | None]] = {}
    all_real = _index(samples, label=0)
    for src in sorted({s.source for s in samples}):
        fake, real = _index(samples, src, 1), _index(samples, src, 0)
        if fake.size and real.size:
            out[f"{src}_fake_vs_{src}_real"] = (np.r_[fake, real], None)
        elif fake.size and all_real.size:
            out[f"{src}_vs_real_photos"] = (np.r_[fake, all_real], sorted({samples[i].source for i in all_real}))
    return out


def pairings(samples, labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Summary of each pairing of `pairing_indices`."""
    return {name: {**metrics.summary(labels[idx], probs[idx], threshold),
                   **({"real_sources": reals} if reals is not None else {})}
            for name, (idx, reals) in pairing_indices(samples).items()}


def reencode_jpeg(data: bytes, quality: int) -> bytes:
    """The same JPEG re-encoding for every image (PIL, 4:2:0), as the shortcut check needs."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def shortcut_check(scorer: BytesScorer, samples, cfg: EvalConfig) -> dict:
    """Fake-vs-real AUC within each two-label source after identical JPEG re-encoding of both classes.

    If the model only knew each class's JPEG history, identical re-encoding would erase the
    difference and the AUC would fall to about 0.5.
    """
    out: dict = {}
    for src in sorted({s.source for s in samples}):
        fake, real = _index(samples, src, 1), _index(samples, src, 0)
        if not (fake.size and real.size):
            continue
        if cfg.shortcut_max:
            fake, real = fake[:cfg.shortcut_max // 2], real[:cfg.shortcut_max // 2]
        idx = np.r_[fake, real]
        labels = np.array([samples[i].label for i in idx])
        raw = [Path(samples[i].path).read_bytes() for i in idx]
        entry = {"n": int(idx.size), "original": metrics.roc_auc(labels, scorer.score(raw))}
        for q in cfg.shortcut_qualities:
            entry[f"jpeg_q{q}"] = metrics.roc_auc(labels, scorer.score([reencode_jpeg(b, q) for b in raw]))
        out[src] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in entry.items()}
    return out


# ---- whole photos vs client crops ----------------------------------------------------------------

def face_detector():
    """(name, detect(PIL image) -> list[Box]): the client core's detector, else OpenCV's Haar cascade, else None."""
    from clients.core.facecrop import Box

    try:
        from clients.core import faces  # written by the client-core helper

        for name in ("detect_faces", "detect", "find_faces"):
            fn = getattr(faces, name, None)
            if callable(fn):
                def detect(image, _fn=fn):
                    boxes = _fn(image)
                    return [_as_box(b, Box) for b in boxes]
                return f"clients.core.faces.{name}", detect
    except Exception:  # noqa: BLE001 - any failure to import means: fall back
        pass
    try:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        if path.is_file():
            cascade = cv2.CascadeClassifier(str(path))

            def detect(image):
                gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
                found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
                return [Box(int(x), int(y), int(w), int(h)) for (x, y, w, h) in found]
            return "opencv-haar-frontalface-default", detect
    except Exception:  # noqa: BLE001
        pass
    return None, None


def _as_box(b, box_cls):
    """Accept a Box, an object with .box, or an (x, y, w, h) tuple from the client detector."""
    if isinstance(b, box_cls):
        return b
    inner = getattr(b, "box", None)
    if inner is not None:
        return _as_box(inner, box_cls)
    x, y, w, h = (int(v) for v in tuple(b)[:4])
    return box_cls(x, y, w, h)


def client_crop_bytes(data: bytes, detect) -> tuple[bytes, bool]:
    """The crop a client would send: the largest face by the shared crop rule, else the whole image (PNG)."""
    from PIL import Image

    from clients.core.facecrop import crop_face

    with Image.open(io.BytesIO(data)) as im:
        image = im.convert("RGB")
    boxes = detect(image)
    if not boxes:
        return data, False
    box = max(boxes, key=lambda b: b.w * b.h)
    buf = io.BytesIO()
    crop_face(image, box).save(buf, format="PNG")
    return buf.getvalue(), True


def client_crops() -> tuple[str | None, CropFn | None]:
    """(name, fn(bytes) -> (crops as encoded bytes, face found)): the client core's own preparation if present.

    The one place training uses more of the clients than the crop rule (their face detector and preparation):
    imported here, when a whole-photo check runs, never when training is imported."""
    try:
        from clients.core.analyze import prepare
        from clients.core.config import ClientConfig

        config = ClientConfig()

        def crops(data: bytes) -> tuple[list[bytes], bool]:
            prep = prepare(data, config)
            return list(prep.encoded), bool(prep.boxes)
        return "clients.core.analyze.prepare (client face detector, shared crop rule, PNG crops)", crops
    except ImportError:
        pass
    name, detect = face_detector()
    if detect is None:
        return None, None

    def crops(data: bytes) -> tuple[list[bytes], bool]:
        crop, found = client_crop_bytes(data, detect)
        return [crop], found
    return name, crops


@dataclass
class ClientCrops:
    """What the client's preparation made of some images: which it kept, their crops, and whether a face was found."""

    kept: list[int]
    crops: list[list[bytes]]
    found: np.ndarray
    refused: int

    @property
    def flat(self) -> list[bytes]:
        """Every crop of every kept image, in order (one batched scoring call)."""
        return [c for image_crops in self.crops for c in image_crops]

    def most_suspicious(self, flat_scores: np.ndarray) -> np.ndarray:
        """Per kept image, the highest score over its crops, as the clients report an image with several faces."""
        out, k = [], 0
        for image_crops in self.crops:
            out.append(float(np.max(flat_scores[k:k + len(image_crops)])))
            k += len(image_crops)
        return np.array(out)


def prepare_client_crops(blobs: list[bytes], make_crops: CropFn) -> ClientCrops:
    """Run the client's crop function on each image; an image it refuses is counted, not fatal."""
    kept, crops, found, refused = [], [], [], 0
    for i, data in enumerate(blobs):
        try:
            image_crops, has_face = make_crops(data)
        except Exception:  # noqa: BLE001 - an image the client refuses is counted, not fatal
            refused += 1
            continue
        kept.append(i)
        crops.append(image_crops)
        found.append(has_face)
    return ClientCrops(kept, crops, np.array(found, bool), refused)


def whole_photo_vs_crop(scorer: BytesScorer, samples, threshold: float, cfg: EvalConfig,
                        crops: tuple[str | None, CropFn | None] | None = None) -> dict:
    """Score the same images as-is (whole image through from_bytes) and as the client's face crops.

    As the clients do, an image with several faces takes its most suspicious face's probability,
    and an image with none is scored on its centre square. `crops` is (name, crop function), by default
    the client core's own (client_crops).
    """
    name, make_crops = crops if crops is not None else client_crops()
    if make_crops is None:
        return {"skipped": "no face detector: clients.core.faces is absent and this OpenCV build bundles no "
                           "Haar cascade"}
    idx = np.arange(len(samples))
    if cfg.whole_photos_max and idx.size > cfg.whole_photos_max:
        idx = np.sort(np.random.default_rng(cfg.seed).choice(idx, cfg.whole_photos_max, replace=False))
    blobs = [Path(samples[i].path).read_bytes() for i in idx]
    prepared = prepare_client_crops(blobs, make_crops)
    chosen = [samples[idx[j]] for j in prepared.kept]
    labels = np.array([s.label for s in chosen], np.int64)
    as_is = scorer.score([blobs[j] for j in prepared.kept])
    cropped = prepared.most_suspicious(scorer.score(prepared.flat))
    found = prepared.found
    return {
        "detector": name,
        "n": len(chosen),
        "refused_by_client": prepared.refused,
        "face_found_share": round(float(found.mean()), 6) if found.size else None,
        "as_is": {"overall": metrics.summary(labels, as_is, threshold),
                  "pairings": pairings(chosen, labels, as_is, threshold)},
        "client_crop": {"overall": metrics.summary(labels, cropped, threshold),
                        "pairings": pairings(chosen, labels, cropped, threshold)},
        "mean_abs_change": round(float(np.mean(np.abs(as_is - cropped))), 6) if as_is.size else None,
    }


# ---- the run --------------------------------------------------------------------------------------

def evaluate(cfg: EvalConfig) -> dict:
    """Score the chosen images through from_bytes and collect every figure (and PNGs if asked)."""
    started = time.monotonic()
    version_dir = resolve_version(cfg.model, cfg.version)
    meta = read_version_metadata(version_dir)
    threshold = float(cfg.threshold if cfg.threshold is not None else meta.get("threshold", contract.DEFAULT_THRESHOLD))
    band = tuple(meta.get("uncertain_band", (threshold, threshold)))
    samples = select_samples(cfg)
    labels = np.array([s.label for s in samples], np.int64)
    scorer = BytesScorer(version_dir, cfg.batch_size)
    probs = scorer.score_files([s.path for s in samples])
    scored = time.monotonic()
    from training.data import summarize

    report = {
        "model": {"path": recorded(version_dir), "version": meta.get("version"), "threshold": threshold,
                  "uncertain_band": list(band), "temperature": meta.get("temperature"),
                  "signature": contract.SIGNATURE_BYTES},
        "data": {"manifest": recorded(cfg.manifest), "split": cfg.split, "val_fraction": cfg.val_fraction,
                 "seed": cfg.seed, "max_per_source": cfg.max_per_source, "n": len(samples),
                 "counts": summarize(samples)},
        "overall": {**metrics.summary(labels, probs, threshold), **band_figures(labels, probs, threshold, band)},
        "per_source": per_source(samples, labels, probs, threshold),
        "pairings": pairings(samples, labels, probs, threshold),
        "reliability": metrics.bins_as_dicts(metrics.reliability_bins(labels, probs)),
    }
    if cfg.shortcut_qualities:
        report["shortcut_check"] = shortcut_check(scorer, samples, cfg)
    if cfg.whole_photos:
        report["whole_photos"] = whole_photo_vs_crop(scorer, samples, threshold, cfg)
    if cfg.plots:
        report["plots"] = write_plots(cfg.plots, samples, labels, probs)
    report["timing_s"] = {"scoring": round(scored - started, 1), "total": round(time.monotonic() - started, 1)}
    if cfg.json_out:
        out = Path(cfg.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def write_plots(folder: str | Path, samples, labels: np.ndarray, probs: np.ndarray) -> dict:
    """roc.png (overall and each pairing) and reliability_served.png (the served probability) in `folder`."""
    from training.plots import reliability_plot, roc_plot

    folder = Path(folder)
    curves = {"all sources": (labels, probs)}
    all_real = _index(samples, label=0)
    for src in sorted({s.source for s in samples}):
        fake, real = _index(samples, src, 1), _index(samples, src, 0)
        if fake.size and real.size:
            idx = np.r_[fake, real]
            curves[f"{src} fake vs {src} real"] = (labels[idx], probs[idx])
        elif fake.size and all_real.size:
            idx = np.r_[fake, all_real]
            curves[f"{src} vs real photos"] = (labels[idx], probs[idx])
    roc = roc_plot(folder / "roc.png", curves, title="ROC through from_bytes (validation split)")
    rel = reliability_plot(folder / "reliability_served.png", labels, {"served fake_probability": probs},
                           title="Reliability through from_bytes (validation split)")
    return {"roc": str(roc), "reliability": str(rel)}


def parse_args(argv: list[str] | None = None) -> tuple[str, argparse.Namespace]:
    """The one place the command line is read: ('score' | 'leave-one-out' | 'leave-one-real-out' | 'ablation', args)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=EvalConfig.model, help="model base path or one version folder")
    p.add_argument("--version", type=int, help="version to score (default: the highest complete one)")
    p.add_argument("--manifest", help="data in any layout training.data reads (default: ../shared/data/faces; "
                   "with --leave-one-out/--ablation: the config's data)")
    p.add_argument("--json", dest="json_out", help="write the report JSON here")
    p.add_argument("--split", choices=("val", "all"), default="val")
    p.add_argument("--plots", help="folder for roc.png and reliability_served.png")
    p.add_argument("--threshold", type=float, help="override the version's threshold")
    p.add_argument("--val-fraction", type=float, default=EvalConfig.val_fraction)
    p.add_argument("--seed", type=int, default=EvalConfig.seed, help="the training seed (same split)")
    p.add_argument("--max-per-source", type=int, help="at most this many images per source and label")
    p.add_argument("--batch-size", type=int, default=EvalConfig.batch_size)
    p.add_argument("--shortcut-qualities", default=",".join(map(str, SHORTCUT_QUALITIES)),
                   help="JPEG qualities for the shortcut check, comma-separated ('' to skip)")
    p.add_argument("--shortcut-max", type=int, default=EvalConfig.shortcut_max,
                   help="images per two-label source in the shortcut check (half fake, half real)")
    p.add_argument("--whole-photos", action="store_true", help="also score each image as the client's face crop")
    p.add_argument("--whole-photos-max", type=int, default=EvalConfig.whole_photos_max)
    p.add_argument("--leave-one-out", action="store_true", help="train without each fake source and score it")
    p.add_argument("--leave-one-real-out", action="store_true",
                   help="train without each real-only source, then its false-alarm rate (training.real_holdout)")
    p.add_argument("--ablation", action="store_true", help="the ablation table (quick-budget trainings)")
    p.add_argument("--config", help="TrainConfig JSON for --leave-one-out / --ablation")
    p.add_argument("--out", help="output folder for --leave-one-out / --ablation")
    p.add_argument("--no-train", action="store_true",
                   help="with --leave-one-out/--ablation: only tabulate runs already in --out, mark the rest 'not run'")
    p.add_argument("--no-reference", action="store_true",
                   help="with --leave-one-out: skip the reference run trained on every source")
    p.add_argument("--sources", help="sources to hold out, comma-separated (default: every fake source; with "
                   "--leave-one-real-out every real-only source)")
    args = p.parse_args(argv)
    mode = ("leave-one-out" if args.leave_one_out else "leave-one-real-out" if args.leave_one_real_out
            else "ablation" if args.ablation else "score")
    if mode != "score" and not (args.config and args.out):
        p.error(f"--{mode} needs --config and --out")
    return mode, args


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """An EvalConfig from parsed flags."""
    qualities = tuple(int(q) for q in args.shortcut_qualities.split(",") if q.strip())
    return EvalConfig(model=args.model, version=args.version, manifest=args.manifest or DEFAULT_MANIFEST, json_out=args.json_out,
                      split=args.split, plots=args.plots, threshold=args.threshold, val_fraction=args.val_fraction,
                      seed=args.seed, max_per_source=args.max_per_source, batch_size=args.batch_size,
                      shortcut_qualities=qualities, shortcut_max=args.shortcut_max,
                      whole_photos=args.whole_photos, whole_photos_max=args.whole_photos_max)


def print_report(report: dict) -> None:
    """A short human summary of an evaluation on stdout."""
    o = report["overall"]
    print(f"model {report['model']['path']}  threshold {report['model']['threshold']}  n={o['n']}")
    print(f"overall: AUC {o['auc']}  accuracy {o['accuracy']}  balanced {o['balanced_accuracy']}  ECE {o['ece']}")
    for name, s in {**report["per_source"], **report["pairings"]}.items():
        print(f"  {name:40s} n={s['n']:5d}  AUC {s['auc']}  accuracy {s['accuracy']}")
    for src, entry in report.get("shortcut_check", {}).items():
        print(f"  shortcut check {src}: {entry}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: score an exported model, or run the leave-one-out / ablation experiments."""
    mode, args = parse_args(argv)
    try:
        if mode == "score":
            report = evaluate(config_from_args(args))
            print_report(report)
            return 0
        from training import ablation

        sources = [s for s in (args.sources or "").split(",") if s] or None
        if mode == "leave-one-real-out":
            from training import real_holdout

            real_holdout.leave_one_real_out_main(args.config, args.out, sources=sources, manifest=args.manifest,
                                                 train_missing=not args.no_train)
        elif mode == "leave-one-out":
            ablation.leave_one_out_main(args.config, args.out, sources=sources, manifest=args.manifest,
                                        train_missing=not args.no_train, reference=not args.no_reference)
        else:
            ablation.ablation_main(args.config, args.out, manifest=args.manifest, train_missing=not args.no_train)
        return 0
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
