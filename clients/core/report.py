"""The PDF report of one check, shared by every front end (bot, web page, CLI).

It says what was checked (file name, SHA-256, model version, date in UTC), what the model found
(verdict, per-face scores and heatmaps, boxes on a thumbnail), how far to trust it (quality
warnings) and what the score can and cannot tell. It is small (images downscaled and stored as
JPEG, fonts subset by fpdf2), deterministic for a fixed `now`, and never fails on a character:
Unicode fonts with fallbacks cover most scripts and anything else becomes U+FFFD.
"""
from __future__ import annotations

import io
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

from clients.core import overlay, pdffonts
from clients.core.verdict import LABEL_WORDS, FaceResult, Label, Verdict, band_text, format_score, rule_text, score_text
from clients.core.workers import background

if TYPE_CHECKING:
    from clients.core.analyze import Analysis

FONT_DIR = Path(__file__).resolve().parent / "fonts"
MAIN_FONT = "dejavu"
FONTS: tuple[tuple[str, str, str], ...] = (
    (MAIN_FONT, "", "DejaVuSans.ttf"),
    (MAIN_FONT, "B", "DejaVuSans-Bold.ttf"),
    ("droidcjk", "", "DroidSansFallback-CJK.ttf"),
    ("dfrhangul", "", "DFRHangul-Regular.ttf"),
    ("symbola", "", "Symbola-Emoji.ttf"),
)
"""(family, style, file) in fallback order: the first font that has a character draws it."""

REPLACEMENT = "\ufffd"

# Layout (mm, A4 portrait) and budget ----------------------------------------------------------
MARGIN = 15.0
THUMB_MAX_SIDE_PX = 1024
"""Thumbnail pixels at most: the image box-reduced by a whole factor (a 2000 px working image gives 1000 px,
~260 dpi at the printed width), sharp enough for the box tags and far cheaper than resampling."""
THUMB_BUDGET_BYTES = 150_000
"""The thumbnail JPEG is re-encoded smaller until it fits, so a 12 MP photo stays under 300 KB."""
FACE_PX = 192
"""Side of each face crop and heatmap in the table (~200 dpi at 24 mm)."""
FACE_PX_MANY = 128
MANY_FACES = 6
JPEG_QUALITY = 82

TIMINGS_SHOWN = ("decode", "faces", "request", "total")
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
TINTS = {Label.FAKE: (253, 236, 234), Label.REAL: (233, 246, 233), Label.UNCERTAIN: (255, 244, 224)}
TEXT_COLOURS = {Label.FAKE: (190, 30, 30), Label.REAL: (28, 128, 28), Label.UNCERTAIN: (190, 110, 0)}
"""Darker shades of the box colours, readable as text on white and on the tinted panel."""

WARNING_TITLES = {
    "small_face": "Small face", "jpeg_compression": "Heavy JPEG compression", "blur": "Blur",
    "no_face": "No face found", "many_faces": "Many faces", "screenshot": "Screenshot or photographed screen",
    "animated": "Animated image",
}

NO_FACE_TEXT = "No face was found, so the whole image was scored as one crop."
NO_WARNINGS_TEXT = ("None. The image passed every quality check (face size, compression, sharpness, number of "
                    "faces, screenshot and screen-photo signs).")
HEATMAP_LEGEND = ("Heatmap: blue = little influence, red = regions that pushed the score most towards 'fake' "
                  "(Grad-CAM over the model's last convolutional block).")
