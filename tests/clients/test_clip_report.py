"""The clip report and its timeline picture, from a hand-built ClipVerdict and frames (no server, no video)."""
from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from clients.core import aggregate
from clients.core.clip_report import (clip_time, driving_frames, driving_times, render_clip_pdf, timeline_image,
                                      track_numbers)
from clients.core.clip_verdict import ClipVerdict, FrameFace, FrameResult, TrackResult
from clients.core.verdict import QualityWarning
from serving.contract import confidence_for, label_for
from tests.clients.synthetic import clean_face

NOW = datetime(2026, 12, 4, 18, 0, 0, tzinfo=timezone.utc)
SHA = hashlib.sha256(b"the clip").hexdigest()
THRESHOLD, BAND = 0.42, (0.385, 0.455)
FPS = 25.0


@dataclass
class HandBuiltClip:
    """What clients.core.clip.ClipAnalysis holds, built by hand: the verdict, kept frames and heatmaps."""

    verdict: ClipVerdict
    frames: dict[int, Image.Image] = field(default_factory=dict)
    heatmaps: dict[tuple[int, int], list[list[float]]] = field(default_factory=dict)
    crops: dict = field(default_factory=dict)


def _heat(cy: int, cx: int) -> list[list[float]]:
    yy, xx = np.mgrid[0:7, 0:7]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 3.0).tolist()


def _track(track_id: int, indices: list[int], scores: list[float]) -> TrackResult:
    """A track whose score and driving frames follow the shipped aggregation rule."""
    p = aggregate.track_score(scores)
    label = label_for(p, THRESHOLD, BAND)
    return TrackResult(track_id=track_id, fake_probability=p, label=label, confidence=confidence_for(p, label),
                       frame_indices=indices, frame_scores=scores,
                       driving_frames=[indices[k] for k in aggregate.driving_frames(scores)])


