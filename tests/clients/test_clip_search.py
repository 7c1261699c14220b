"""The face search of a clip (clients.core.clip.FallbackPolicy): a face-less clip runs the fallback passes on few
frames, while a face that only a fallback finds (one filling the frame, found by the padded pass) is still found on
(nearly) every frame, and soon after it appears in a clip that began without faces."""
from __future__ import annotations

from functools import lru_cache

import pytest
from PIL import Image

from clients.core import clip, faces
from clients.core.clip import FALLBACK_AFTER_MISSES, FALLBACK_EVERY, FallbackPolicy, prepare_clip
from clients.core.config import ClientConfig
from clients.core.faces import FALLBACKS, detect_with
from tests.clients import clips
from tests.clients.images import FACES

SIDE = 256


@lru_cache(maxsize=1)
def padded_only_face() -> Image.Image:
    """The first shared dfdc/real crop (by name) whose face, filling a SIDE px frame, only the padded pass finds on
    the first six frames of clips.filling_face_frames (a still alone is not enough: a pixel's drift lets the first
    pass find some crops)."""
    paths = sorted((FACES / "dfdc" / "real").glob("*.jpg"))[:40]
    if not paths:
        pytest.skip(f"shared dfdc/real faces not found at {(FACES / 'dfdc' / 'real').resolve()}")
    config = ClientConfig()
    for path in paths:
        face = Image.open(path).convert("RGB")
        frames = clips.filling_face_frames(face, 6, SIDE)
        if all(detect_with(f, config)[1] == "padded" for f in frames):  # stops at the first frame that is not
            return face
    pytest.skip("no shared dfdc/real crop among the first 40 is found by the padded pass only")


def counted(monkeypatch) -> dict[str, int]:
    """Counts of MTCNN passes (`_detect_once` calls) and of padded passes that found a face, from now on."""
    n = {"passes": 0, "padded_hits": 0}
    once, padded = faces._detect_once, faces._detect_padded

    def count_once(image, config):
        n["passes"] += 1
        return once(image, config)

    def count_padded(image, config):
        out = padded(image, config)
        n["padded_hits"] += bool(out)
        return out
    monkeypatch.setattr(faces, "_detect_once", count_once)
    monkeypatch.setattr(faces, "_detect_padded", count_padded)
    return n


def every_fallback(monkeypatch) -> None:
    """The search as it was before the policy: both fallback passes on every frame where the first finds nothing."""
    monkeypatch.setattr(clip.FallbackPolicy, "fallbacks", lambda self: FALLBACKS)


def test_the_policy_skips_fallbacks_in_a_faceless_stretch_and_tries_the_last_finder_first():
    p = FallbackPolicy()
    runs = []
    for _ in range(FALLBACK_AFTER_MISSES + 2 * FALLBACK_EVERY):
        runs.append(bool(p.fallbacks()))
        p.record(None)
    assert runs[:FALLBACK_AFTER_MISSES] == [True] * FALLBACK_AFTER_MISSES
    assert runs[FALLBACK_AFTER_MISSES:] == ([False] * (FALLBACK_EVERY - 1) + [True]) * 2
    p.record("padded")  # a fallback found a face: every frame gets them again, that one first
    assert p.fallbacks() == ("padded", "finer")
    p.record("first")
    assert p.fallbacks() == ("padded", "finer") and p.misses == 0
    p.record("finer")
    assert p.fallbacks() == ("finer", "padded")


def test_a_face_filling_every_frame_is_found_on_nearly_every_frame(monkeypatch):
    """Only the padded pass finds this face: it must still be found on (nearly) every sampled frame, as when every
    frame ran every pass."""
    data = clips.encode_frames(clips.filling_face_frames(padded_only_face(), 24, SIDE))
    config = ClientConfig(video_frames=24)
    n = counted(monkeypatch)
    now = sum(bool(b) for b in prepare_clip(data, config).boxes)
    padded_hits = n["padded_hits"]
    every_fallback(monkeypatch)
    before = sum(bool(b) for b in prepare_clip(data, config).boxes)
    print(f"frames with a face: {now}/24 with the policy, {before}/24 with every fallback on every frame; "
          f"{padded_hits} found by the padded pass")
    assert before >= 20 and padded_hits >= 20  # the clip is one that needs the padded pass
    assert now >= before - 1


def test_a_face_that_only_a_fallback_finds_is_picked_up_after_a_faceless_start(monkeypatch):
    """8 face-less frames put the search into its sparse mode; the face filling the next 16 frames is found within
    FALLBACK_EVERY frames of appearing and on every frame after (where the full search finds it)."""
    lead = 8
    data = clips.encode_frames(clips.filling_face_frames(padded_only_face(), 16, SIDE, lead=lead))
    config = ClientConfig(video_frames=24)
    now = [bool(b) for b in prepare_clip(data, config).boxes]
    every_fallback(monkeypatch)
    before = [bool(b) for b in prepare_clip(data, config).boxes]
    print(f"with the policy {''.join('F' if f else '.' for f in now)}; "
          f"every fallback {''.join('F' if f else '.' for f in before)}")
    assert not any(now[:lead]) and sum(before[lead:]) >= 14
    settled = lead + FALLBACK_EVERY
    assert any(now[lead:settled]) and sum(now[settled:]) >= sum(before[settled:]) - 1


def test_a_faceless_clip_runs_fewer_mtcnn_passes(monkeypatch):
    """A 640x360 face-less clip, 20 sampled frames: the first pass on each, the two fallbacks on the first
    FALLBACK_AFTER_MISSES frames and then on one frame in FALLBACK_EVERY (every frame ran all three before)."""
    data = clips.faceless_clip(seconds=3.0, size=(640, 360))
    config = ClientConfig(video_frames=20)
    n = counted(monkeypatch)
    prep = prepare_clip(data, config)
    now = n["passes"]
    frames = len(prep.frames)
    assert frames == 20 and not any(prep.boxes)
    sparse = (frames - FALLBACK_AFTER_MISSES) // FALLBACK_EVERY
    assert now == frames + 2 * (FALLBACK_AFTER_MISSES + sparse)  # 20 + 2 * (4 + 4) = 36
    n["passes"] = 0
    every_fallback(monkeypatch)
    prepare_clip(data, config)
    print(f"MTCNN passes on {frames} face-less frames: {now} with the policy, {n['passes']} before")
    assert n["passes"] == 3 * frames and now < 0.65 * n["passes"]