WHAT_THE_SCORE_MEANS = (
    "The fake score (0 to 1) is the model's calibrated estimate of the probability that a face was manipulated "
    "or generated: among validation faces that scored about 0.8, about 80% were fake. Each face is scored on its "
    "own; the image's verdict follows its most suspicious face. Scores inside the uncertain band are reported "
    "as 'uncertain' rather than forced into a verdict, and a picture without a face gets no verdict. The "
    "heatmap (Grad-CAM) shows which regions of the crop pushed the score towards 'fake'; it is a hint of where "
    "the model looked, not a map of the edit."
)
WHAT_IT_CANNOT_TELL = (
    "The score is a statistical judgement of pixels, not proof. The model learned from particular data "
    "(face swaps from videos and faces from one family of generators) and can miss new generators, edits "
    "away from the face, or be misled by heavy compression, filters, screenshots and re-photographed "
    "screens (see the quality warnings). A 'real' verdict does not show that an image is authentic, and "
    "the model cannot say who is shown, whether the context is true or how the image will be used. Treat "
    "it as one piece of evidence next to the source, the metadata and a reverse image search."
)


@dataclass(frozen=True)
class _Thumbnail:
    """The boxed thumbnail's JPEG bytes and pixel size."""

    jpeg: bytes
    size: tuple[int, int]


def render_pdf(analysis: "Analysis", now: datetime | None = None) -> bytes:
    """The report of one analysis as PDF bytes; `now` (UTC) is printed and set as creation date."""
    quiet_font_logs()
    now = _utc(now or datetime.now(timezone.utc))
    verdict = analysis.verdict
    # Pillow work (it releases the GIL) runs beside the page layout until each part is needed.
    thumbnail = background().submit(_encode_thumbnail, analysis)
    face_images = background().submit(_encode_faces, analysis)
    pdf = _ReportPDF(verdict)
    pdf.set_creation_date(now)
    pdf.set_title(_safe(f"Deepfake check: {verdict.filename or 'image'}"))
    pdf.set_subject("Deepfake detector report")
    pdf.set_creator("deepfake-detector")
    pdf.set_author("deepfake-detector")
    pdf.set_keywords(_safe(f"deepfake-check label:{verdict.shown_label} p_fake:{verdict.fake_probability:.4f} "
                           f"model:{verdict.model_name}/{verdict.model_version} sha256:{verdict.sha256}"))
    pdf.add_page()
    _header(pdf, now)
    _verdict_banner(pdf, verdict)
    _thumbnail_and_details(pdf, verdict, thumbnail.result())
    _faces_table(pdf, verdict, face_images.result())
    _warnings(pdf, verdict)
    _explanation(pdf, verdict)
    return bytes(pdf.output(output_producer_class=pdffonts.OutputProducer))


@lru_cache(maxsize=1)
def quiet_font_logs() -> None:
    """Keep fontTools at WARNING and above: at INFO its subsetter logs the glyph names it keeps, which spell out
    the characters of the user's file name (and ~190 lines per report)."""
    logging.getLogger("fontTools").setLevel(logging.WARNING)


# The document -----------------------------------------------------------------------------
class _ReportPDF(FPDF):
    """A4 with the shipped Unicode fonts and a footer naming the file's hash and the page."""

    def __init__(self, verdict: Verdict):
        super().__init__(orientation="P", unit="mm", format="A4")
        self._verdict = verdict
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=18)
        self.set_compression(True)
        for family, style, file in FONTS[:2]:
            pdffonts.add_font(self, family, style, FONT_DIR / file, lean=True)
        # Fallback fonts are added only when some text needs them (each one embedded costs time and bytes).
        needed = {ord(c) for c in _safe(_untrusted_text(verdict))} - _cmap(FONTS[0][2])
        fallbacks = [(family, file) for family, style, file in FONTS[2:] if needed & _cmap(file)]
        for family, file in fallbacks:
            pdffonts.add_font(self, family, "", FONT_DIR / file)
        if fallbacks:
            self.set_fallback_fonts([family for family, _ in fallbacks], exact_match=False)
        self.set_font(MAIN_FONT, "", 10)
        self.set_text_color(*INK)

    def footer(self) -> None:
        """Model, short hash and page number on every page."""
        self.set_y(-12)
        self.set_font(MAIN_FONT, "", 7.5)
        self.set_text_color(*MUTED)
        v = self._verdict
        left = f"{v.model_name} v{v.model_version}  ·  SHA-256 {v.sha256[:16]}…" if v.sha256 else \
            f"{v.model_name} v{v.model_version}"
        self.cell(0, 5, left, align="L")
        self.set_x(MARGIN)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")
        self.set_text_color(*INK)


