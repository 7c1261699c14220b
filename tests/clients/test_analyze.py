"""analyze(): one upload -> faces -> one batched request -> a verdict a user can trust to be consistent."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json

import pytest

from clients.core.analyze import analyze, analyze_async, centre_square, prepare
from clients.core.config import ClientConfig
from clients.core.errors import EmptyFile, NotAnImage
from clients.core.grpc_client import AsyncDetectorClient, DetectorClient
from clients.core.verdict import Verdict
from serving.contract import IMAGE_SIZE, confidence_for, label_for
from tests.clients.fake_servers import predict_server, scripted
from tests.clients.images import encode, noise_photo, photo_with_faces, shared_faces
from tests.helpers import free_port

NAME = "снимок_写真_صورة 😀.jpg"


@pytest.fixture(scope="module")
def two_face_jpeg() -> bytes:
    """A 1600x1200 photo with two shared faces, as JPEG."""
    a, b = shared_faces(4, seed=7)[:2]
    return encode(photo_with_faces([(a, (150, 200, 500)), (b, (1000, 500, 300))]), "JPEG", quality=92)


@pytest.mark.integration
def test_analyze_two_faces_against_the_real_server(model_server, two_face_jpeg):
    with DetectorClient(model_server, timeout_s=30) as client:
        a = analyze(two_face_jpeg, NAME, client, ClientConfig())
    v = a.verdict
    assert not v.whole_image and len(v.faces) == 2 == len(a.crops)
    big, small = v.faces
    assert big.box[2] * big.box[3] > small.box[2] * small.box[3]
    assert 100 < big.box[0] < 400 and 900 < small.box[0] < 1200
    assert all(c.size == (IMAGE_SIZE, IMAGE_SIZE) for c in a.crops)
    for f in v.faces:
        assert f.label == label_for(f.fake_probability, v.threshold, v.uncertain_band)
        assert f.confidence == pytest.approx(confidence_for(f.fake_probability, f.label))
        assert len(f.heatmap) == 7
    top = max(v.faces, key=lambda f: f.fake_probability)
    assert (v.label, v.fake_probability, v.confidence) == (top.label, top.fake_probability, top.confidence)
    assert v.sha256 == hashlib.sha256(two_face_jpeg).hexdigest()
    assert v.filename == NAME and v.model_name == "deepfake_detector" and v.model_version >= 1
    assert {"decode", "faces", "request", "total"} <= set(v.timings_ms)
    assert v.timings_ms["total"] >= v.timings_ms["request"] > 0
    assert a.image.size == v.image_size == (1600, 1200)
    back = Verdict.from_dict(json.loads(v.to_json()))
    assert back == v and NAME in v.to_json()


@pytest.mark.integration
def test_async_analyze_matches_sync(model_server, two_face_jpeg):
    async def go():
        async with AsyncDetectorClient(model_server, timeout_s=30) as client:
            return await analyze_async(two_face_jpeg, "x.jpg", client)
    with DetectorClient(model_server, timeout_s=30) as client:
        sync = analyze(two_face_jpeg, "x.jpg", client).verdict
    res = asyncio.run(go()).verdict
    assert [f.box for f in res.faces] == [f.box for f in sync.faces]
    assert [f.fake_probability for f in res.faces] == pytest.approx([f.fake_probability for f in sync.faces], abs=1e-4)


@pytest.mark.integration
def test_no_face_scores_the_centre_and_says_so():
    data = encode(noise_photo((900, 500)), "PNG")
    with predict_server(scripted([0.2])) as (target, rec):
        with DetectorClient(target, timeout_s=5) as client:
            a = analyze(data, "landscape.png", client)
    v = a.verdict
    assert v.whole_image is True and rec.calls == 1 and len(v.faces) == 1
    assert v.faces[0].crop_box == centre_square((900, 500)) == (200, 0, 700, 500)
    assert "no_face" in [w.code for w in v.warnings]
    assert "No face was found" in next(w.message for w in v.warnings if w.code == "no_face")


@pytest.mark.integration
def test_most_suspicious_face_decides_and_confidence_is_of_the_label(two_face_jpeg):
    # crop 0 (largest face) looks real, crop 1 fake: the image is fake, with the fake face's probability
    with predict_server(scripted([0.1, 0.83], threshold=0.6, band=0.05, version=12)) as (target, rec):
        with DetectorClient(target, timeout_s=5) as client:
            v = analyze(two_face_jpeg, "pair.jpg", client).verdict
    assert rec.calls == 1  # every face in ONE batched request
    assert [f.label for f in v.faces] == ["real", "fake"]
    assert v.faces[0].confidence == pytest.approx(0.9)  # probability of 'real', not of 'fake'
    assert (v.label, v.fake_probability, v.confidence) == ("fake", pytest.approx(0.83), pytest.approx(0.83))
    assert v.threshold == pytest.approx(0.6) and v.uncertain_band == pytest.approx((0.55, 0.65))
    assert v.model_version == 12  # the version that scored it, from the response


@pytest.mark.integration
def test_uncertain_band_is_reported_as_uncertain(two_face_jpeg):
    with predict_server(scripted([0.58, 0.3], threshold=0.6, band=0.05)) as (target, _):
        with DetectorClient(target, timeout_s=5) as client:
            v = analyze(two_face_jpeg, "pair.jpg", client).verdict
    assert v.label == "uncertain" and v.confidence == pytest.approx(0.58)


def test_invalid_upload_is_refused_before_any_request():
    with DetectorClient(f"127.0.0.1:{free_port()}", timeout_s=1) as client:  # nothing listens
        with pytest.raises(EmptyFile):
            analyze(b"", "empty.jpg", client)
        with pytest.raises(NotAnImage):
            analyze(b"not an image at all" * 10, "x.jpg", client)


def test_a_12_mp_photo_with_a_large_face_is_checked_from_a_quarter_scale_decode():
    face = shared_faces(1, seed=3)[0]
    data = encode(photo_with_faces([(face, (1200, 800, 1200))], size=(4000, 3000)), "JPEG", quality=90)
    prep = prepare(data, ClientConfig())
    assert prep.loaded.original_size == (4000, 3000)
    assert max(prep.loaded.image.size) < ClientConfig().work_long_side // 2  # 1/4 scale: enough for this face
    (box,) = prep.boxes
    scale = prep.loaded.scale
    assert abs(box.x / scale - 1200) < 150 and abs(box.w / scale - 1200) < 400  # the face, in original pixels
    assert prep.crops[0].size == (IMAGE_SIZE, IMAGE_SIZE)  # downscaled to the model's size, never upscaled


def test_a_small_face_in_a_12_mp_photo_is_cut_from_a_finer_decode():
    face = shared_faces(1, seed=3)[0]
    data = encode(photo_with_faces([(face, (1500, 1000, 260))], size=(4000, 3000)), "JPEG", quality=90)
    prep = prepare(data, ClientConfig())
    (box,) = prep.boxes
    crop_side = prep.crop_boxes[0][2] - prep.crop_boxes[0][0]
    assert crop_side >= IMAGE_SIZE  # as many pixels as the model takes, not an upscaled quarter-scale patch
    assert max(prep.loaded.image.size) > 1000
    assert abs(box.x / prep.loaded.scale - 1500) < 80  # boxes were carried over to the finer image
    assert prep.loaded.image.crop(prep.crop_boxes[0]).size == (crop_side, crop_side)


def _iou(a, b) -> float:
    """Intersection over union of two Boxes."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a.w * a.h + b.w * b.h - inter)


