"""training.clips on a tiny synthetic set: the clip builder (determinism, label purity, the split), the rules, the
report's shape with a stub scorer (no TensorFlow model is loaded here)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from training import clips
from training.data import load_samples, split_by_group
from training.evaluate import EvalConfig, select_samples
from tests.training.evalsupport import face_like


def _manifest(root: Path) -> Path:
    """'dfdc': 12 groups of one real and 1-3 fakes (made from it, as in DFDC); 'gan' fakes; 'photos' reals."""
    rng = np.random.default_rng(0)
    rows = []

    def add(source, label, group, name, size=64):
        folder = root / source / ("fake" if label else "real")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.jpg"
        face_like(rng, size, bool(label)).save(path, quality=90)
        rows.append([str(path.relative_to(root)), "fake" if label else "real", source, group])

    for g in range(12):
        add("dfdc", 0, f"v{g:02d}", f"r{g:02d}")
        for k in range(1 + g % 3):
            add("dfdc", 1, f"v{g:02d}", f"f{g:02d}_{k}")
    for i in range(8):
        add("gan", 1, f"gan{i}", f"g{i}", 72)
        add("photos", 0, f"ph{i}", f"p{i}", 60)
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "source", "group"], *rows])
    return manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    manifest = _manifest(root / "data")
    cfg = EvalConfig(manifest=str(manifest), split="val", val_fraction=0.5, seed=7)
    return {"root": root, "manifest": manifest, "val": select_samples(cfg)}


def test_clips_come_only_from_the_validation_split_and_no_group_crosses_it(tiny):
    all_samples = load_samples(tiny["manifest"])
    train, val = split_by_group(all_samples, val_fraction=0.5, seed=7)
    plan = clips.plan_clips(tiny["val"], frames=6, per_source=None, seed=7)
    train_paths, train_groups = {s.path for s in train}, {s.group for s in train}
    val_groups = {s.group for s in val}
    assert plan
    for c in plan:
        assert c.group in val_groups and c.group not in train_groups
        assert not set(c.paths) & train_paths


def test_every_clip_holds_one_label_one_source_one_group(tiny):
    by_path = {s.path: s for s in tiny["val"]}
    plan = clips.plan_clips(tiny["val"], frames=6, per_source=None, seed=7)
    kinds = {c.kind for c in plan}
    assert kinds == {"photo_sequence", "dfdc_group"}
    for c in plan:
        assert {(by_path[p].label, by_path[p].source, by_path[p].group) for p in c.paths} == {(c.label, c.source, c.group)}
        if c.kind == "dfdc_group":
            assert c.label == 1 and len(c.paths) >= 2  # the group's real frame is never in its fake clip
            assert list(c.paths) == [s.path for s in tiny["val"] if s.group == c.group and s.label == 1]
        else:
            assert len(c.paths) == 1
    # real clips from every real source, fake clips from every fake source
    assert {(c.subset, c.label) for c in plan} >= {("dfdc", 0), ("dfdc", 1), ("photos", 0), ("gan", 1)}


def test_a_mixed_clip_is_refused(tiny):
    """A path listed under two labels (a broken manifest) makes a clip whose frames disagree: refused."""
    val = list(tiny["val"])
    real = next(s for s in val if s.source == "dfdc" and s.label == 0)
    twice = [*val, type(real)(real.path, 1, real.source, real.group), real]
    with pytest.raises(ValueError, match="mixes"):
        clips.plan_clips(twice, frames=4, per_source=None, seed=7)


def test_the_plan_is_deterministic_and_capped(tiny):
    a = clips.plan_clips(tiny["val"], frames=8, per_source=2, seed=7)
    b = clips.plan_clips(tiny["val"], frames=8, per_source=2, seed=7)
    assert a == b
    per_key = {}
    for c in a:
        if c.kind == "photo_sequence":
            per_key[(c.source, c.label)] = per_key.get((c.source, c.label), 0) + 1
    assert max(per_key.values()) <= 2


@pytest.mark.parametrize("codec", ["jpeg", "h264"])
def test_rendering_is_deterministic_per_seed_and_varies_per_frame(tiny, codec):
    if codec == "h264":
        pytest.importorskip("av")
    variation = clips.Variation(codec=codec)
    spec = next(c for c in clips.plan_clips(tiny["val"], frames=6, per_source=None, seed=7) if c.kind == "dfdc_group")
    first, params = clips.render_clip(spec, 7, variation)
    again, params2 = clips.render_clip(spec, 7, variation)
    other, _ = clips.render_clip(spec, 8, variation)
    assert first == again and params == params2
    assert first != other
    assert len(first) == 6 and len(set(first)) == 6  # every frame differs (jitter, drift, codec)
    assert all(b.startswith(b"\x89PNG") for b in first)  # sent as the clients send clip crops
    assert clips.CRF_RANGE[0] <= params["crf"] <= clips.CRF_RANGE[1] and params["side"] % 4 == 0


def test_yuv_conversion_round_trips_closely():
    rng = np.random.default_rng(1)
    arr = np.repeat(np.repeat(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), 2, 0), 2, 1)
    back = clips.yuv420p_to_rgb(clips.rgb_to_yuv420p(arr))
    assert back.shape == arr.shape
    assert np.abs(back.astype(int) - arr).max() <= 3  # chroma constant over each 2x2 block: only rounding left


def test_each_rule_aggregates_a_clips_frames():
    frames = [np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9]), np.array([0.2, 0.4])]
    out = clips.aggregate(frames)
    assert set(out) == {"mean", "max", "median", "topk_mean"}
    assert out["mean"] == pytest.approx([0.4625, 0.3])
    assert out["max"] == pytest.approx([0.9, 0.4])
    assert out["median"] == pytest.approx([0.45, 0.3])
    assert out["topk_mean"] == pytest.approx([0.8, 0.4])  # top 25% of 8 = 2 frames; of 2 = 1 frame


def test_figures_count_false_alarms_and_the_band():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.3, 0.5, 0.9, 0.3, 0.8])
    f = clips.figures(labels, scores, threshold=0.5, band=(0.25, 0.55))
    assert f["fpr_at_threshold"] == 0.5 and f["tpr_at_threshold"] == 0.5
    assert f["uncertain_share"] == pytest.approx(0.5)
    assert f["n_real"] == 4 and f["n_fake"] == 2


class _StubScorer:
    """Scores a PNG crop by its mean brightness and a still by its file's first bytes: no model needed."""

    def score(self, blobs):
        from io import BytesIO

        from PIL import Image

        return np.array([np.asarray(Image.open(BytesIO(b)).convert("L"), np.float64).mean() / 255.0 for b in blobs])

    def score_files(self, paths):
        return self.score([Path(p).read_bytes() for p in paths])