def _header(pdf: FPDF, now: datetime, title: str = "Deepfake check report") -> None:
    """Title, date in UTC and a rule."""
    pdf.set_font(MAIN_FONT, "B", 18)
    pdf.cell(0, 9, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(MAIN_FONT, "", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(0, 5, f"Generated {now:%Y-%m-%d %H:%M:%S} UTC by the deepfake detector",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    _rule(pdf, pdf.get_y() + 2)
    pdf.set_y(pdf.get_y() + 5)


def _verdict_banner(pdf: FPDF, v: Verdict, sentence: str | None = None, scale: bool = True) -> None:
    """The verdict in words and numbers on a tinted panel, with the probability scale (a clip report passes its own
    sentence, and no scale when no face was seen: there is no score to mark)."""
    colour = overlay.LABEL_COLOURS.get(v.shown_label, MUTED)
    top, width = pdf.get_y(), pdf.w - 2 * MARGIN
    pdf.set_font(MAIN_FONT, "", 9.5)
    lines = _break_lines(pdf, 84, sentence if sentence is not None else _verdict_sentence(v))
    height = max(34.0, 4 + 4 + 11 + 4.6 * len(lines) + 4)
    pdf.set_fill_color(*TINTS.get(v.shown_label, (240, 240, 240)))
    pdf.set_draw_color(*colour)
    pdf.set_line_width(0.6)
    pdf.rect(MARGIN, top, width, height, style="DF", round_corners=True, corner_radius=2.5)
    pdf.set_line_width(0.2)
    pdf.set_xy(MARGIN + 5, top + 4)
    pdf.set_font(MAIN_FONT, "B", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(80, 4, "VERDICT", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(MAIN_FONT, "B", 22)
    pdf.set_text_color(*TEXT_COLOURS.get(v.shown_label, INK))
    pdf.cell(80, 11, LABEL_WORDS.get(v.shown_label, v.shown_label), new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.set_font(MAIN_FONT, "", 9.5)
    _lines(pdf, 84, 4.6, lines)  # broken once, above
    if scale:
        _probability_scale(pdf, v, MARGIN + 95, top + 7, width - 100)
    pdf.set_y(top + height + 6)


def _verdict_sentence(v: Verdict) -> str:
    """The verdict's numbers in a sentence (the shared headline's words where there is no firm verdict)."""
    if v.whole_image:
        return v.whole_image_check
    subject = "the face" if len(v.faces) == 1 else f"the most suspicious of {len(v.faces)} faces"
    if v.label == Label.UNCERTAIN:
        return f"{v.headline} (for {subject})."
    return (f"Fake score {score_text(v.fake_probability)} for {subject}. "
            f"Confidence in this verdict: {v.confidence:.0%} ({confidence_words(v.confidence)}).")


def confidence_words(confidence: float) -> str:
    """The confidence in a word: high from 90%, moderate from 70%, low below."""
    if confidence >= 0.9:
        return "high"
    return "moderate" if confidence >= 0.7 else "low"


def _probability_scale(pdf: FPDF, v: Verdict, x: float, y: float, width: float) -> None:
    """A 0-100% bar coloured real/uncertain/fake at the model's threshold and band, marked at the score."""
    low, high = v.uncertain_band
    if not low < high:
        low = high = v.threshold
    bar_h = 5.0
    segments = ((0.0, low, Label.REAL), (low, high, Label.UNCERTAIN), (high, 1.0, Label.FAKE))
    for start, end, label in segments:
        if end > start:
            pdf.set_fill_color(*overlay.LABEL_COLOURS[label])
            pdf.rect(x + start * width, y + 6, (end - start) * width, bar_h, style="F")
    marker = x + min(max(v.fake_probability, 0.0), 1.0) * width
    pdf.set_fill_color(*INK)
    pdf.polygon([(marker - 2, y + 2.5), (marker + 2, y + 2.5), (marker, y + 5.8)], style="F")
    pdf.set_draw_color(*INK)
    pdf.set_line_width(0.5)
    pdf.line(marker, y + 5.5, marker, y + 6 + bar_h + 0.5)
    pdf.set_line_width(0.2)
    pdf.set_font(MAIN_FONT, "", 7.5)
    pdf.set_text_color(*MUTED)
    pdf.set_xy(x, y + 12)
    pdf.cell(20, 4, "0%  real")
    pdf.set_xy(x + width - 30, y + 12)
    pdf.cell(30, 4, "fake  100%", align="R")
    pdf.set_xy(x, y + 17)
    band = f"uncertain band {band_text(v.uncertain_band)}  ·  " if band_text(v.uncertain_band) else ""
    caption = f"Fake score {score_text(v.fake_probability)}  ·  {band}threshold {format_score(v.threshold)}"
    for line in _break_lines(pdf, width, caption):
        pdf.set_x(x)
        pdf.cell(width, 3.8, line, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)


def _thumbnail_and_details(pdf: FPDF, v: Verdict, thumbnail: _Thumbnail) -> None:
    """The boxed thumbnail on the left, the file and model details on the right."""
    top = pdf.get_y()
    max_w, max_h = 96.0, 80.0
    tw, th = thumbnail.size
    scale = min(max_w / tw, max_h / th)
    w, h = tw * scale, th * scale
    pdf.image(io.BytesIO(thumbnail.jpeg), x=MARGIN, y=top, w=w, h=h)
    pdf.set_draw_color(*RULE)
    pdf.rect(MARGIN, top, w, h)
    x = MARGIN + max_w + 6
    col = pdf.w - MARGIN - x
    pdf.set_xy(x, top)
    rows = [
        ("File", v.filename or "(unnamed)"),
        ("SHA-256", v.sha256 or "(not computed)"),
        ("Image", _size_line(v)),
        ("Faces", "none found: the whole image was scored" if v.whole_image else str(len(v.faces))),
        ("Model", f"{v.model_name}, version {v.model_version}"),
        ("Decision", _decision_line(v)),
    ]
    shown = {k: ms for k, ms in v.timings_ms.items() if k in TIMINGS_SHOWN} or dict(v.timings_ms)
    if shown:
        rows.append(("Time", ", ".join(f"{k} {ms:.0f} ms" for k, ms in shown.items())))
    for label, value in rows:
        pdf.set_x(x)
        pdf.set_font(MAIN_FONT, "B", 8)
        pdf.set_text_color(*MUTED)
        pdf.cell(col, 4, label.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_text_color(*INK)
        pdf.set_font(MAIN_FONT, "", 7.5 if label == "SHA-256" else 9)
        _text(pdf, col, 4.4, value, x)
        pdf.set_y(pdf.get_y() + 1.6)
    pdf.set_y(max(top + h, pdf.get_y()) + 6)


def _size_line(v: Verdict) -> str:
    """Working and original sizes in words."""
    w, h = v.image_size
    ow, oh = v.original_size
    if ow and (ow, oh) != (w, h):
        return f"{ow}×{oh} px (analysed at {w}×{h})"
    return f"{w}×{h} px" if w else "unknown"


def _decision_line(v: Verdict) -> str:
    """The version's threshold and band, worded as on every front end."""
    return rule_text(v.threshold, v.uncertain_band)


FACE_COLUMNS = ("#", "Crop", "Heatmap", "Box (x, y, w, h)", "Fake score", "Label", "Confidence")
CELL_PAD = 1.0
"""Padding (mm) around each cell's content in the faces table."""
HEADING_FILL = (241, 243, 245)


def _faces_table(pdf: FPDF, v: Verdict, images: list[tuple[bytes, bytes | None]]) -> None:
    """One row per face: crop, heatmap overlay, box and scores; the heading repeats after a page break.

    Drawn cell by cell: every row has the same shape (two square images and one line of text per
    cell), so fpdf2's general table layout, which measured and wrapped every cell of every row, is
    not needed; it was a large share of a report's time.
    """
    _section(pdf, "Whole-image check (not a verdict)" if v.whole_image else "Faces")
    if not v.faces:
        pdf.set_font(MAIN_FONT, "", 9.5)
        _paragraph(pdf, 5, NO_FACE_TEXT)
        pdf.set_y(pdf.get_y() + 4)
        return
    side = 24.0 if len(v.faces) < MANY_FACES else 16.0
    base = (8, side + 2, side + 2, 42, 28, 26, 24)
    width = pdf.w - 2 * MARGIN
    widths = [w * width / sum(base) for w in base]
    pdf.set_draw_color(*RULE)
    _table_heading(pdf, widths, FACE_COLUMNS)
    row_height = widths[1]  # a square image as wide as its column less the padding, plus the padding
    for i, (face, (crop_jpeg, heat_jpeg)) in enumerate(zip(v.faces, images), start=1):
        if pdf.get_y() + row_height > pdf.page_break_trigger:
            pdf.add_page()
            _table_heading(pdf, widths, FACE_COLUMNS)
        _faces_row(pdf, widths, row_height, i, face, crop_jpeg, heat_jpeg, v.whole_image)
    _heatmap_legend(pdf)


def _table_heading(pdf: FPDF, widths: list[float], titles: tuple[str, ...], size: float = 9) -> None:
    """A table's heading row (bold, muted, on a light fill, each title wrapped in its column): one helper, so the photo
    and clip reports' tables look alike."""
    pdf.set_font(MAIN_FONT, "B", size)
    wrapped = [_wrapped(pdf, w, 5, title) for w, title in zip(widths, titles)]  # multi_cell pads itself
    height = 5 * max(len(lines) for lines in wrapped) + 2 * CELL_PAD
    x, y = MARGIN, pdf.get_y()
    pdf.set_fill_color(*HEADING_FILL)
    pdf.rect(x, y, sum(widths), height, style="F")
    pdf.set_text_color(*MUTED)
    for w, lines in zip(widths, wrapped):
        top = y + (height - 5 * len(lines)) / 2
        for k, line in enumerate(lines):
            pdf.set_xy(x, top + 5 * k)
            pdf.cell(w, 5, line, align="C")
        x += w
    pdf.set_text_color(*INK)
    _end_row(pdf, widths, y + height)


def _end_row(pdf: FPDF, widths: list[float], bottom: float) -> None:
    """Rule a table row off at `bottom` and go to its left edge there: every row of both reports ends this way."""
    pdf.set_draw_color(*RULE)
    pdf.line(MARGIN, bottom, MARGIN + sum(widths), bottom)
    pdf.set_xy(MARGIN, bottom)


def _faces_row(pdf: FPDF, widths: list[float], height: float, number: int, face: FaceResult,
               crop_jpeg: bytes, heat_jpeg: bytes | None, whole_image: bool = False) -> None:
    """One face: its number, crop, heatmap (or 'none'), box, score, label in its colour, confidence.

    The whole-image check (no face found) shows its score only: a label there would read as a verdict."""
    x, y = MARGIN, pdf.get_y()
    middle = y + (height - 5) / 2
    pdf.set_font(MAIN_FONT, "", 9)

    def text(col: int, value: str) -> None:
        pdf.set_xy(x + sum(widths[:col]), middle)
        pdf.cell(widths[col], 5, value, align="C")

    text(0, str(number))
    image_side = widths[1] - 2 * CELL_PAD
    pdf.image(io.BytesIO(crop_jpeg), x=x + widths[0] + CELL_PAD, y=y + CELL_PAD, w=image_side, h=image_side)
    if heat_jpeg is not None:
        pdf.image(io.BytesIO(heat_jpeg), x=x + widths[0] + widths[1] + CELL_PAD, y=y + CELL_PAD,
                  w=image_side, h=image_side)
    else:
        text(2, "none")
    text(3, "{}, {}, {}, {}".format(*face.box))
    text(4, score_text(face.fake_probability))
    label = "no face" if whole_image else face.label
    pdf.set_font(MAIN_FONT, "B", 9)
    pdf.set_text_color(*TEXT_COLOURS.get(label, MUTED))
    text(5, "no verdict" if whole_image else LABEL_WORDS.get(label, label))
    pdf.set_text_color(*INK)
    pdf.set_font(MAIN_FONT, "", 9)
    text(6, "none" if whole_image or face.label == Label.UNCERTAIN else f"{face.confidence:.0%}")
    _end_row(pdf, widths, y + height)


@lru_cache(maxsize=1)
def _legend_png() -> bytes:
    """The heatmap colour scale as PNG, drawn once per process."""
    buf = io.BytesIO()
    overlay.legend(256, 12).save(buf, "PNG")
    return buf.getvalue()


def _heatmap_legend(pdf: FPDF) -> None:
    """The colour scale of the heatmaps, explained in one line."""
    pdf.set_y(pdf.get_y() + 2)
    y = pdf.get_y()
    pdf.image(io.BytesIO(_legend_png()), x=MARGIN, y=y + 0.8, w=30, h=2.6)
    pdf.set_xy(MARGIN + 32, y)
    pdf.set_font(MAIN_FONT, "", 7.5)
    pdf.set_text_color(*MUTED)
    _paragraph(pdf, 4, HEATMAP_LEGEND)
    pdf.set_text_color(*INK)
    pdf.set_y(pdf.get_y() + 4)


def _warnings(pdf: FPDF, v: Verdict, none_text: str = NO_WARNINGS_TEXT) -> None:
    """Each quality warning with what it means for trust, or a line saying there are none."""
    _section(pdf, "Quality warnings")
    if not v.warnings:
        pdf.set_font(MAIN_FONT, "", 9.5)
        _paragraph(pdf, 5, none_text)
    for w in v.warnings:
        if pdf.get_y() > pdf.h - 35:
            pdf.add_page()
        y = pdf.get_y()
        pdf.set_fill_color(*overlay.LABEL_COLOURS[Label.UNCERTAIN])
        pdf.rect(MARGIN, y + 0.8, 1.4, 3.6, style="F")
        pdf.set_xy(MARGIN + 4, y)
        title = _safe(WARNING_TITLES.get(w.code, w.code.replace("_", " ").capitalize()))
        # The bold face covers Latin, Greek and Cyrillic only: other scripts stay regular.
        bold = {ord(c) for c in title} <= _cmap(FONTS[1][2])
        pdf.set_font(MAIN_FONT, "B" if bold else "", 9)
        _text(pdf, pdf.w - 2 * MARGIN - 4, 5, title, MARGIN)
        pdf.set_font(MAIN_FONT, "", 9)
        pdf.set_x(MARGIN + 4)
        _text(pdf, pdf.w - 2 * MARGIN - 4, 4.6, w.message, MARGIN + 4)
        pdf.set_y(pdf.get_y() + 2)
    pdf.set_y(pdf.get_y() + 3)


def _explanation(pdf: FPDF, v: Verdict) -> None:
    """What the score means and what it cannot tell."""
    _section(pdf, "What the score means")
    pdf.set_font(MAIN_FONT, "", 9)
    _paragraph(pdf, 4.6, WHAT_THE_SCORE_MEANS)
    pdf.set_y(pdf.get_y() + 3)
    _section(pdf, "What it cannot tell")
    pdf.set_font(MAIN_FONT, "", 9)
    _paragraph(pdf, 4.6, WHAT_IT_CANNOT_TELL)


def _section(pdf: FPDF, title: str) -> None:
    """A section heading with a rule under it (on a new page if it would be orphaned)."""
    if pdf.get_y() > pdf.h - 45:
        pdf.add_page()
    pdf.set_font(MAIN_FONT, "B", 12)
    pdf.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _rule(pdf, pdf.get_y())
    pdf.set_y(pdf.get_y() + 2.5)


def _rule(pdf: FPDF, y: float) -> None:
    """A thin grey horizontal line across the text width."""
    pdf.set_draw_color(*RULE)
    pdf.set_line_width(0.3)
    pdf.line(MARGIN, y, pdf.w - MARGIN, y)
    pdf.set_line_width(0.2)


def _paragraph(pdf: FPDF, height: float, text: str) -> None:
    """One of this module's fixed texts, left-aligned from x to the right margin, then back to the left margin.

    fpdf2's line breaking re-measures the line for every character it adds (quadratic in the line
    length), which made these paragraphs a large part of a report's time. Their lines only depend
    on the text, the font and the width, so they are broken once per process and drawn line by line.
    """
    x = pdf.get_x()
    width = pdf.w - pdf.r_margin - x
    _lines(pdf, width, height, _wrapped(pdf, width, height, text))


def _wrapped(pdf: FPDF, width: float, height: float, text: str) -> tuple[str, ...]:
    """A fixed text's lines at a width in the current font, broken by fpdf2 once per process."""
    key = (text, pdf.font_family, pdf.font_style, pdf.font_size_pt, round(width, 4))
    lines = _WRAPPED.get(key)
    if lines is None:
        lines = tuple(pdf.multi_cell(width, height, text, align="L", dry_run=True, output="LINES"))
        if len(_WRAPPED) < _WRAPPED_MAX:
            _WRAPPED[key] = lines
    return lines


def _lines(pdf: FPDF, width: float, height: float, lines: list[str] | tuple[str, ...]) -> None:
    """Lines already broken (by a dry-run multi_cell) drawn left-aligned from x, then back to the left margin."""
    x = pdf.get_x()
    for line in lines:
        pdf.set_x(x)
        pdf.cell(width, height, line, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_x(pdf.l_margin)


def _break_lines(pdf: FPDF, width: float, text: str) -> list[str]:
    """Left-to-right text broken into lines of a cell `width` wide in the current font: at spaces, and anywhere
    inside a word longer than a line (hashes, long file names).

    Greedy, like fpdf2's multi_cell, but each word is measured once: fpdf2 re-measures the line for every
    character it adds, which made a few short wrapped values a visible share of a report's time."""
    room = width - 2 * pdf.c_margin
    space = pdf.get_string_width(" ")
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line: str | None = None
        used = 0.0
        for word in paragraph.split(" "):
            w = pdf.get_string_width(word)
            if line is not None and used + space + w <= room:
                line, used = f"{line} {word}", used + space + w
                continue
            if line is not None:
                lines.append(line)
            while w > room and len(word) > 1:
                cut, taken = 0, 0.0
                for ch in word:
                    cw = pdf.get_string_width(ch)
                    if cut and taken + cw > room:
                        break
                    cut, taken = cut + 1, taken + cw
                lines.append(word[:cut])
                word = word[cut:]
                w = pdf.get_string_width(word)
            line, used = word, w
        lines.append(line)
    return lines


_WRAPPED: dict[tuple[str, str, str, float, float], tuple[str, ...]] = {}
"""Line breaks of the fixed paragraphs: (text, family, style, size, width) -> lines."""
_WRAPPED_MAX = 64


def _text(pdf: FPDF, width: float, height: float, text: str, x: float) -> None:
    """Untrusted text (file names, messages): made safe, shaped when right-to-left, wrapped anywhere."""
    safe = _safe(text)
    rtl = any(unicodedata.bidirectional(c) in ("R", "AL") for c in safe)
    if rtl:
        pdf.set_text_shaping(True)
    try:
        if rtl:
            pdf.multi_cell(width, height, safe, new_x=XPos.LEFT, new_y=YPos.NEXT, align="L")
        else:
            _lines(pdf, width, height, _break_lines(pdf, width, safe))
    finally:
        if rtl:
            pdf.set_text_shaping(False)
    pdf.set_x(x)


# Text safety ------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _cmap(file: str) -> frozenset[int]:
    """The code points a shipped font file can draw."""
    return frozenset(TTFont(str(FONT_DIR / file), lazy=True).getBestCmap())


@lru_cache(maxsize=1)
def _covered() -> frozenset[int]:
    """Every code point some shipped regular font can draw."""
    return frozenset().union(*(_cmap(file) for _, style, file in FONTS if style == ""))


def _untrusted_text(v: Verdict) -> str:
    """All text in a report that does not come from this module (it may hold any script)."""
    return " ".join([v.filename, v.model_name, *(w.message for w in v.warnings), *(w.code for w in v.warnings)])


def _safe(text: str) -> str:
    """Text every character of which a shipped font can draw: invisible marks dropped, controls
    turned into spaces, anything else unknown replaced by U+FFFD."""
    covered = _covered()
    out = []
    for ch in unicodedata.normalize("NFC", str(text)):
        cat = unicodedata.category(ch)
        if ord(ch) in covered and cat not in ("Cc", "Cs"):
            out.append(ch)
        elif cat in ("Cc", "Zl", "Zp"):
            out.append(" ")
        elif cat in ("Cf", "Mn", "Me") or 0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF:
            continue
        else:
            out.append(REPLACEMENT)
    return "".join(out)


# Images -----------------------------------------------------------------------------------
def _encode_thumbnail(analysis: "Analysis") -> _Thumbnail:
    """The boxed thumbnail as JPEG, small enough for the size budget."""
    v = analysis.verdict
    thumb = overlay.draw_boxes(_reduced(analysis.image, THUMB_MAX_SIDE_PX), v)
    thumb_jpeg = _jpeg(thumb, JPEG_QUALITY)
    quality = JPEG_QUALITY
    while len(thumb_jpeg) > THUMB_BUDGET_BYTES and quality > 40:
        quality -= 12
        thumb_jpeg = _jpeg(thumb, quality)
    while len(thumb_jpeg) > THUMB_BUDGET_BYTES and max(thumb.size) > 300:
        thumb = thumb.resize((thumb.width * 3 // 4, thumb.height * 3 // 4), Image.Resampling.LANCZOS)
        thumb_jpeg = _jpeg(thumb, quality)
    return _Thumbnail(thumb_jpeg, thumb.size)


def _encode_faces(analysis: "Analysis") -> list[tuple[bytes, bytes | None]]:
    """Each face's crop and heatmap overlay as JPEGs."""
    v = analysis.verdict
    side = FACE_PX if len(v.faces) < MANY_FACES else FACE_PX_MANY
    faces = []
    for i, face in enumerate(v.faces):
        crop = _crop_for(analysis, i, face).convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        heat = overlay.overlay_heatmap(crop, face.heatmap) if len(face.heatmap) else None
        faces.append((_jpeg(crop, JPEG_QUALITY), _jpeg(heat, JPEG_QUALITY) if heat is not None else None))
    return faces


def _reduced(image: Image.Image, max_side: int) -> Image.Image:
    """An RGB copy box-reduced by the smallest whole factor that brings its longer side to max_side or under."""
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    factor = -(-max(rgb.size) // max_side)
    return rgb.reduce(factor) if factor > 1 else rgb.copy()


def _crop_for(analysis: "Analysis", index: int, face: FaceResult) -> Image.Image:
    """The crop that was scored: from analysis.crops, else cut from the image by crop_box or box."""
    if index < len(analysis.crops):
        return analysis.crops[index]
    left, top, right, bottom = face.crop_box
    if right <= left or bottom <= top:
        x, y, w, h = face.box
        left, top, right, bottom = x, y, x + max(1, w), y + max(1, h)
    return analysis.image.crop((left, top, right, bottom))


def _jpeg(image: Image.Image, quality: int) -> bytes:
    """Baseline JPEG bytes with fixed settings (same pixels give the same bytes)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality, subsampling="4:2:0")  # no Huffman optimisation: 40% faster, 4% larger
    return buf.getvalue()


def _utc(moment: datetime) -> datetime:
    """The moment in UTC (a naive datetime is taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