def test_a_12_mp_photo_is_searched_on_an_eighth_scale_decode_with_the_same_faces(monkeypatch):
    import clients.core.analyze as analyze_module
    from clients.core.faces import detect_faces, first_pass

    a, b = shared_faces(2, seed=5)[:2]
    data = encode(photo_with_faces([(a, (500, 700, 1100)), (b, (2600, 900, 700))], size=(4000, 3000)), "JPEG",
                  quality=90)
    searched = []
    monkeypatch.setattr(analyze_module, "first_pass", lambda copy, config: searched.append(copy.size)
                        or first_pass(copy, config))
    timings = {"decode": 0.0}
    loaded, boxes = analyze_module.decode_and_detect(data, ClientConfig(), timings)
    assert searched == [(500, 375)]  # detection ran on the 1/8 decode, not on a downscaled working image
    assert loaded.image.size == (1000, 750) and timings["decode"] > 0 and timings["faces"] > 0
    alone = detect_faces(loaded.image, ClientConfig())  # the single-scale path on the working image
    assert len(boxes) == len(alone) == 2
    assert all(_iou(x, y) > 0.8 for x, y in zip(boxes, alone))


def test_a_truncated_12_mp_jpeg_is_refused_on_the_two_scale_path():
    from clients.core.errors import CorruptImage

    data = encode(noise_photo((4000, 3000)), "JPEG", quality=90)
    with pytest.raises(CorruptImage):
        prepare(data[: len(data) // 2], ClientConfig())


@pytest.mark.integration
def test_quality_hints_computed_beside_the_request_reach_the_verdict(two_face_jpeg):
    from PIL import Image

    image = Image.open(io.BytesIO(two_face_jpeg))
    soft = encode(image.convert("RGB"), "JPEG", quality=8)  # heavy compression: a hint, never a refusal
    with predict_server(scripted([0.1, 0.2])) as (target, _):
        with DetectorClient(target, timeout_s=5) as client:
            v = analyze(soft, "soft.jpg", client).verdict
    assert "jpeg_compression" in [w.code for w in v.warnings]
    assert v.timings_ms["quality"] > 0 and v.timings_ms["request"] > 0
