"""Video intake (clients/core/video.py): sniffing, caps refused from the header before decoding, sampling positions,
decoding only the sampled frames by seeking, and every bad input ending in an InvalidVideo kind, never a crash."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients.core import video
from clients.core.config import ClientConfig
from clients.core.errors import (CorruptVideo, EmptyFile, InvalidImage, InvalidVideo, NotAVideo, NoVideoStream,
                                 VideoFileTooLarge, VideoTooLarge, VideoTooLong, VideoTooManyFrames)
from clients.core.video import (DecodeStep, VideoUpload, container_kind, fit_budget, is_video, plan_cost, plan_decode,
                                sample_positions)
from tests.clients import clips
from tests.clients.images import encode, noise_photo


# Sniffing -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,name", [("mp4", "MP4"), ("mov", "MOV"), ("mkv", "MKV"), ("webm", "WebM"),
                                       ("gif", "GIF")])
def test_every_accepted_container_is_recognised_by_content(kind, name):
    data = clips.face_clip(kind, source="synthetic")
    assert container_kind(data[:video.SNIFF_BYTES]) == name
    assert is_video(data)


def test_photos_and_still_gifs_are_not_videos():
    photo = noise_photo((80, 60))
    for fmt in ("JPEG", "PNG", "WEBP", "GIF"):
        assert not is_video(encode(photo, fmt)), fmt
    heic_like = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    assert container_kind(heic_like) is None and not is_video(heic_like)
    assert not is_video(b"") and not is_video(b"GIF89a broken")


# Sampling and the decode plan (pure) ------------------------------------------------------------------------------

def test_sample_positions_are_spread_evenly_and_cover_short_clips():
    assert sample_positions(900, 32)[:3] == [14, 42, 70] and sample_positions(900, 32)[-1] == 885
    pos = sample_positions(900, 32)
    gaps = {b - a for a, b in zip(pos, pos[1:])}
    assert len(pos) == 32 and gaps <= {28, 29}
    assert sample_positions(10, 32) == list(range(10))
    assert sample_positions(0, 32) == [] and sample_positions(5, 0) == []
    for n_frames in range(1, 200, 7):
        for n in (1, 3, 32):
            p = sample_positions(n_frames, n)
            assert p == sorted(set(p)) and 0 <= p[0] and p[-1] < n_frames


def test_plan_decodes_on_within_a_gop_and_seeks_across_keyframes():
    steps = plan_decode([3, 7, 13], keyframes=[0, 10])
    assert steps == [DecodeStep(3, 0, 4), DecodeStep(7, None, 4), DecodeStep(13, 10, 4)]
    assert plan_cost(steps) == 12


def test_a_plan_over_budget_falls_back_to_keyframes():
    keys = [0, 100, 200]
    steps = fit_budget([90, 190, 290], keys, budget=100)
    assert plan_cost(steps) <= 100
    assert [s.target for s in steps][:2] == [0, 100] or all(s.target in keys or s.cost <= 100 for s in steps)


# Seeking decodes only what is needed ---------------------------------------------------------------------------

def test_seeking_decodes_only_the_frames_between_each_keyframe_and_its_target():
    """60 numbered frames, a keyframe every 12: 8 samples decode the frames the plan counts, not the stream."""
    data = clips.numbered_clip(60, keyint=12)
    up = VideoUpload(data, ClientConfig(video_frames=8))
    assert up.index.keyframes == [0, 12, 24, 36, 48] and up.info.frame_count == 60
    steps = up.plan()
    frames = list(up.frames(steps))
    assert [f.index for f in frames] == [s.target for s in steps]
    assert [clips.frame_number(f.image) for f in frames] == [f.index for f in frames]  # the right pixels
    assert up.decoded == plan_cost(steps) < 60
    assert up.seeks == sum(1 for s in steps if s.seek_to is not None) > 1
    assert frames[0].time_s == pytest.approx(frames[0].index / 30, abs=1e-3)
    assert [f.keyframe for f in frames] == [f.index in (0, 12, 24, 36, 48) for f in frames]


@pytest.mark.parametrize("kind,bframes", [("mp4", 3), ("mov", 0), ("mkv", 2), ("webm", 0)])
def test_seeking_lands_on_the_right_frames_in_every_container(kind, bframes):
    """Keyframes every 16 frames, with and without B-frames (skipped on the way when they are not references)."""
    up = VideoUpload(clips.numbered_clip(64, keyint=16, kind=kind, bframes=bframes), ClientConfig(video_frames=8))
    frames = list(up.frames())
    assert up.seeks > 1 and len(frames) >= 8
    assert [clips.frame_number(f.image) for f in frames] == [f.index for f in frames]
    assert up.decoded < 64


def test_the_decode_cap_bounds_the_frames_decoded():
    data = clips.numbered_clip(60, keyint=60)  # one keyframe: every target costs its distance from frame 0
    up = VideoUpload(data, ClientConfig(video_frames=8, video_max_decoded_frames=20))
    frames = list(up.frames())
    assert up.decoded <= 20 and frames
    assert [clips.frame_number(f.image) for f in frames] == [f.index for f in frames]


@pytest.mark.parametrize("kind", ["mp4", "mov", "mkv", "webm", "gif"])
def test_each_container_decodes_its_sampled_frames(kind):
    up = VideoUpload(clips.face_clip(kind, source="synthetic"), ClientConfig(video_frames=8))
    frames = list(up.frames())
    assert len(frames) >= 8 and all(f.image.size == clips.SIZE and f.image.mode == "RGB" for f in frames)
    assert up.info.duration_s == pytest.approx(2.0, abs=0.15) and up.info.size == clips.SIZE
    assert up.info.fps == pytest.approx(10, abs=0.5) and up.info.frame_count == 20


def test_a_large_frame_is_scaled_to_the_working_size():
    data = clips.encode_frames([noise_photo((640, 360))] * 3, 10, "mp4")
    frames = list(VideoUpload(data, ClientConfig(video_work_long_side=320)).frames())
    assert frames[0].image.size == (320, 180)


# Bad input: each refused with a clear reason, caps before decoding -------------------------------------------------

def test_zero_bytes_is_the_empty_file_error():
    with pytest.raises(EmptyFile) as e:
        VideoUpload(b"")
    assert "empty" in e.value.user_message


def test_a_ten_hour_clip_is_refused_from_its_header_at_once(monkeypatch):
    data = clips.long_clip(hours=10)
    decoded = []
    monkeypatch.setattr(video._Decoder, "decode_to", lambda *a: decoded.append(a))
    with pytest.raises(VideoTooLong) as e:
        VideoUpload(data)
    assert "10 h" in e.value.user_message and "5 min" in e.value.user_message
    assert not decoded


def test_too_many_pixels_is_refused_before_decoding():
    with pytest.raises(VideoTooLarge) as e:
        VideoUpload(clips.huge_clip())
    assert "4096x2304" in e.value.user_message and "3840x2160" in e.value.user_message
    with pytest.raises(VideoTooLarge):
        VideoUpload(clips.face_clip(source="synthetic"), ClientConfig(video_max_pixels=100 * 100))


def test_a_file_over_the_byte_cap_is_refused_with_both_sizes():
    data = clips.face_clip(source="synthetic")
    with pytest.raises(VideoFileTooLarge) as e:
        VideoUpload(data, ClientConfig(max_bytes=1024))
    assert "MB" in e.value.user_message and isinstance(e.value, InvalidVideo)


def test_a_stuffed_stream_is_refused_by_its_packet_count():
    with pytest.raises(VideoTooManyFrames):
        VideoUpload(clips.face_clip(source="synthetic"), ClientConfig(video_max_packets=5))


@pytest.mark.parametrize("kind", ["mp4", "webm"])
def test_audio_only_has_no_video_stream(kind):
    with pytest.raises(NoVideoStream) as e:
        VideoUpload(clips.audio_only(kind))
    assert "no video" in e.value.user_message


def test_not_a_container_is_refused():
    with pytest.raises(NotAVideo):
        VideoUpload(b"hello, this is text")


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 0.99])
@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm", "gif"])
def test_truncated_clips_are_refused_or_checked_on_what_remains(kind, fraction):
    data = clips.truncated(clips.face_clip(kind, source="synthetic"), fraction)
    try:
        up = VideoUpload(data, ClientConfig(video_frames=8))
        frames = list(up.frames())
    except InvalidVideo as exc:
        assert exc.user_message and "\n" not in exc.user_message
    else:
        assert len(frames) <= 20


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """A copy with a few random byte flips, a cut, or a slice moved: what a broken transfer or disk leaves."""
    buf = bytearray(data)
    how = rng.randrange(3)
    if how == 0:
        for _ in range(rng.randint(1, 20)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif how == 1:
        del buf[rng.randrange(8, len(buf)):]
    else:
        a, b = sorted(rng.randrange(len(buf)) for _ in range(2))
        chunk = buf[a:b]
        del buf[a:b]
        buf[rng.randrange(len(buf) + 1):0] = chunk
    return bytes(buf)


def _check_survives(data: bytes) -> None:
    """An InvalidImage kind or frames: nothing else may come out of intake and decoding."""
    try:
        up = VideoUpload(data, ClientConfig(video_frames=6))
        list(up.frames())
    except (InvalidVideo, EmptyFile):
        pass


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm"])
def test_fuzzed_container_bytes_never_crash(kind):
    """200 seeded corruptions of a valid tiny clip per container: each is an InvalidVideo or a result."""
    data = clips.face_clip(kind, seconds=1.0, source="synthetic")
    rng = random.Random(21)
    for _ in range(200):
        _check_survives(_mutate(data, rng))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_flips_in_the_header_never_crash(data):
    """Flips concentrated in the first 600 bytes, where the container's boxes and codec headers live."""
    clip = bytearray(clips.face_clip("mp4", seconds=1.0, source="synthetic"))
    for _ in range(data.draw(st.integers(1, 6))):
        clip[data.draw(st.integers(0, min(600, len(clip) - 1)))] = data.draw(st.integers(0, 255))
    _check_survives(bytes(clip))


def test_every_video_error_is_an_invalid_image_with_a_one_line_message():
    for kind in (InvalidVideo, NotAVideo, NoVideoStream, CorruptVideo, VideoFileTooLarge, VideoTooLong,
                 VideoTooLarge, VideoTooManyFrames):
        err = kind()
        assert isinstance(err, InvalidImage) and err.user_message and "\n" not in err.user_message


def test_config_reads_the_video_env_vars():
    cfg = ClientConfig.from_env({"DEEPFAKE_VIDEO_FRAMES": "8", "DEEPFAKE_VIDEO_MAX_DURATION_S": "60",
                                 "DEEPFAKE_VIDEO_MAX_PIXELS": "1000000", "DEEPFAKE_VIDEO_MAX_DECODED_FRAMES": "99"})
    assert (cfg.video_frames, cfg.video_max_duration_s, cfg.video_max_pixels, cfg.video_max_decoded_frames) == \
        (8, 60.0, 1_000_000, 99)
    assert ClientConfig().video_frames == 32 and ClientConfig().video_max_duration_s == 300