def clip_analysis(n_frames: int = 16, tracks: int = 2, filename: str = "forwarded clip.mp4",
                  warnings: list[QualityWarning] | None = None, size: tuple[int, int] = (640, 360)) -> HandBuiltClip:
    """A 10 s clip sampled at n_frames: track 0 on every frame and mostly fake, track 1 (if any) on the second
    half, real; the most suspicious track decides."""
    rng = np.random.default_rng(3)
    w, h = size
    indices = [round(k * 250 / n_frames) for k in range(n_frames)]
    base_image, _ = clean_face(size)
    per_track: dict[int, tuple[list[int], list[float]]] = {t: ([], []) for t in range(tracks)}
    frames, images, heatmaps = [], {}, {}
    for k, index in enumerate(indices):
        faces = []
        for t in range(tracks):
            if t == 1 and k < n_frames // 2:
                continue
            score = float(np.clip((0.75 + 0.2 * np.sin(k / 2.0)) if t == 0 else 0.1 + 0.05 * rng.random(), 0, 1))
            box = (w // 3 + 4 * k, h // 5, w // 5, h // 3) if t == 0 else (w // 20, h // 3, w // 6, h // 4)
            faces.append(FrameFace(track_id=t, box=box, fake_probability=score))
            per_track[t][0].append(index)
            per_track[t][1].append(score)
            heatmaps[(index, t)] = _heat(2 + t, 3)
        frames.append(FrameResult(index=index, time_s=index / FPS, keyframe=k % 4 == 0, faces=faces))
        images[index] = base_image.copy()
    results = [_track(t, *per_track[t]) for t in range(tracks) if per_track[t][0]]
    top = max(results, key=lambda r: r.fake_probability) if results else None
    label = top.label if top else "real"
    verdict = ClipVerdict(
        label=label, fake_probability=top.fake_probability if top else 0.0,
        confidence=top.confidence if top else 0.0, threshold=THRESHOLD, uncertain_band=BAND, tracks=results,
        frames=frames, rule=aggregate.rule_description(), model_name="deepfake_detector", model_version=5,
        duration_s=10.0, fps=FPS, video_size=size, container="mp4", codec="h264",
        timings_ms={"decode": 300.0, "faces": 400.0, "request": 200.0, "total": 950.0},
        warnings=warnings if warnings is not None else [], sha256=SHA, filename=filename)
    return HandBuiltClip(verdict=verdict, frames=images, heatmaps=heatmaps)


def _text(pdf: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


@pytest.fixture(scope="module")
def analysis() -> HandBuiltClip:
    return clip_analysis()


@pytest.fixture(scope="module")
def report(analysis) -> bytes:
    return render_clip_pdf(analysis, now=NOW)


def test_clip_report_states_verdict_rule_band_and_clip(report, analysis):
    v = analysis.verdict
    assert v.label == "fake" and len(v.tracks) == 2
    text, pages = _text(report)
    flat = re.sub(r"\s+", " ", text)
    assert "video clip" in text and "Likely fake" in text
    assert f"{v.fake_probability:.3f}" in text and f"{v.confidence:.0%}" in text
    assert "threshold 0.42, uncertain band 0.385–0.455" in flat
    assert aggregate.rule_description() in flat                            # the rule, from the verdict
    assert "forwarded clip.mp4" in text and SHA in re.sub(r"\s+", "", text)
    assert "640×360 px, 0:10.0 long, 25 frames/s (mp4 · h264)" in flat
    assert "16 sampled, 16 with a face" in flat
    assert "2026-12-04 18:00:00 UTC" in text and f"Page {pages} of {pages}" in text
    assert "Score over time, per face track" in text and "Frames that drove the verdict" in text
    assert 1 <= pages <= 4
    keywords = PdfReader(io.BytesIO(report)).metadata["/Keywords"]
    assert "kind:video" in keywords and f"sha256:{SHA}" in keywords and "label:fake" in keywords


def test_track_table_lists_every_track_with_its_driving_times(report, analysis):
    v = analysis.verdict
    text, _ = _text(report)
    flat = re.sub(r"\s+", " ", text)
    numbers = track_numbers(v)
    assert sorted(numbers.values()) == [1, 2]
    for track in v.tracks:
        assert f"{len(track.frame_indices)} of 16" in flat
        assert f"{track.fake_probability:.3f}" in flat
        assert driving_times(v, track) in flat
    assert "Likely real" in text                                             # the second face's label


def test_driving_frames_have_boxes_crops_and_heatmaps(analysis):
    shown = driving_frames(analysis)
    v = analysis.verdict
    assert shown and shown[0].track_id == max(v.tracks, key=lambda t: t.fake_probability).track_id
    first = shown[0]
    assert first.crop is not None and first.heatmap is not None
    assert first.frame.size == analysis.frames[first.index].size
    diff = np.abs(np.asarray(first.frame, np.int32) - np.asarray(analysis.frames[first.index], np.int32))
    assert diff.sum() > 0, "the boxes are drawn on a copy"
    assert np.abs(np.asarray(analysis.frames[first.index], np.int32)
                  - np.asarray(clip_analysis().frames[first.index], np.int32)).sum() == 0, "the frame is untouched"


def test_timeline_draws_points_zones_and_the_threshold(analysis):
    v = analysis.verdict
    track = max(v.tracks, key=lambda t: t.fake_probability)
    img = np.asarray(timeline_image(v, track, (600, 150)).convert("RGB"), dtype=np.int32)
    assert img.shape == (150, 600, 3)
    red = (img[..., 0] > 190) & (img[..., 1] < 70) & (img[..., 2] < 70)
    assert red.sum() > 50, "fake-scored frames are red dots"
    pink = (img[..., 0] > 245) & (img[..., 1] > 220) & (img[..., 1] < 240) & (img[..., 2] < 235)
    assert pink.sum() > 1000, "the fake zone is shaded"
    # The first dot (t=0) sits left of the last one: time runs left to right.
    cols = np.nonzero(red.any(axis=0))[0]
    assert cols.min() < 150 and cols.max() > 450


def test_a_track_seen_only_late_starts_late_on_its_timeline(analysis):
    v = analysis.verdict
    late = next(t for t in v.tracks if t.track_id == 1)
    img = np.asarray(timeline_image(v, late, (600, 150)).convert("RGB"), dtype=np.int32)
    green = (img[..., 0] < 80) & (img[..., 1] > 130) & (img[..., 2] < 80)
    cols = np.nonzero(green.sum(axis=0) >= 4)[0]   # dots, not the thin dashed line of the track's score
    assert cols.size and cols.min() > 250, "no green dot in the first half of the clip"


def test_clip_time_reads_minutes_seconds_tenths():
    assert [clip_time(t) for t in (0, 3.21, 59.96, 61.5, 754.04)] == ["0:00.0", "0:03.2", "1:00.0", "1:01.5",
                                                                        "12:34.0"]


def test_no_face_clip_has_no_verdict_and_no_plot():
    pdf = render_clip_pdf(clip_analysis(tracks=0), now=NOW)
    text, _ = _text(pdf)
    banner = text.split("VERDICT", 1)[1].lstrip().splitlines()[0]
    assert banner.startswith("No face found")
    assert "Likely fake" not in text and "Likely real" not in text
    assert "No face was found in the 16 sampled frames" in re.sub(r"\s+", " ", text)
    assert "label:no_face" in PdfReader(io.BytesIO(pdf)).metadata["/Keywords"]


def test_many_tracks_and_unicode_names_fit(caplog):
    name = "видео 家族 😀 \u202e.mp4"
    analysis = clip_analysis(n_frames=32, tracks=2, filename=name,
                             warnings=[QualityWarning("small_face", "The face is small in most frames.")])
    with caplog.at_level("WARNING", logger="fpdf"):
        pdf = render_clip_pdf(analysis, now=NOW)
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    text, _ = _text(pdf)
    assert "видео" in text and "Small face" in text
    assert len(pdf) < 600 * 1024


def test_same_input_and_date_give_the_same_bytes(report):
    assert render_clip_pdf(clip_analysis(), now=NOW) == report


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_clip_report_renders_with_timeline_and_heatmaps(report, tmp_path):
    pdf = tmp_path / "clip.pdf"
    pdf.write_bytes(report)
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "p")], check=True, timeout=60)
    pages = [np.asarray(Image.open(p).convert("RGB"), dtype=np.int32) for p in sorted(tmp_path.glob("p*.png"))]
    first = pages[0]
    assert first.shape[0] > first.shape[1] > 300 and first.std() > 20
    every = np.concatenate([p.reshape(-1, 3) for p in pages])
    red = (every[:, 0] > 180) & (every[:, 1] < 80) & (every[:, 2] < 80)
    assert red.sum() > 200, "the 'Likely fake' colour and the red dots are drawn"
    hot = every[:, 0] - every[:, 2]
    assert (hot > 100).sum() > 50, "a heatmap overlay is drawn"
