"""Overlay pictures: face boxes by label, the heatmap blended where it is hot, thumbnails."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clients.core import overlay
from clients.core.verdict import FaceResult, Verdict


def _verdict(faces: list[FaceResult], size: tuple[int, int]) -> Verdict:
    return Verdict(label="fake", fake_probability=0.9, confidence=0.9, threshold=0.5, uncertain_band=(0.4, 0.6),
                   faces=faces, whole_image=False, model_name="deepfake_detector", model_version=1,
                   image_size=size, original_size=size)


def _face(box, p, label) -> FaceResult:
    return FaceResult(box=box, fake_probability=p, label=label, confidence=p if label == "fake" else 1 - p)


def _count(arr: np.ndarray, colour) -> int:
    return int(np.all(arr == np.array(colour, dtype=np.uint8), axis=-1).sum())


def test_boxes_are_drawn_in_label_colours_without_touching_the_input():
    image = Image.new("RGB", (640, 480), (128, 128, 128))
    verdict = _verdict([_face((50, 200, 150, 180), 0.93, "fake"), _face((400, 220, 120, 150), 0.1, "real"),
                        _face((260, 60, 80, 90), 0.5, "uncertain")], image.size)
    out = overlay.draw_boxes(image, verdict)
    assert out.size == image.size and out.mode == "RGB"
    assert image.getpixel((50, 300)) == (128, 128, 128)       # input untouched
    arr = np.asarray(out)
    assert tuple(arr[300, 50]) == overlay.LABEL_COLOURS["fake"]    # left edge of the fake box
    assert tuple(arr[300, 400]) == overlay.LABEL_COLOURS["real"]
    assert tuple(arr[100, 260]) == overlay.LABEL_COLOURS["uncertain"]
    assert tuple(arr[10, 10]) == (128, 128, 128)                    # far from every box


@pytest.mark.parametrize("size", [(320, 240), (4000, 3000)])
def test_tags_stay_legible_at_any_size(size):
    w, h = size
    image = Image.new("RGB", size, (200, 200, 200))
    verdict = _verdict([_face((w // 4, h // 3, w // 4, h // 3), 0.93, "fake")], size)
    arr = np.asarray(overlay.draw_boxes(image, verdict))
    tag = arr[: h // 3, w // 4: w // 2]                              # the tag sits above the box
    text_px = _count(tag, (255, 255, 255))
    # White text on the red tag: a few dozen pixels on a preview, proportionally more on a photo.
    assert text_px >= 30
    assert text_px / (w * h) > 1e-4


def test_boxes_scale_to_a_thumbnail():
    size = (2000, 1000)
    verdict = _verdict([_face((1000, 500, 400, 300), 0.2, "real")], size)
    thumb = overlay.thumbnail(Image.new("RGB", size, (0, 0, 0)), max_side=500)
    assert thumb.size == (500, 250)
    arr = np.asarray(overlay.draw_boxes(thumb, verdict))
    assert tuple(arr[160, 250]) == overlay.LABEL_COLOURS["real"]    # box left edge at x=1000/4
    assert tuple(arr[160, 230]) == (0, 0, 0)


def test_box_at_the_top_edge_keeps_its_tag_inside():
    image = Image.new("RGB", (300, 300), (0, 0, 0))
    verdict = _verdict([_face((280, 0, 20, 20), 0.9, "fake")], image.size)
    arr = np.asarray(overlay.draw_boxes(image, verdict))
    assert _count(arr, overlay.LABEL_COLOURS["fake"]) > 100


def test_thumbnail_keeps_small_images_and_converts_mode():
    small = Image.new("L", (100, 50))
    t = overlay.thumbnail(small, 1024)
    assert t.size == (100, 50) and t.mode == "RGB"
    big = overlay.thumbnail(Image.new("RGB", (3000, 4000)), 1024)
    assert big.size == (768, 1024)


def test_heatmap_overlay_is_hotter_where_the_heatmap_is_high():
    crop = Image.new("RGB", (224, 224), (128, 128, 128))
    heat = np.zeros((7, 7), dtype=np.float32)
    heat[0:2, 0:2] = 1.0                                             # top-left hot
    out = overlay.overlay_heatmap(crop, heat.tolist())
    assert out.size == crop.size and out.mode == "RGB"
    arr = np.asarray(out, dtype=np.int32)
    hot, cold = arr[10:50, 10:50].mean(axis=(0, 1)), arr[170:214, 170:214].mean(axis=(0, 1))
    assert hot[0] > cold[0] + 40          # more red where hot
    assert cold[2] > hot[2] + 40          # more blue where cold
    assert hot[0] > hot[2]


def test_heatmap_is_upsampled_smoothly():
    heat = np.zeros((7, 7), dtype=np.float32)
    heat[3, 3] = 1.0
    up = overlay.heatmap_array(heat, (224, 224))
    assert up.shape == (224, 224) and up.min() >= 0 and up.max() <= 1
    assert up[112, 112] > 0.8
    row = up[112, 112:200]
    assert np.all(np.diff(row) <= 1e-6)                              # falls off without 32 px steps
    assert len(np.unique(np.round(row, 3))) > 20


def test_heatmap_alpha_controls_the_blend_and_empty_heatmap_returns_the_crop():
    crop = Image.new("RGB", (64, 48), (10, 200, 30))
    heat = np.full((7, 7), 0.5)
    assert np.array_equal(np.asarray(overlay.overlay_heatmap(crop, heat, alpha=0.0)), np.asarray(crop))
    full = np.asarray(overlay.overlay_heatmap(crop, heat, alpha=1.0))
    assert np.array_equal(full, overlay.colourise(overlay.heatmap_array(heat, crop.size)))
    assert overlay.overlay_heatmap(crop, []).size == (64, 48)
    with pytest.raises(ValueError):
        overlay.heatmap_array(np.zeros(5), (10, 10))


def test_legend_runs_from_blue_to_red():
    bar = np.asarray(overlay.legend(100, 5), dtype=np.int32)
    assert bar.shape == (5, 100, 3)
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]


def test_whole_image_check_is_tagged_as_such_in_grey_without_a_label():
    image = Image.new("RGB", (400, 300), (200, 200, 200))
    verdict = _verdict([_face((50, 0, 300, 300), 0.3, "real")], image.size)
    verdict.whole_image = True
    assert overlay.tag_text(1, verdict.faces[0], True) == "whole-image check, fake score 0.300"
    arr = np.asarray(overlay.draw_boxes(image, verdict))
    # No face found: the box and its long tag are grey (no verdict colour), and nothing is green.
    grey = np.all(arr == np.array(overlay.LABEL_COLOURS["no_face"], dtype=np.uint8), axis=-1)
    assert grey[4:10, :340].any(axis=0).nonzero()[0].max() > 160
    assert _count(arr, overlay.LABEL_COLOURS["real"]) == 0
    verdict.whole_image = False
    arr = np.asarray(overlay.draw_boxes(image, verdict))
    green = np.all(arr == np.array(overlay.LABEL_COLOURS["real"], dtype=np.uint8), axis=-1)
    assert green[4:10, :340].any(axis=0).nonzero()[0].max() < 160


def test_a_tag_shows_the_confidence_of_the_label_it_shows(monkeypatch):
    """A real face scored 0.0 reads '#1 real 100%', never '#1 real 0%' (the other class's number)."""
    drawn: list[str] = []
    monkeypatch.setattr(overlay, "_tag", lambda draw, text, *rest: drawn.append(text))
    faces = [_face((10, 10, 80, 80), 0.0, "real"), _face((120, 10, 80, 80), 0.93, "fake"),
             FaceResult(box=(230, 10, 80, 80), fake_probability=0.42, label="uncertain", confidence=0.58)]
    overlay.draw_boxes(Image.new("RGB", (400, 200)), _verdict(faces, (400, 200)))
    assert drawn[:2] == ["#1 real 100%", "#2 fake 93%"]
    assert drawn[2] == "#3 uncertain, fake score 0.420" and "58%" not in drawn[2]
