"""analyze_clip: a tiny clip -> sampled frames -> faces -> tracks -> batched requests -> a ClipVerdict that follows
the photo path's label rules; against the real model server on loopback, our scripted servers and stubs."""
from __future__ import annotations

import asyncio
import hashlib
import json
import math

import pytest
from PIL import Image

from clients.core.aggregate import rule_description, track_score
from clients.core.analyze import Analysis
from clients.core.clip import (ClipAnalysis, PreparedClip, analyze_any, analyze_any_async, analyze_clip,
                               analyze_clip_async, build_clip_verdict, prepare_clip)
from clients.core.clip_verdict import ClipVerdict
from clients.core.config import ClientConfig
from clients.core.errors import CorruptVideo, DetectorUnavailable, NoVideoStream, VideoTooLong
from clients.core.facecrop import Box
from clients.core.grpc_client import AsyncDetectorClient, DetectorClient, ModelInfo, Prediction
from clients.core.verdict import Label
from clients.core.video import SampledFrame, VideoInfo
from serving.contract import IMAGE_SIZE, confidence_for, label_for
from tests.clients import clips
from tests.clients.fake_servers import predict_server, scripted
from tests.clients.images import encode, noise_photo
from tests.helpers import free_port

CONFIG = ClientConfig(video_frames=12)


class CountingStub:
    """A Detector that scores every crop `p`, counts calls and batch sizes, and answers model_info."""

    target = "stub"

    def __init__(self, p: float = 0.2) -> None:
        self.p = p
        self.batches: list[int] = []
        self.info_calls = 0

    def predict(self, crops: list[bytes]) -> Prediction:
        self.batches.append(len(crops))
        heat = [[0.5] * 7 for _ in range(7)]
        return Prediction([self.p] * len(crops), [heat] * len(crops), 0.5, (0.4, 0.6), "stub_model", 7)

    def model_info(self) -> ModelInfo:
        self.info_calls += 1
        return ModelInfo("stub_model", 7, 0.5, (0.4, 0.6))

    def health(self) -> bool:
        return True

    def close(self) -> None:
        pass


@pytest.mark.integration
def test_analyze_clip_against_the_real_server(model_server):
    """Two moving shared faces, 2 s at 10 fps: every sampled frame has both, two tracks, labels by the contract."""
    data = clips.face_clip("mp4", faces=2, size=(320, 160))
    seen = []
    with DetectorClient(model_server, timeout_s=30) as client:
        a = analyze_clip(data, "клип.mp4", client, CONFIG, progress=lambda d, t: seen.append((d, t)))
    v = a.verdict
    assert isinstance(a, ClipAnalysis) and len(v.frames) >= 12 and len(v.tracks) == 2
    assert all(len(f.faces) == 2 for f in v.frames)
    for t in v.tracks:
        assert t.fake_probability == pytest.approx(track_score(t.frame_scores), abs=1e-6)
        assert t.label == label_for(t.fake_probability, v.threshold, v.uncertain_band)
        assert t.confidence == pytest.approx(confidence_for(t.fake_probability, t.label), abs=1e-6)
        assert set(t.driving_frames) <= set(t.frame_indices) and t.frame_indices == sorted(t.frame_indices)
    top = max(v.tracks, key=lambda t: t.fake_probability)
    assert (v.label, v.fake_probability) == (top.label, top.fake_probability)
    assert v.model_name == "deepfake_detector" and v.model_version >= 1 and v.rule == rule_description()
    assert v.sha256 == hashlib.sha256(data).hexdigest() and v.filename == "клип.mp4"
    assert (v.container, v.codec, v.video_size) == ("MP4", "h264", (320, 160)) and v.fps == pytest.approx(10)
    assert {"probe", "decode_and_faces", "faces", "request", "total"} <= set(v.timings_ms)
    assert set(a.frames) == {f.index for f in v.frames} and all(im.size == (320, 160) for im in a.frames.values())
    assert len(a.heatmaps) == len(a.crops) == sum(len(f.faces) for f in v.frames)
    assert all(len(h) == 7 for h in a.heatmaps.values())
    assert all(c.width == c.height <= IMAGE_SIZE for c in a.crops.values())  # square, never upscaled by the client
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert ClipVerdict.from_dict(json.loads(v.to_json())) == v


def test_all_crops_go_in_a_few_batched_calls_with_the_served_threshold():
    """~36 crops (2 faces x 18 frames, as many as MTCNN finds) in calls of 16 through gRPC; the scripted server's
    threshold decides."""
    data = clips.face_clip("mp4", faces=2, size=(320, 160), source="synthetic")
    with predict_server(scripted([0.7], threshold=0.6, band=0.05)) as (target, rec):
        with DetectorClient(target, timeout_s=10) as client:
            a = analyze_clip(data, "x.mp4", client, ClientConfig(video_frames=18))
    v = a.verdict
    crops = sum(len(f.faces) for f in v.frames)
    assert len(v.frames) == 18 and crops > 16
    assert rec.calls == math.ceil(crops / 16)
    assert v.threshold == pytest.approx(0.6) and v.uncertain_band == pytest.approx((0.55, 0.65))
    assert v.label == Label.FAKE and v.confidence == pytest.approx(0.7) and v.headline.startswith("Likely fake")


def test_a_clip_without_faces_has_no_tracks_and_no_verdict_never_fake():
    stub = CountingStub(p=0.99)
    a = analyze_clip(clips.faceless_clip(), "landscape.mp4", stub, ClientConfig(video_frames=6))
    v = a.verdict
    assert v.no_face and v.tracks == [] and v.shown_label == Label.NO_FACE and v.label != Label.FAKE
    assert v.headline == "No face found in the sampled frames: no real/fake verdict"
    assert stub.batches == [] and stub.info_calls == 1
    assert v.model_name == "stub_model" and v.threshold == 0.5 and len(v.frames) == 6


