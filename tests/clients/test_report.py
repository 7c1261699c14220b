"""The PDF report: read back with pypdf, rendered with pdftoppm, Unicode-safe, deterministic, small."""
from __future__ import annotations

import hashlib
import io
import logging
import re
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from clients.core.analyze import Analysis
from clients.core.report import render_pdf
from clients.core.verdict import FaceResult, QualityWarning, Verdict
from tests.clients.synthetic import clean_face, jpeg_bytes

NOW = datetime(2026, 11, 25, 4, 0, 0, tzinfo=timezone.utc)
SHA = hashlib.sha256(b"the upload").hexdigest()


def _heat(cy: int, cx: int) -> list[list[float]]:
    yy, xx = np.mgrid[0:7, 0:7]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 3.0).tolist()


def _analysis(image: Image.Image | None = None, faces: int = 2, filename: str = "holiday.jpg",
              warnings: list[QualityWarning] | None = None, crops: bool = True) -> Analysis:
    """A realistic Analysis built from the dataclasses (no server): the first face decides."""
    if image is None:
        image, _ = clean_face((800, 600))
    w, h = image.size
    side = min(w, h) // 4
    results, crop_images = [], []
    for i in range(faces):
        p, label = [(0.91, "fake"), (0.12, "real"), (0.55, "uncertain")][i % 3]
        x = (i * side * 5 // 4) % max(1, w - side)
        box = (x, h // 3, side, side)
        crop_box = (x, h // 3, x + side, h // 3 + side)
        results.append(FaceResult(box=box, fake_probability=p, label=label,
                                  confidence=p if label != "real" else 1 - p, heatmap=_heat(2 + i % 3, 4),
                                  crop_box=crop_box))
        crop_images.append(image.crop(crop_box))
    verdict = Verdict(label="fake" if faces else "real", fake_probability=0.91 if faces else 0.2,
                      confidence=0.91 if faces else 0.8, threshold=0.5, uncertain_band=(0.4, 0.6), faces=results,
                      whole_image=not faces, model_name="deepfake_detector", model_version=7,
                      timings_ms={"decode": 40.0, "faces": 120.0, "request": 90.0, "total": 260.0},
                      warnings=warnings if warnings is not None else [
                          QualityWarning("jpeg_compression", "The image is heavily JPEG-compressed (estimated "
                                         "quality 25, under 60), so treat the verdict with caution.")],
                      sha256=SHA, filename=filename, image_size=image.size, original_size=image.size)
    return Analysis(verdict=verdict, image=image, crops=crop_images if crops else [])


def _text(pdf: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


@pytest.fixture(scope="module")
def report() -> bytes:
    return render_pdf(_analysis(), now=NOW)


def test_report_reads_back_with_verdict_file_hash_model_and_date(report):
    assert report.startswith(b"%PDF-")
    text, pages = _text(report)
    flat = re.sub(r"\s+", "", text)
    assert "Likely fake" in text
    assert "0.910" in text and "91%" in text                      # fake score and confidence
    assert "holiday.jpg" in text
    assert SHA in flat                                            # may wrap inside its column
    assert "deepfake_detector" in text and "version 7" in text
    assert "2026-11-25 04:00:00 UTC" in text
    assert "What the score means" in text and "What it cannot tell" in text
    assert "Heavy JPEG compression" in text and "caution" in text
    assert 1 <= pages <= 3
    assert f"Page {pages} of {pages}" in text


def test_per_face_table_lists_every_face(report):
    text, _ = _text(report)
    assert "Box (x, y, w, h)" in text
    assert "0, 200, 150, 150" in text and "187, 200, 150, 150" in text
    assert "0.120" in text and "Likely real" in text and "88%" in text


def test_pdf_metadata_has_the_creation_date_and_title(report):
    meta = PdfReader(io.BytesIO(report)).metadata
    assert meta.creation_date.replace(tzinfo=timezone.utc) == NOW
    assert "holiday.jpg" in meta.title


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_report_renders_to_a_non_blank_page(report, tmp_path):
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(report)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "p")],
                   check=True, timeout=60)
    page = np.asarray(Image.open(next(tmp_path.glob("p*.png"))).convert("RGB"), dtype=np.int32)
    assert page.shape[0] > page.shape[1] > 300                    # A4 portrait
    assert page.std() > 20                                        # not blank
    red = (page[..., 0] > 180) & (page[..., 1] < 80) & (page[..., 2] < 80)
    assert red.sum() > 200                                        # the 'Likely fake' colour is drawn
    hot = page[..., 0] - page[..., 2]
    assert (hot > 100).sum() > 50                                  # heatmap overlay is in the table


NAMES = [
    "Привет мир — фото.jpg",
    "صورة العائلة.jpg",
    "家族の写真 照片.png",
    "가족 사진.webp",
    "party 😀🎉 selfie.jpg",
    "mixed Ωmega Привет مرحبا 你好 한국 😀.jpg",
    "unsupported \U0001FAE8 \U00010400 \u202e\u200d 👩‍💻 bell\x07 tab\t.jpg",
]


@pytest.mark.parametrize("name", NAMES)
def test_unicode_file_names_never_crash(name, caplog):
    warnings = [QualityWarning("screenshot", f"Caption in many scripts: {name}; the verdict is about the copy."),
                QualityWarning(f"code_{name[:12]}", "A warning whose code is not one of ours.")]
    with caplog.at_level("WARNING", logger="fpdf"):
        pdf = render_pdf(_analysis(faces=1, filename=name, warnings=warnings), now=NOW)
    assert not [r for r in caplog.records if "missing" in r.getMessage()]   # every glyph drawn by some font
    text, _ = _text(pdf)
    assert "Likely fake" in text
    latin_cyrillic = re.findall(r"[A-Za-zА-Яа-яЁё]{3,}", name)
    for word in latin_cyrillic:
        assert word in text, word


def test_cjk_and_arabic_names_embed_fallback_fonts():
    pdf = render_pdf(_analysis(faces=1, filename="家族 가족 صورة 🎉.jpg"), now=NOW)
    fonts = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for font in page["/Resources"]["/Font"].values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    names = " ".join(fonts)
    assert "DejaVu" in names and "Droid" in names and "Hangul" in names and "Symbola" in names


def test_same_input_and_date_give_the_same_bytes(report):
    assert render_pdf(_analysis(), now=NOW) == report
    later = render_pdf(_analysis(), now=NOW + timedelta(seconds=1))
    assert later != report
    text, _ = _text(later)
    assert "2026-11-25 04:00:01 UTC" in text


def test_same_bytes_in_another_process_with_another_hash_seed(report):
    """Set and dict order must not leak into the PDF (font subsets, image cache)."""
    import os
    import sys
    from pathlib import Path

    code = ("import sys, hashlib; from tests.clients.test_report import _analysis, NOW; "
            "from clients.core.report import render_pdf; "
            "sys.stdout.write(hashlib.sha256(render_pdf(_analysis(), now=NOW)).hexdigest())")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == hashlib.sha256(report).hexdigest()


def test_date_is_printed_in_utc():
    cet = timezone(timedelta(hours=1))
    pdf = render_pdf(_analysis(faces=1), now=datetime(2026, 11, 25, 5, 0, 0, tzinfo=cet))
    assert "2026-11-25 04:00:00 UTC" in _text(pdf)[0]


def test_no_face_and_no_heatmap_report():
    image, _ = clean_face((640, 480))
    analysis = _analysis(image=image, faces=0, warnings=[QualityWarning("no_face", "No face was found, so the "
                                                                          "whole image was scored.")])
    text, _ = _text(render_pdf(analysis, now=NOW))
    assert "No face found" in text and "Whole-image check" in text and "Likely real" not in text


def _no_face_check(p: float = 0.81) -> Analysis:
    """What analyze() returns for a picture without a face: the centre square scored, here as 'fake' by the rule."""
    image, _ = clean_face((640, 480))
    face = FaceResult(box=(80, 0, 480, 480), fake_probability=p, label="fake", confidence=p, heatmap=_heat(3, 3),
                      crop_box=(80, 0, 560, 480))
    verdict = Verdict(label="fake", fake_probability=p, confidence=p, threshold=0.42, uncertain_band=(0.385, 0.455),
                      faces=[face], whole_image=True, model_name="deepfake_detector", model_version=3,
                      sha256=SHA, filename="landscape.png", image_size=image.size, original_size=image.size)
    return Analysis(verdict=verdict, image=image, crops=[image.crop(face.crop_box)])


def test_no_face_gives_no_real_or_fake_verdict_only_a_labelled_check():
    """The banner says 'No face found'; the whole-image score is shown as a check, never as 'Likely fake'."""
    pdf = render_pdf(_no_face_check(), now=NOW)
    text, _ = _text(pdf)
    banner = text.split("VERDICT", 1)[1].lstrip().splitlines()[0]
    assert banner.startswith("No face found")
    assert "Likely fake" not in text and "Likely real" not in text
    assert "Whole-image check, not a verdict" in text and "0.810" in text
    assert "label:no_face" in PdfReader(io.BytesIO(pdf)).metadata["/Keywords"]


def test_band_and_threshold_are_printed_exactly():
    """The band 0.385-0.455 reads so (not 38%-46%), with the threshold, in the caption and the details."""
    text, _ = _text(render_pdf(_no_face_check(), now=NOW))
    flat = re.sub(r"\s+", " ", text)
    assert "threshold 0.42, uncertain band 0.385–0.455" in flat
    assert "uncertain band 0.385–0.455" in flat and "38%" not in flat and "46%" not in flat


def test_report_without_crops_cuts_them_from_the_image():
    pdf = render_pdf(_analysis(faces=2, crops=False), now=NOW)
    assert "Likely fake" in _text(pdf)[0]


def _photo_12mp() -> Image.Image:
    """A 4000x3000 photo-like image with sensor noise (noise is what makes JPEGs big)."""
    small, _ = clean_face((1000, 750))
    big = np.asarray(small.resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.int16)
    tile = np.random.default_rng(1).integers(-6, 7, size=(500, 500, 3), dtype=np.int16)
    big = big + np.tile(tile, (6, 8, 1))
    return Image.fromarray(np.clip(big, 0, 255).astype(np.uint8))


def test_a_12_megapixel_photo_gives_a_small_pdf():
    photo = _photo_12mp()
    assert len(jpeg_bytes(photo, quality=90)) > 1_500_000          # the upload itself is large
    for faces in (2, 12):
        pdf = render_pdf(_analysis(image=photo, faces=faces), now=NOW)
        print(f"12 MP photo, {faces} face(s): PDF {len(pdf) / 1024:.0f} KB")
        assert len(pdf) < 300 * 1024, (faces, len(pdf))


@pytest.mark.integration
def test_report_of_a_real_check_against_the_local_model_server(model_server):
    """The whole path: upload bytes -> analyze (faces, quality, gRPC) -> PDF that states what it found."""
    from clients.core.analyze import analyze
    from clients.core.config import ClientConfig
    from clients.core.grpc_client import DetectorClient

    image, _ = clean_face((1024, 768))
    data = jpeg_bytes(image, quality=35)                         # a heavy-compression warning is expected
    with DetectorClient(model_server, timeout_s=60) as client:
        analysis = analyze(data, "портрет 家族.jpg", client, ClientConfig(target=model_server, timeout_s=60))
    v = analysis.verdict
    pdf = render_pdf(analysis, now=NOW)
    text, pages = _text(pdf)
    assert v.sha256 == hashlib.sha256(data).hexdigest() and v.sha256 in re.sub(r"\s+", "", text)
    assert {"Likely fake": "fake", "Likely real": "real", "Uncertain": "uncertain"}[
        next(w for w in ("Likely fake", "Likely real", "Uncertain") if w in text)] == v.label
    assert f"{v.fake_probability:.3f}" in text
    assert f"version {v.model_version}" in text and "портрет" in text
    assert "Heavy JPEG compression" in text
    assert len(v.faces) >= 1 and pages >= 1 and len(pdf) < 300 * 1024


@pytest.mark.parametrize("size", [7.5, 9, 22])
def test_values_wrap_exactly_as_fpdf2_would_wrap_them(size):
    from fpdf import FPDF

    from clients.core import pdffonts
    from clients.core.report import FONT_DIR, FONTS, MAIN_FONT, _break_lines

    pdf = FPDF()
    for family, style, file in FONTS[:2]:
        pdffonts.add_font(pdf, family, style, FONT_DIR / file, lean=True)
    pdf.add_page()
    pdf.set_font(MAIN_FONT, "", size)
    texts = [hashlib.sha256(b"x").hexdigest(), "decode 30 ms, faces 63 ms, request 20 ms, total 140 ms",
             "IMG_20261125_101500_very_long_camera_file_name_without_any_spaces_at_all.jpeg", "two\nlines  and  gaps",
             "", " leading and trailing ", "снимок 写真 ünïcödé " * 4, "i" * 200 + " w"]
    for width in (20, 60, 84, 150):
        for text in texts:
            assert _break_lines(pdf, width, text) == pdf.multi_cell(width, 4, text, dry_run=True, output="LINES"), (
                width, text)


def test_no_part_of_the_file_name_reaches_the_log(caplog):
    """fontTools' subsetter logged the glyph names it kept at INFO (the file name's letters, one by one): a report
    made with every logger at DEBUG leaves no trace of the name, nor of its glyphs, in the log."""
    from fontTools.ttLib import TTFont

    from clients.core import report

    name = "Ξενοφών_секретно_家族旅行.jpg"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("fontTools").setLevel(logging.NOTSET)   # as a fresh process has it, before any report
    report.quiet_font_logs.cache_clear()
    render_pdf(_analysis(filename=name), now=NOW)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    glyph_names = set()
    for _, _, file in report.FONTS:
        cmap = TTFont(str(report.FONT_DIR / file), lazy=True).getBestCmap()
        glyph_names |= {cmap[ord(c)] for c in name if ord(c) > 127 and ord(c) in cmap}
    assert glyph_names, "the fonts draw the name's letters"
    assert not [g for g in glyph_names if re.search(rf"['\"]{re.escape(g)}['\"]", logged)]
    assert not [part for part in ("Ξενοφών", "секретно", "家族旅行") if part in logged]
    assert not [r for r in caplog.records if r.name.startswith("fontTools") and r.levelno < logging.WARNING]
