"""Quality warnings: each fires on an image made to trigger it and stays quiet on a clean face."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from clients.core import quality
from clients.core.facecrop import Box
from clients.core.quality import SourceInfo, assess, estimate_jpeg_quality
from tests.clients.synthetic import clean_face, jpeg_bytes, png_bytes


def _codes(warnings) -> set[str]:
    return {w.code for w in warnings}


def _decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


@pytest.fixture(scope="module")
def clean():
    """A sharp synthetic portrait saved as a camera JPEG (quality 92, EXIF)."""
    image, box = clean_face()
    data = jpeg_bytes(image, quality=92)
    return _decoded(data), box, data


def test_clean_face_raises_no_warning(clean):
    image, box, data = clean
    assert assess(image, [box], data) == []


def test_clean_face_png_of_non_screen_size_is_not_a_screenshot():
    image, box = clean_face((810, 610))
    assert assess(image, [box], png_bytes(image)) == []


@pytest.mark.parametrize("quality_in", [10, 30, 50, 75, 90, 95])
def test_jpeg_quality_estimate_tracks_encoder_quality(quality_in):
    image, _ = clean_face((128, 96))
    info = SourceInfo.from_bytes(jpeg_bytes(image, quality=quality_in))
    assert info.format == "JPEG" and info.has_camera_exif
    assert abs(info.jpeg_quality - quality_in) <= 3


def test_jpeg_estimate_handles_missing_tables():
    assert estimate_jpeg_quality({}) is None
    assert SourceInfo.from_bytes(b"not an image").jpeg_quality is None


def test_heavy_jpeg_compression_warns_and_says_why():
    image, box = clean_face()
    data = jpeg_bytes(image, quality=25)
    warnings = assess(_decoded(data), [box], data)
    assert _codes(warnings) == {quality.JPEG_COMPRESSION}
    assert "quality 25" in warnings[0].message and "caution" in warnings[0].message


def test_small_face_warns():
    image, box = clean_face((400, 300), face=Box(180, 120, 50, 64))
    data = jpeg_bytes(image)
    warnings = assess(_decoded(data), [box], data)
    assert quality.SMALL_FACE in _codes(warnings)
    msg = next(w.message for w in warnings if w.code == quality.SMALL_FACE)
    assert "50 px" in msg and "less reliable" in msg


def test_blurred_face_warns(clean):
    image, box, _ = clean
    blurred = image.filter(ImageFilter.GaussianBlur(6))
    data = jpeg_bytes(blurred)
    warnings = assess(_decoded(data), [box], data)
    assert _codes(warnings) == {quality.BLUR}
    assert "weaker evidence" in warnings[0].message


def test_no_face_warns(clean):
    image, _, data = clean
    warnings = assess(image, [], data)
    assert quality.NO_FACE in _codes(warnings)


def test_many_faces_warns():
    image = Image.new("RGB", (1800, 400))
    boxes = []
    for i in range(6):
        face, box = clean_face((300, 400), seed=i)
        image.paste(face, (i * 300, 0))
        boxes.append(Box(box.x + i * 300, box.y, box.w, box.h))
    data = jpeg_bytes(image)
    warnings = assess(_decoded(data), boxes, data)
    assert _codes(warnings) == {quality.MANY_FACES}
    assert "6 faces" in warnings[0].message
    assert quality.MANY_FACES not in _codes(assess(_decoded(data), boxes[:5], data))


def test_screen_sized_png_without_exif_is_a_screenshot():
    image, box = clean_face((1920, 1080))
    warnings = assess(image, [box], png_bytes(image))
    assert _codes(warnings) == {quality.SCREENSHOT}
    assert "1920x1080" in warnings[0].message
    # The same pixels from a camera (JPEG with EXIF) are not flagged.
    data = jpeg_bytes(image)
    assert assess(_decoded(data), [box], data) == []


def _ui_screenshot() -> tuple[Image.Image, Box]:
    """A chat-app-like capture: flat panels, bars and text lines around a photo of a face."""
    canvas = Image.new("RGB", (900, 700), (245, 246, 248))
    d = ImageDraw.Draw(canvas)
    d.rectangle((0, 0, 900, 60), fill=(40, 90, 160))
    d.rectangle((0, 60, 220, 700), fill=(230, 232, 236))
    for i in range(10):
        d.rectangle((20, 90 + i * 55, 200, 130 + i * 55), outline=(200, 200, 205), fill=(255, 255, 255))
    d.rectangle((240, 640, 880, 690), outline=(180, 180, 185), fill=(255, 255, 255))
    face, box = clean_face((400, 400))
    canvas.paste(face, (380, 150))
    return canvas, Box(box.x + 380, box.y + 150, box.w, box.h)


def test_ui_like_capture_is_a_screenshot_even_as_jpeg():
    image, box = _ui_screenshot()
    data = jpeg_bytes(image, quality=90, exif=False)
    warnings = assess(_decoded(data), [box], data)
    assert _codes(warnings) == {quality.SCREENSHOT}
    assert "interface" in warnings[0].message
    # A camera's photo (its EXIF names a camera) of flat, straight-edged things is not judged on looks.
    camera = jpeg_bytes(image, quality=90, exif=True)
    assert assess(_decoded(camera), [box], camera) == []


def test_screenshot_exif_without_a_camera_still_counts_as_a_screenshot():
    image, box = clean_face((1170, 2532))
    exif = Image.Exif()
    exif[0x9286] = "Screenshot"                                      # what phones write into screenshots
    buf = io.BytesIO()
    image.save(buf, "PNG", exif=exif.tobytes())
    info = SourceInfo.from_bytes(buf.getvalue())
    assert info.format == "PNG" and not info.has_camera_exif
    assert _codes(assess(image, [box], info)) == {quality.SCREENSHOT}


def test_moire_on_the_face_is_a_rephotographed_screen(clean):
    image, box, _ = clean
    arr = np.asarray(image, dtype=np.float32)
    yy, xx = np.mgrid[0:arr.shape[0], 0:arr.shape[1]]
    grating = 12 * np.sin(2 * np.pi * (0.23 * xx + 0.07 * yy))
    moire = Image.fromarray(np.clip(arr + grating[..., None], 0, 255).astype(np.uint8))
    data = jpeg_bytes(moire, quality=95)
    warnings = assess(_decoded(data), [box], data)
    assert _codes(warnings) == {quality.SCREENSHOT}
    assert "moire" in warnings[0].message


def test_every_message_says_how_trust_is_affected(clean):
    image, box, _ = clean
    tiny = Box(box.x, box.y, 40, 40)
    blurred = image.filter(ImageFilter.GaussianBlur(8))
    warnings = assess(blurred, [tiny] * 6, jpeg_bytes(blurred, quality=20)) + assess(image, [], b"")
    assert _codes(warnings) >= {quality.SMALL_FACE, quality.JPEG_COMPRESSION, quality.BLUR, quality.NO_FACE,
                                quality.MANY_FACES}
    for w in warnings:
        assert w.code in quality.CODES
        assert any(word in w.message for word in ("verdict", "score")), w.message


def test_assess_never_raises_on_odd_input():
    grey = Image.new("L", (30, 20), 128)
    assert isinstance(assess(grey, [Box(0, 0, 0, 0), Box(25, 15, 50, 50)], b"\x00garbage"), list)


def test_broken_exif_keeps_the_jpeg_quality_estimate():
    image, _ = clean_face((128, 96))
    data = jpeg_bytes(image, quality=40, exif=False)
    # Splice an APP1 'Exif' segment with garbage right after SOI.
    garbage = b"Exif\x00\x00" + b"\xff\x00garbage" * 4
    broken = data[:2] + b"\xff\xe1" + (len(garbage) + 2).to_bytes(2, "big") + garbage + data[2:]
    info = SourceInfo.from_bytes(broken)
    assert info.format == "JPEG" and not info.has_camera_exif
    assert abs(info.jpeg_quality - 40) <= 3


def test_moire_is_measured_on_the_centred_square_of_the_region():
    """Only the centred 256 px square counts (what lies around it does not), at any region size."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:256, 0:256]
    grating = 12 * np.sin(2 * np.pi * (0.23 * xx + 0.07 * yy))
    centre = Image.fromarray(np.clip(128 + rng.normal(0, 6, (256, 256, 3)) + grating[..., None], 0, 255).astype(np.uint8))
    regions = []
    for fill in ((20, 20, 20), (230, 200, 10)):
        region = Image.new("RGB", (701, 400), fill)
        region.paste(centre, ((701 - 256) // 2, (400 - 256) // 2))
        regions.append(region)
    assert quality.moire_peak_ratio(regions[0]) == quality.moire_peak_ratio(regions[1]) >= quality.MOIRE_PEAK_RATIO
    plain = Image.fromarray(np.clip(128 + rng.normal(0, 6, (90, 101, 3)), 0, 255).astype(np.uint8))
    assert 0 < quality.moire_peak_ratio(plain) < quality.MOIRE_PEAK_RATIO
    assert quality.moire_peak_ratio(plain.crop((0, 0, 63, 90))) == 0.0


def _smooth(kind: str, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A textureless synthetic image: a colour gradient in some direction, or one flat colour."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = {"horizontal": xx / w, "vertical": yy / h, "diagonal": (xx / w + yy / h) / 2,
         "radial": np.hypot(xx - w / 2, yy - h / 2) / np.hypot(w / 2, h / 2),
         "narrow": 0.45 + 0.05 * xx / w, "flat": np.full((h, w), 0.4)}[kind]
    rgb = np.stack([30 + 200 * t, 200 - 120 * t, 90 + 60 * t], axis=-1)
    return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("kind", ["horizontal", "vertical", "diagonal", "radial", "narrow", "flat"])
def test_smooth_gradients_and_flat_colours_show_no_moire(kind, fmt):
    """A plain gradient's 8-bit steps are not a photographed screen's interference pattern."""
    data = png_bytes(_smooth(kind)) if fmt == "PNG" else jpeg_bytes(_smooth(kind), quality=92, exif=False)
    image = _decoded(data)
    assert quality.moire_peak_ratio(quality._centre_square(image)) < quality.MOIRE_PEAK_RATIO / 4
    assert not any("moire" in w.message for w in assess(image, [], data))


def test_a_grating_over_a_smooth_gradient_still_shows_moire():
    """The floor does not hide a real periodic pattern where the rest of the image is smooth."""
    base = np.asarray(_smooth("horizontal"), dtype=np.float64)
    yy, xx = np.mgrid[0:base.shape[0], 0:base.shape[1]]
    grating = 8 * np.sin(2 * np.pi * (0.23 * xx + 0.07 * yy))
    data = png_bytes(Image.fromarray(np.clip(base + grating[..., None], 0, 255).astype(np.uint8)))
    warnings = assess(_decoded(data), [], data)
    assert any("moire" in w.message for w in warnings if w.code == quality.SCREENSHOT)