def test_the_report_and_its_table(tiny, tmp_path):
    version = tmp_path / "model" / "3"
    (version / "variables").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    (version / "variables" / "variables.index").write_bytes(b"")
    (version / "assets.extra").mkdir()
    (version / "assets.extra" / "metadata.json").write_text(json.dumps(
        {"version": 3, "threshold": 0.45, "uncertain_band": [0.4, 0.5]}))
    cfg = clips.ClipsConfig(model=str(tmp_path / "model"), version=3, manifest=str(tiny["manifest"]),
                            out=str(tmp_path / "out"), val_fraction=0.5, seed=7, frames=4, per_source=None,
                            codec="jpeg")
    report = clips.evaluate_clips(cfg, scorer=_StubScorer(), log=lambda *_: None)
    saved = json.loads((tmp_path / "out" / "clips.json").read_text())
    assert saved["choice"]["chosen"] in saved["rules"]
    assert report["model"]["threshold"] == 0.45 and report["data"]["split"] == "val"
    assert set(report["clips"]) == {"mean", "max", "median", "topk_mean"}
    for table in (report["stills"], report["frames"], *report["clips"].values()):
        assert {"overall", "dfdc_fake_vs_dfdc_real", "dfdc_groups_vs_dfdc_real", "gan_vs_all_real"} <= set(table)
    n_clips = len(report["clip_scores"])
    assert report["clips"]["mean"]["overall"]["n"] == n_clips
    assert report["frames"]["overall"]["n"] == 4 * n_clips
    md = (tmp_path / "out" / "clips.md").read_text()
    from clients.core.aggregate import DEFAULT_RULE

    assert f"| clips, {DEFAULT_RULE} (default) |" in md and "Rule chosen" in md
