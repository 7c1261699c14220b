"""Clip-level evaluation (issue 21): frame scores aggregated per face track, against the frame-level figures.

Run (691 clips of 8 frames, about 2 minutes on 2 busy cores for the defaults):
  python -m training.clips --model saved_model/deepfake_detector --version 4 \
      --out saved_model/deepfake_detector/metrics/v4

Writes `clips.json` and `clips.md` in `--out`. Only the validation split is used, made by the same
function and seed as training and training.evaluate (`training.evaluate.select_samples`), so no
training image is in a clip and no group crosses the split.

**The clips are synthetic** (the shared data holds one still crop per video, not video):
- *photo sequences*: one validation face rendered as `--frames` video frames, each with its own
  small shift and scale of the crop window (a face tracker's box jitter and slight motion), a
  brightness drift across the clip, at a per-clip resolution (60-100% of the crop's side), then the
  whole sequence encoded as H.264 (libx264, CRF 20-36 per clip, 25 fps) and decoded again, and each
  decoded frame sent as the clients send a clip's crops (lossless PNG, at most 224 px). One clip per
  validation group, from every real source (dfdc, utkface, aaf, ffhq) and every fake source
  (dfdc swaps, mobilestylegan);
- *DFDC groups*: a validation DFDC group with two or more fakes (different face-swap videos made from
  one source video; the group's one real frame is left out so a clip has one label) gives a clip of
  its fake crops in manifest order, cycled to `--frames` frames, each through the same video path.

Every frame is scored through the shipped SavedModel's `from_bytes` signature
(`training.evaluate.BytesScorer`), then each clip's frame scores are aggregated by every rule of
`clients.core.aggregate` (a synthetic clip is one face track, so its track score is its clip score: the
clients let the most suspicious track decide). Reported per rule: clip-level AUC overall and per
pairing, the false-positive rate on real clips at the version's threshold, the share of clips in the
uncertain band, ECE; beside them the same figures for the pooled frames and for the untouched still
photos the clips were made from. Everything is seeded and deterministic for a seed.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from serving import contract
from training import metrics
from training.paths import recorded

FRAMES = 8
PER_SOURCE = 100
CRF_RANGE = (20, 36)
RESOLUTION_RANGE = (0.6, 1.0)
FPS = 25
REAL_FIRST = ("dfdc", "utkface", "aaf", "ffhq")


# ---- planning the clips ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipSpec:
    """One clip to render: which still images (in frame order, cycled), its label, source and group."""

    clip_id: str
    kind: str
    """'photo_sequence' (one face, video variation per frame) or 'dfdc_group' (a group's fakes, cycled)."""
    source: str
    label: int
    group: str
    paths: tuple[str, ...]
    frames: int = FRAMES

    @property
    def subset(self) -> str:
        """The name the report groups this clip under: its source, or 'dfdc_groups' for group clips."""
        return "dfdc_groups" if self.kind == "dfdc_group" else self.source


def plan_clips(samples, frames: int = FRAMES, per_source: int | None = PER_SOURCE, seed: int = 1234,
               max_group_clips: int | None = None, group_source: str = "dfdc") -> list[ClipSpec]:
    """The clips made from `samples` (already the validation split), deterministic for a seed.

    Photo sequences: per (source, label), up to `per_source` groups drawn with the seed, one image of each
    (drawn with the seed among the group's images of that label). Group clips: every group of
    `group_source` holding two or more fakes (up to `max_group_clips`), its fakes in manifest order.
    Every clip holds images of one label and one source only (checked).
    """
    by_key: dict[tuple[str, int], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        by_key[(s.source, s.label)][s.group].append(s)
    clips: list[ClipSpec] = []
    for source, label in sorted(by_key):
        groups = sorted(by_key[(source, label)])
        random.Random(f"{seed}/clips/{source}/{label}").shuffle(groups)
        for group in groups[:per_source] if per_source else groups:
            members = sorted(by_key[(source, label)][group], key=lambda s: s.path)
            pick = members[random.Random(f"{seed}/pick/{group}/{label}").randrange(len(members))]
            clips.append(ClipSpec(f"seq/{source}/{label}/{group}", "photo_sequence", source, label, group,
                                  (pick.path,), frames))
    multi = [(g, m) for g, m in sorted(by_key.get((group_source, 1), {}).items()) if len(m) >= 2]
    if max_group_clips is not None and len(multi) > max_group_clips:
        random.Random(f"{seed}/groups").shuffle(multi)
        multi = sorted(multi[:max_group_clips])
    for group, members in multi:
        clips.append(ClipSpec(f"group/{group}", "dfdc_group", group_source, 1, group,
                              tuple(m.path for m in members), frames))  # manifest order
    by_path = {s.path: s for s in samples}
    for c in clips:
        parts = {(by_path[p].source, by_path[p].label, by_path[p].group) for p in c.paths}
        if parts != {(c.source, c.label, c.group)}:
            raise ValueError(f"clip {c.clip_id} mixes labels, sources or groups: {sorted(parts)}")
    return clips


# ---- rendering a clip like a video ------------------------------------------------------------------

@dataclass(frozen=True)
class Variation:
    """How much frames of a clip vary; the defaults are small, as a steady face in a short clip."""

    shift: float = 0.03
    """Largest shift of the crop window's centre, as a share of its side (a smooth random walk)."""
    zoom: float = 0.04
    """Largest change of the window's side per frame (1 +- zoom)."""
    base_crop: float = 0.92
    """The window's side before jitter, as a share of the image's shorter side (room for the shifts)."""
    drift: float = 10.0
    """Largest brightness drift over the clip, in 0..255 levels (linear), plus per-frame noise of 1.5."""
    crf: tuple[int, int] = CRF_RANGE
    resolution: tuple[float, float] = RESOLUTION_RANGE
    codec: str = "h264"
    """'h264' (libx264 through PyAV) or 'jpeg' (per-frame JPEG at a quality from the CRF; no PyAV needed)."""


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """The one random source of a clip: same seed and clip, same frames."""
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode())])