def test_progress_reaches_its_total_and_async_matches_sync():
    data = clips.face_clip("mp4", source="synthetic")
    sync_seen, async_seen = [], []
    sync = analyze_clip(data, "x.mp4", CountingStub(), CONFIG, progress=lambda d, t: sync_seen.append((d, t)))

    class AsyncStub:
        target = "stub"

        def __init__(self):
            self.inner = CountingStub()

        async def predict(self, crops):
            return self.inner.predict(crops)

        async def model_info(self):
            return self.inner.model_info()

    async def go():
        loop = asyncio.get_running_loop()
        threads = set()

        def on_progress(d, t):
            threads.add(asyncio.get_running_loop() is loop)
            async_seen.append((d, t))
        res = await analyze_clip_async(data, "x.mp4", AsyncStub(), CONFIG, progress=on_progress)
        await asyncio.sleep(0)  # let call_soon_threadsafe callbacks run
        return res, threads
    res, threads = asyncio.run(go())
    assert threads == {True}  # progress ran on the loop's thread
    total = sync_seen[-1][1]
    assert sync_seen[-1] == (total, total) and len(sync_seen) == total
    assert sorted(async_seen) == sync_seen
    assert [f.index for f in res.verdict.frames] == [f.index for f in sync.verdict.frames]
    assert [t.frame_scores for t in res.verdict.tracks] == [t.frame_scores for t in sync.verdict.tracks]


def test_the_most_suspicious_track_decides_and_driving_frames_come_from_the_rule():
    """build_clip_verdict on a made-up preparation, by the top-quarter rule: track 1 (0.9 on its top quarter)
    decides over track 0."""
    frames = [SampledFrame(i * 3, i * 0.1, i == 0, Image.new("RGB", (64, 64))) for i in range(8)]
    boxes = [[Box(0, 0, 20, 20), Box(40, 0, 20, 20)] for _ in frames]
    ids = [[0, 1] for _ in frames]
    keys = [(f.index, t) for f in frames for t in (0, 1)]
    prep = PreparedClip(VideoInfo("MP4", "h264", 1.0, 30.0, (64, 64), 24), frames, boxes, ids, keys, [], [], [],
                        "x" * 64, {})
    probs = []
    for i, _ in enumerate(frames):
        probs += [0.1, 0.9 if i in (2, 5) else 0.2]
    pred = Prediction(probs, [], 0.5, (0.45, 0.55), "m", 3)
    v = build_clip_verdict(prep, pred, "x.mp4", rule="topk_mean")
    assert [t.track_id for t in v.tracks] == [0, 1]
    assert v.tracks[0].label == Label.REAL and v.tracks[0].fake_probability == pytest.approx(0.1)
    assert v.tracks[1].fake_probability == pytest.approx(0.9) and v.tracks[1].label == Label.FAKE
    assert v.tracks[1].driving_frames == [6, 15]
    assert (v.label, v.fake_probability) == (Label.FAKE, pytest.approx(0.9))
    assert [len(f.faces) for f in v.frames] == [2] * 8 and v.frames[2].top_score == pytest.approx(0.9)


def test_analyze_any_sniffs_photo_or_clip():
    stub = CountingStub(p=0.3)
    clip = analyze_any(clips.face_clip("gif", source="synthetic"), "anim.gif", stub, CONFIG)
    photo = analyze_any(encode(noise_photo((200, 150)), "PNG"), "p.png", stub, ClientConfig())
    assert isinstance(clip, ClipAnalysis) and clip.verdict.container == "GIF" and clip.verdict.tracks
    assert isinstance(photo, Analysis)

    class AsyncStub:
        target = "stub"

        async def predict(self, crops):
            return stub.predict(crops)

    res = asyncio.run(analyze_any_async(clips.face_clip("webm", source="synthetic"), "c.webm", AsyncStub(), CONFIG))
    assert isinstance(res, ClipAnalysis) and res.verdict.container == "WebM"


@pytest.mark.parametrize("data,error", [(clips.long_clip(), VideoTooLong), (clips.audio_only(), NoVideoStream),
                                        (clips.truncated(clips.face_clip("mp4", source="synthetic"), 0.5),
                                         CorruptVideo)])
def test_bad_clips_raise_their_invalid_video_kind_before_any_request(data, error):
    stub = CountingStub()
    with pytest.raises(error):
        analyze_clip(data, "bad.mp4", stub, CONFIG)
    assert stub.batches == [] and stub.info_calls == 0


def test_the_server_down_is_detector_unavailable():
    with DetectorClient(f"127.0.0.1:{free_port()}", timeout_s=1, retries=0) as client:
        with pytest.raises(DetectorUnavailable):
            analyze_clip(clips.face_clip("mp4", source="synthetic"), "x.mp4", client, CONFIG)


def test_prepare_keeps_every_sampled_frame_and_one_crop_per_face():
    prep = prepare_clip(clips.face_clip("mkv", faces=2, size=(320, 160), source="synthetic"), CONFIG)
    assert len(prep.frames) == len(prep.boxes) == len(prep.track_ids) >= 12
    assert len(prep.keys) == len(set(prep.keys)) == len(prep.encoded) == sum(len(b) for b in prep.boxes)
    assert prep.encoded[0][:8] == b"\x89PNG\r\n\x1a\n"