def _side(n: float) -> int:
    """A frame side: a multiple of 4 (YUV 4:2:0 planes in PyAV's packed layout), at least 16."""
    return max(16, int(round(n / 4.0)) * 4)


def frame_views(images, frames: int, rng: np.random.Generator, variation: Variation = Variation()) -> tuple[list, dict]:
    """`frames` RGB arrays (uint8, one square size, a multiple of 4) from still PIL images cycled in order, with the
    clip's jitter and brightness drift; and the clip's drawn parameters (for the report)."""
    from PIL import Image

    scale = float(rng.uniform(*variation.resolution))
    side = _side(min(min(im.size) for im in images) * variation.base_crop * scale)
    drift = float(rng.uniform(-variation.drift, variation.drift))
    walk = np.cumsum(rng.normal(0.0, variation.shift / 2.0, (frames, 2)), axis=0)
    walk = np.clip(walk, -variation.shift, variation.shift)
    zooms = 1.0 + rng.uniform(-variation.zoom, variation.zoom, frames)
    noise = rng.normal(0.0, 1.5, frames)
    out = []
    for i in range(frames):
        im = images[i % len(images)]
        w, h = im.size
        win = min(w, h) * variation.base_crop * zooms[i]
        win = min(win, min(w, h))
        cx = w / 2.0 + walk[i, 0] * win
        cy = h / 2.0 + walk[i, 1] * win
        x0 = float(np.clip(cx - win / 2.0, 0.0, w - win))
        y0 = float(np.clip(cy - win / 2.0, 0.0, h - win))
        view = im.resize((side, side), Image.Resampling.BILINEAR, box=(x0, y0, x0 + win, y0 + win))
        arr = np.asarray(view, np.float32) + drift * (i / max(frames - 1, 1)) + noise[i]
        out.append(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    return out, {"resolution": round(scale, 4), "side": side, "drift": round(drift, 3)}


def rgb_to_yuv420p(arr: np.ndarray) -> np.ndarray:
    """RGB uint8 (even sides) to planar YUV 4:2:0, BT.601 limited range, in PyAV's (h * 3 / 2, w) layout.

    Done here rather than by the encoder's own conversion, whose temporary frames made the encoded stream
    differ from call to call (PyAV 18)."""
    rgb = arr.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    h, w = y.shape

    def sub(c):
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).reshape(h // 4, w)

    planes = np.concatenate([y, sub(cb), sub(cr)], axis=0)
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def yuv420p_to_rgb(planes: np.ndarray) -> np.ndarray:
    """The inverse of rgb_to_yuv420p (chroma repeated 2x2), to RGB uint8."""
    h = planes.shape[0] * 2 // 3
    w = planes.shape[1]
    y = planes[:h].astype(np.float64) - 16.0
    cb = planes[h:h + h // 4].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1).astype(np.float64) - 128.0
    cr = planes[h + h // 4:].reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1).astype(np.float64) - 128.0
    r = 1.164383 * y + 1.596027 * cr
    g = 1.164383 * y - 0.391762 * cb - 0.812968 * cr
    b = 1.164383 * y + 2.017232 * cb
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def h264_roundtrip(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Encode frames as one H.264 stream (libx264, yuv420p, single-threaded: deterministic) and decode it."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        # x264's assembly made the stream differ now and then for the same frames (a read past the pixels, we
        # think); its C code does not, and costs ~30 ms per 8-frame clip.
        stream.options = {"crf": str(int(crf)), "preset": "veryfast", "threads": "1", "x264-params": "no-asm=1"}
        # Every frame's pixels stay referenced until the flush: the encoder's lookahead reads them after
        # encode() returns (with temporaries, the stream differed from call to call).
        planes = [rgb_to_yuv420p(arr) for arr in frames]
        held = []
        for i, plane in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = i
            held.append(frame)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        del held, planes
    with av.open(io.BytesIO(buf.getvalue()), "r") as inp:
        decoded = [yuv420p_to_rgb(f.to_ndarray(format="yuv420p")) for f in inp.decode(video=0)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip gave {len(decoded)} frames for {len(frames)}")
    return decoded


def jpeg_roundtrip(frames: list[np.ndarray], crf: int) -> list[np.ndarray]:
    """Per-frame JPEG at a quality mapped from the CRF (20 -> 90, 36 -> 42): the fallback without PyAV."""
    from PIL import Image

    quality = int(np.clip(150 - 3 * crf, 10, 95))
    out = []
    for arr in frames:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def crop_bytes(arr: np.ndarray) -> bytes:
    """A decoded frame's face crop as the clients send it: at most 224 px square, lossless PNG."""
    from PIL import Image

    im = Image.fromarray(arr)
    if im.width > contract.IMAGE_SIZE or im.height > contract.IMAGE_SIZE:
        im = im.resize((contract.IMAGE_SIZE, contract.IMAGE_SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0)
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def render_clip(spec: ClipSpec, seed: int, variation: Variation = Variation()) -> tuple[list[bytes], dict]:
    """A clip's frames as encoded crops, in order, and its drawn parameters; deterministic for (seed, clip)."""
    from PIL import Image

    rng = clip_rng(seed, spec.clip_id)
    images = []
    for p in spec.paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    views, params = frame_views(images, spec.frames, rng, variation)
    crf = int(rng.integers(variation.crf[0], variation.crf[1] + 1))
    decoded = h264_roundtrip(views, crf) if variation.codec == "h264" else jpeg_roundtrip(views, crf)
    return [crop_bytes(a) for a in decoded], {**params, "crf": crf, "codec": variation.codec}


# ---- aggregation and figures ------------------------------------------------------------------------

def aggregate(frame_scores: list[np.ndarray], rules=None) -> dict[str, np.ndarray]:
    """Per rule of clients.core.aggregate, one score per clip from its frames' scores."""
    from clients.core import aggregate as agg  # pure Python; imported here, not when training is imported

    rules = tuple(rules or agg.RULES)
    return {r: np.array([agg.track_score([float(x) for x in s], r) for s in frame_scores]) for r in rules}


def figures(labels: np.ndarray, scores: np.ndarray, threshold: float, band: tuple[float, float]) -> dict:
    """AUC, false-positive rate on reals and true-positive rate on fakes at the threshold, uncertain share,
    ECE and mean scores, for one set of units (clips, frames or stills)."""
    from training.evaluate import band_figures

    real, fake = labels == 0, labels == 1
    out = {
        "n": int(labels.size), "n_fake": int(fake.sum()), "n_real": int(real.sum()),
        "auc": metrics._nan_to_none(metrics.roc_auc(labels, scores)) if labels.size else None,
        "fpr_at_threshold": round(float(np.mean(scores[real] >= threshold)), 6) if real.any() else None,
        "tpr_at_threshold": round(float(np.mean(scores[fake] >= threshold)), 6) if fake.any() else None,
        "balanced_accuracy": metrics._nan_to_none(metrics.balanced_accuracy(labels, scores, threshold)),
        "ece": metrics._nan_to_none(metrics.expected_calibration_error(labels, scores)),
        "mean_score_real": round(float(scores[real].mean()), 6) if real.any() else None,
        "mean_score_fake": round(float(scores[fake].mean()), 6) if fake.any() else None,
    }
    return {**out, **band_figures(labels, scores, threshold, band)}


def subsets(subset_names: list[str], labels: np.ndarray) -> dict[str, np.ndarray]:
    """Index sets of the report: overall; each two-label source's fakes vs its reals (dfdc, and dfdc_groups
    vs dfdc reals); each fake-only source vs every real clip; each real source alone (its false alarms)."""
    names = np.array(subset_names)
    idx = {"overall": np.arange(labels.size)}
    real_all = np.flatnonzero(labels == 0)
    sources = sorted(set(subset_names))
    for src in sources:
        fake = np.flatnonzero((names == src) & (labels == 1))
        real = np.flatnonzero((names == src) & (labels == 0))
        if src == "dfdc_groups":
            real = np.flatnonzero((names == "dfdc") & (labels == 0))
            idx["dfdc_groups_vs_dfdc_real"] = np.r_[fake, real]
        elif fake.size and real.size:
            idx[f"{src}_fake_vs_{src}_real"] = np.r_[fake, real]
        elif fake.size:
            idx[f"{src}_vs_all_real"] = np.r_[fake, real_all]
    for src in sources:
        real = np.flatnonzero((names == src) & (labels == 0))
        if real.size:
            idx[f"{src}_real_only"] = real
    return idx


def paired_auc_gap(labels: np.ndarray, a: np.ndarray, b: np.ndarray, n_boot: int = 400, seed: int = 0) -> dict:
    """AUC(a) - AUC(b) on the same clips, with a 95% bootstrap interval (clips resampled within each label)."""
    from training.compare import paired_bootstrap

    if not ((labels == 1).any() and (labels == 0).any()):
        return {"diff": None, "ci95": None}
    gap = paired_bootstrap(labels, b, a, metrics.roc_auc, n_boot=n_boot, seed=seed, digits=6)
    return {"diff": gap["difference"], "ci95": gap["ci95"]}


def choose_rule(report: dict, default: str) -> dict:
    """The rule to ship, by a stated criterion: the best overall clip AUC among rules whose false-positive
    rate on real clips stays within 2 points of the frame-level rate and whose ECE within 0.03 of the
    frames'; the current default stays unless another rule beats it by more than its bootstrap noise."""
    frame = report["frames"]["overall"]
    ok = {}
    for rule, by_subset in report["clips"].items():
        o = by_subset["overall"]
        ok[rule] = (o["fpr_at_threshold"] <= frame["fpr_at_threshold"] + 0.02 and
                    o["ece"] is not None and o["ece"] <= frame["ece"] + 0.03)
    eligible = [r for r in report["clips"] if ok[r]] or list(report["clips"])
    best = max(eligible, key=lambda r: report["clips"][r]["overall"]["auc"])
    gap = report["auc_gap_vs_default"].get(best, {})
    clear = best != default and gap.get("ci95") is not None and gap["ci95"][0] > 0
    chosen = best if clear or default not in eligible else default
    return {"criterion": choose_rule.__doc__.split("\n\n")[0].replace("\n    ", " ").strip(),
            "eligible": eligible, "best_auc_rule": best, "chosen": chosen,
            "best_beats_default_clearly": bool(clear)}


# ---- the run ------------------------------------------------------------------------------------------

@dataclass
class ClipsConfig:
    """What to score and where to write; from the command line in `parse_args`."""

    model: str = f"saved_model/{contract.MODEL_NAME}"
    version: int | None = None
    manifest: str | None = None
    out: str | None = None
    val_fraction: float = 0.15
    seed: int = 1234
    clip_seed: int | None = None
    """The seed of the clips' plan and variation (default: `seed`); changing it never changes the split."""
    frames: int = FRAMES
    per_source: int | None = PER_SOURCE
    max_group_clips: int | None = None
    batch_size: int = 32
    codec: str = "h264"
    extra: dict = field(default_factory=dict)


def score_clips(scorer, clips: list[ClipSpec], seed: int, variation: Variation, chunk: int = 16,
                log=None) -> tuple[list[np.ndarray], list[dict]]:
    """Render and score clips a few at a time (the crops of all clips are never held at once)."""
    scores, params = [], []
    for i in range(0, len(clips), chunk):
        blobs, sizes = [], []
        for spec in clips[i:i + chunk]:
            frames, p = render_clip(spec, seed, variation)
            blobs.extend(frames)
            sizes.append(len(frames))
            params.append(p)
        flat = scorer.score(blobs)
        k = 0
        for n in sizes:
            scores.append(flat[k:k + n])
            k += n
        if log:
            log(f"  {min(i + chunk, len(clips))}/{len(clips)} clips scored")
    return scores, params


def evaluate_clips(cfg: ClipsConfig, scorer=None, log=print) -> dict:
    """Plan, render and score the clips; every figure per rule, per pairing, against frames and stills."""
    from clients.core import aggregate as agg
    from training.evaluate import (DEFAULT_MANIFEST, BytesScorer, EvalConfig, read_version_metadata,
                                   resolve_version, select_samples)

    started = time.monotonic()
    version_dir = resolve_version(cfg.model, cfg.version)
    meta = read_version_metadata(version_dir)
    threshold = float(meta.get("threshold", contract.DEFAULT_THRESHOLD))
    band = tuple(meta.get("uncertain_band", (threshold, threshold)))
    manifest = cfg.manifest or DEFAULT_MANIFEST
    val = select_samples(EvalConfig(manifest=manifest, split="val", val_fraction=cfg.val_fraction, seed=cfg.seed))
    clip_seed = cfg.seed if cfg.clip_seed is None else cfg.clip_seed
    clips = plan_clips(val, cfg.frames, cfg.per_source, clip_seed, cfg.max_group_clips)
    scorer = scorer or BytesScorer(version_dir, cfg.batch_size)
    variation = Variation(codec=cfg.codec)
    log(f"{len(clips)} clips of {cfg.frames} frames from {len(val)} validation images; version {version_dir}")
    frame_scores, params = score_clips(scorer, clips, clip_seed, variation, log=log)
    labels = np.array([c.label for c in clips], np.int64)
    names = [c.subset for c in clips]

    stills = sorted({p for c in clips for p in c.paths})
    still_score = dict(zip(stills, scorer.score_files(stills)))
    still_units = [(c.subset, c.label, still_score[p]) for c in clips for p in dict.fromkeys(c.paths)]
    frame_units = [(c.subset, c.label, float(s)) for c, fs in zip(clips, frame_scores) for s in fs]

    def table(unit_names, unit_labels, unit_scores) -> dict:
        ys, ss = np.asarray(unit_labels, np.int64), np.asarray(unit_scores, np.float64)
        return {k: figures(ys[i], ss[i], threshold, band) for k, i in subsets(list(unit_names), ys).items()}

    per_rule = aggregate(frame_scores)
    report = {
        "model": {"path": recorded(version_dir), "version": meta.get("version"), "threshold": threshold,
                  "uncertain_band": list(band), "signature": contract.SIGNATURE_BYTES},
        "data": {"manifest": recorded(manifest), "split": "val", "val_fraction": cfg.val_fraction, "seed": cfg.seed,
                 "clip_seed": clip_seed, "validation_images": len(val), "frames_per_clip": cfg.frames, "per_source": cfg.per_source,
                 "clips": {k: dict(v) for k, v in _counts(clips).items()},
                 "variation": {**asdict(variation), "fps": FPS},
                 "how": "synthetic clips from still validation crops (see training/clips.py), not real video"},
        "rules": {r: agg.rule_description(r) for r in agg.RULES},
        "default_rule": agg.DEFAULT_RULE,
        "stills": table(*zip(*still_units)),
        "frames": table(*zip(*frame_units)),
        "clips": {r: table(names, labels, s) for r, s in per_rule.items()},
        "auc_gap_vs_default": {r: paired_auc_gap(labels, s, per_rule[agg.DEFAULT_RULE], seed=clip_seed)
                               for r, s in per_rule.items() if r != agg.DEFAULT_RULE},
        "clip_scores": [{"clip": c.clip_id, "label": c.label, "frames": [round(float(x), 6) for x in fs],
                         **p} for c, fs, p in zip(clips, frame_scores, params)],
    }
    report["choice"] = choose_rule(report, agg.DEFAULT_RULE)
    report["timing_s"] = round(time.monotonic() - started, 1)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "clips.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "clips.md").write_text(markdown(report))
    return report


def _counts(clips: list[ClipSpec]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: {"real": 0, "fake": 0})
    for c in clips:
        out[c.subset]["fake" if c.label else "real"] += 1
    return dict(sorted(out.items()))


PAIRINGS = (("overall", "overall"), ("dfdc_fake_vs_dfdc_real", "DFDC swaps vs DFDC reals"),
            ("dfdc_groups_vs_dfdc_real", "DFDC multi-swap groups vs DFDC reals"),
            ("mobilestylegan_vs_all_real", "MobileStyleGAN vs all reals"))


def _f(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def markdown(report: dict) -> str:
    """The short table: AUC per pairing for stills, frames and each rule; FPR, uncertain share and ECE."""
    m, d = report["model"], report["data"]
    rows = [("still photos (untouched)", report["stills"]), ("frames (each clip frame alone)", report["frames"])]
    rows += [(f"clips, {r}" + (" (default)" if r == report["default_rule"] else ""), t)
             for r, t in report["clips"].items()]
    present = [(k, label) for k, label in PAIRINGS if k in report["frames"]]
    head = ("| unit | " + " | ".join(f"AUC {label}" for _, label in present) +
            " | FPR real at threshold | uncertain | ECE |")
    lines = [f"Version {m['version']} (threshold {m['threshold']}, band {m['uncertain_band'][0]}-"
             f"{m['uncertain_band'][1]}); {sum(v['real'] + v['fake'] for v in d['clips'].values())} synthetic clips "
             f"of {d['frames_per_clip']} frames from the validation split: "
             + ", ".join(f"{k} {v['fake']} fake / {v['real']} real" for k, v in d['clips'].items()) + ".", "",
             head, "|" + "---|" * (len(present) + 4)]
    for name, t in rows:
        o = t["overall"]
        lines.append(f"| {name} | " + " | ".join(_f(t[k]["auc"]) if k in t else "-" for k, _ in present) +
                     f" | {_f(o['fpr_at_threshold'], True)} | {_f(o['uncertain_share'], True)} | {_f(o['ece'])} |")
    reals = [k for k in report["frames"] if k.endswith("_real_only")]
    lines += ["", "False-positive rate on real clips per source at the threshold (frames, then each rule):", "",
              "| unit | " + " | ".join(k.replace("_real_only", "") for k in reals) + " |",
              "|" + "---|" * (len(reals) + 1)]
    for name, t in rows[1:]:
        lines.append(f"| {name} | " + " | ".join(_f(t[k]["fpr_at_threshold"], True) for k in reals) + " |")
    c = report["choice"]
    gaps = ", ".join(f"{r} {g['diff']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]"
                     for r, g in report["auc_gap_vs_default"].items() if g["diff"] is not None)
    lines += ["", f"Overall clip AUC minus {report['default_rule']}'s (95% bootstrap interval): {gaps}.",
              f"Rule chosen: **{c['chosen']}** (best clip AUC among calibration-sensible rules: {c['best_auc_rule']}"
              + ("" if c["chosen"] == c["best_auc_rule"] else ", not ahead of the default beyond its bootstrap noise")
              + f"; eligible: {', '.join(c['eligible'])})."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> ClipsConfig:
    """The command line, read in one place."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=ClipsConfig.model, help="model base path or one version folder")
    p.add_argument("--version", type=int, help="version to score (default: the highest complete one)")
    p.add_argument("--manifest", help="data manifest (default: ../shared/data/faces/manifest.csv)")
    p.add_argument("--out", help="folder for clips.json and clips.md")
    p.add_argument("--val-fraction", type=float, default=ClipsConfig.val_fraction)
    p.add_argument("--seed", type=int, default=ClipsConfig.seed, help="the training seed (same split); also the clips'")
    p.add_argument("--clip-seed", type=int, help="seed of the clips' choice and variation (default: --seed)")
    p.add_argument("--frames", type=int, default=FRAMES, help="frames per clip")
    p.add_argument("--per-source", type=int, default=PER_SOURCE,
                   help="photo-sequence clips per source and label (0: one per validation group)")
    p.add_argument("--max-group-clips", type=int, help="at most this many DFDC group clips (default: all)")
    p.add_argument("--batch-size", type=int, default=ClipsConfig.batch_size)
    p.add_argument("--codec", choices=("h264", "jpeg"), default="h264")
    a = p.parse_args(argv)
    return ClipsConfig(model=a.model, version=a.version, manifest=a.manifest, out=a.out, val_fraction=a.val_fraction,
                       seed=a.seed, clip_seed=a.clip_seed, frames=a.frames, per_source=a.per_source or None,
                       max_group_clips=a.max_group_clips, batch_size=a.batch_size, codec=a.codec)


def main(argv: list[str] | None = None) -> int:
    """Entry point: evaluate clips, print the table."""
    from training.cli import run_and_print

    cfg = parse_args(argv)
    return run_and_print(lambda: evaluate_clips(cfg), markdown)


if __name__ == "__main__":
    sys.exit(main())
