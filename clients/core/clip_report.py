"""The pictures and the PDF report of one clip check, shared by every front end (page, bot, CLI).

A clip's verdict rests on face tracks, so the report shows, per track, its fake score over time (a timeline
drawn with Pillow: no plotting library in the client), the frames that drove its score with the face boxes and
heatmaps, and a table of every track; then the rule that turned frame scores into the verdict, the threshold and
band, the quality warnings and what the score cannot tell. The layout pieces, fonts and text safety are the photo
report's (clients.core.report), so both reports read alike; like it, this one is deterministic for a fixed `now`.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image, ImageDraw, ImageFont

from clients.core import overlay, pdffonts
from clients.core import report as base
from clients.core.clip_verdict import ClipVerdict, FrameFace, FrameResult, TrackResult
from clients.core.facecrop import Box, square_box
from clients.core.verdict import LABEL_WORDS, Label, confidence_text, rule_text, score_text
from serving.contract import label_for

if TYPE_CHECKING:
    from clients.core.clip import ClipAnalysis

TIMELINE_PX = (1200, 300)
"""The timeline picture's size: printed 180 mm wide in the PDF (~170 dpi), shown full width on the page."""
FRAME_PX = 640
"""Long side of a driving frame's picture in the PDF."""
CROP_PX = 192
MAX_TIMELINES = 6
"""Timelines drawn at most (the most suspicious tracks); every track is still in the table."""
MAX_DRIVING_TRACKS = 3
MAX_DRIVING_PER_TRACK = 3
MAX_TIMES_LISTED = 4

PLOT_BG = (255, 255, 255)
GRID = (222, 226, 230)
AXIS = (108, 117, 125)
LINE = (52, 58, 64)
SAMPLED = (173, 181, 189)
BAND_TINTS = {Label.REAL: (233, 246, 233), Label.UNCERTAIN: (255, 240, 210), Label.FAKE: (253, 230, 228)}

NO_WARNINGS_TEXT = ("None. The sampled frames passed every quality check the clip check makes.")
NO_TRACK_TEXT = ("No face was found in any sampled frame, so there is no real/fake verdict and nothing to plot. "
                 "The detector judges faces only.")
HOW_A_CLIP_IS_JUDGED = (
    "Frames are sampled evenly over the clip (with keyframes where they are cheap to decode). Faces found on the "
    "sampled frames are linked into tracks by the overlap of their boxes, so each person gets one score rather "
    "than one per frame. Each face crop is scored by the same model as a photo; a track's score follows the rule "
    "below, and the clip is labelled with the photo's threshold and uncertain band. The frames that drove a "
    "track's score are shown with their face boxes and heatmaps. Frames between the samples are not checked: a "
    "manipulation that lasts only a moment can be missed."
)


# Naming and timing ------------------------------------------------------------------------
def track_numbers(verdict: ClipVerdict) -> dict[int, int]:
    """Track id -> the number people see ('Face 1' is the face that appears first), the same on every front end."""
    ordered = sorted(verdict.tracks, key=lambda t: (min(t.frame_indices, default=0), t.track_id))
    return {t.track_id: n for n, t in enumerate(ordered, start=1)}


def clip_time(seconds: float) -> str:
    """A moment of the clip as 'm:ss.s' (tenths: sampled frames are often under a second apart)."""
    seconds = max(0.0, float(seconds))
    minutes, rest = divmod(round(seconds * 10), 600)
    return f"{minutes}:{rest / 10:04.1f}"


def frame_times(verdict: ClipVerdict) -> dict[int, float]:
    """Stream frame number -> its time in the clip, from the sampled frames."""
    return {f.index: f.time_s for f in verdict.frames}


def time_of(verdict: ClipVerdict, index: int, times: dict[int, float] | None = None) -> float:
    """The time of a frame: as sampled, else from its number and the frame rate."""
    times = frame_times(verdict) if times is None else times
    if index in times:
        return times[index]
    return index / verdict.fps if verdict.fps > 0 else 0.0


def frame_label(verdict: ClipVerdict, probability: float) -> Label:
    """A frame's face score in the verdict's words, by the same rule as a photo's face."""
    return Label(label_for(probability, verdict.threshold, verdict.uncertain_band))


def by_suspicion(verdict: ClipVerdict) -> list[TrackResult]:
    """The tracks, most suspicious first (the first one decides the clip)."""
    return sorted(verdict.tracks, key=lambda t: (-t.fake_probability, t.track_id))


def driving_times(verdict: ClipVerdict, track: TrackResult, limit: int = MAX_TIMES_LISTED) -> str:
    """'0:03.2, 0:05.0 and 2 more': when the frames that drove a track's score were shown."""
    times = frame_times(verdict)
    shown = [clip_time(time_of(verdict, i, times)) for i in track.driving_frames[:limit]]
    more = len(track.driving_frames) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


# The timeline picture ---------------------------------------------------------------------
@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The shipped regular font at a pixel size."""
    try:
        return ImageFont.truetype(str(base.FONT_DIR / "DejaVuSans.ttf"), size)
    except OSError:
        return ImageFont.load_default(size=size)


def _time_step(duration: float) -> float:
    """A round tick step giving about 4 to 10 ticks over the clip."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 10:
            return float(step)
    return 1200.0


def timeline_image(verdict: ClipVerdict, track: TrackResult, size: tuple[int, int] = TIMELINE_PX) -> Image.Image:
    """One face track's fake score at each sampled frame over the clip's time, drawn on the real / uncertain / fake
    zones with the threshold line; each point in its label's colour, the frames that drove the score ringed, the
    track's score as a line, and a tick under every sampled frame (hollow where this face was not seen)."""
    w, h = size
    unit = h / 300
    left, right, top, bottom = round(78 * unit), round(24 * unit), round(34 * unit), round(52 * unit)
    pw, ph = w - left - right, h - top - bottom
    img = Image.new("RGB", size, PLOT_BG)
    draw = ImageDraw.Draw(img)
    small, tiny = _font(max(10, round(17 * unit))), _font(max(9, round(15 * unit)))
    times = frame_times(verdict)
    duration = max([verdict.duration_s, *times.values(), 1e-3])

    def x_of(t: float) -> float:
        return left + pw * min(max(t / duration, 0.0), 1.0)

    def y_of(p: float) -> float:
        return top + ph * (1.0 - min(max(p, 0.0), 1.0))

    low, high = verdict.uncertain_band
    if not low < high:
        low = high = verdict.threshold
    for start, end, label in ((0.0, low, Label.REAL), (low, high, Label.UNCERTAIN), (high, 1.0, Label.FAKE)):
        if end > start:
            draw.rectangle((left, y_of(end), left + pw, y_of(start)), fill=BAND_TINTS[label])
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(p)
        draw.line((left, y, left + pw, y), fill=GRID, width=max(1, round(unit)))
        text = f"{p:g}"
        tw = draw.textlength(text, font=small)
        draw.text((left - 10 * unit - tw, y), text, fill=AXIS, font=small, anchor="lm")
    _dashed(draw, left, y_of(verdict.threshold), left + pw, AXIS, max(1, round(2 * unit)), round(10 * unit))
    draw.text((left + pw - 6 * unit, y_of(verdict.threshold) - 4 * unit),
              f"threshold {base.format_score(verdict.threshold)}", fill=AXIS, font=tiny, anchor="rb")
    step = _time_step(duration)
    ticks = int(duration / step + 1e-9)
    for k in range(ticks + 1):
        tick = k * step
        x = x_of(tick)
        draw.line((x, top + ph, x, top + ph + 6 * unit), fill=AXIS, width=max(1, round(unit)))
        text = clip_time(tick).removesuffix(".0") if step >= 1 else clip_time(tick)
        half = draw.textlength(text, font=small) / 2
        draw.text((min(x, w - 2 * unit - half), top + ph + 22 * unit), text, fill=AXIS, font=small, anchor="mm")
    draw.text((left + pw / 2, h - 6 * unit), "time in the clip (m:ss)", fill=AXIS, font=tiny, anchor="mb")
    draw.text((left, top - 8 * unit), "fake score", fill=AXIS, font=tiny, anchor="lb")
    draw.rectangle((left, top, left + pw, top + ph), outline=AXIS, width=max(1, round(unit)))

    seen = dict(zip(track.frame_indices, track.frame_scores))
    sampled = sorted(times, key=lambda i: (times[i], i))
    for index in sampled:  # where frames were checked, filled where this face was there
        x = x_of(times[index])
        r = 3.5 * unit
        y = top + ph - 6 * unit
        draw.ellipse((x - r, y - r, x + r, y + r), fill=SAMPLED if index in seen else None, outline=SAMPLED)
    track_colour = overlay.LABEL_COLOURS.get(track.label, AXIS)
    _dashed(draw, left, y_of(track.fake_probability), left + pw, track_colour, max(1, round(2 * unit)),
            round(4 * unit))
    points = [(index, x_of(time_of(verdict, index, times)), y_of(score)) for index, score in seen.items()]
    points.sort(key=lambda p: p[1])
    position = {index: k for k, index in enumerate(sampled)}
    for (i0, x0, y0), (i1, x1, y1) in zip(points, points[1:]):
        gap = i0 in position and i1 in position and any(
            s not in seen for s in sampled[position[i0] + 1:position[i1]])
        if not gap:  # a frame between them was checked and this face was not on it: no line across
            draw.line((x0, y0, x1, y1), fill=LINE, width=max(1, round(3 * unit)))
    driving = set(track.driving_frames)
    for index, x, y in points:
        r = 7 * unit
        if index in driving:
            rr = 12 * unit
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), outline=LINE, width=max(1, round(3 * unit)))
        colour = overlay.LABEL_COLOURS.get(frame_label(verdict, seen[index]), AXIS)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=LINE, width=max(1, round(unit)))
    return img


def _dashed(draw: ImageDraw.ImageDraw, x0: float, y: float, x1: float, colour, width: int, dash: int) -> None:
    """A horizontal dashed line."""
    dash = max(2, dash)
    x = x0
    while x < x1:
        draw.line((x, y, min(x + dash, x1), y), fill=colour, width=width)
        x += 2 * dash


# Driving frames ---------------------------------------------------------------------------
@dataclass
class DrivingFrame:
    """One frame that drove a track's score: the frame with boxes, the face crop and its heatmap overlay."""

    track_id: int
    number: int
    """The track's number as people see it ('Face 2')."""
    index: int
    time_s: float
    fake_probability: float
    frame: Image.Image
    crop: Image.Image | None
    heatmap: Image.Image | None


def frame_with_boxes(image: Image.Image, frame: FrameResult, verdict: ClipVerdict,
                     highlight: int | None = None, numbers: dict[int, int] | None = None) -> Image.Image:
    """A copy of a sampled frame with each face boxed in its frame label's colour and tagged 'Face n 0.91';
    the highlighted track's box is drawn thicker."""
    numbers = track_numbers(verdict) if numbers is None else numbers
    out = image.convert("RGB") if image.mode != "RGB" else image.copy()
    long_side = max(out.size)
    width = max(2, round(long_side / 250))
    font = overlay._font(max(11, round(long_side / 40)))
    draw = ImageDraw.Draw(out)
    for face in sorted(frame.faces, key=lambda f: f.track_id == highlight):  # the highlighted one drawn last
        x, y, fw, fh = face.box
        colour = overlay.LABEL_COLOURS.get(frame_label(verdict, face.fake_probability), AXIS)
        line = width * 2 if face.track_id == highlight else width
        draw.rectangle((x, y, x + fw, y + fh), outline=colour, width=line)
        tag = f"Face {numbers.get(face.track_id, face.track_id)} {score_text(face.fake_probability)}"
        overlay._tag(draw, tag, (x, y, x + fw, y + fh), colour, font, out.size)
    return out


def face_crop(image: Image.Image, face: FrameFace) -> Image.Image:
    """The square crop around a face by the one crop rule (what the model was shown)."""
    return image.crop(square_box(Box(*face.box), image.size))


def driving_frames(analysis: "ClipAnalysis", max_tracks: int = MAX_DRIVING_TRACKS,
                   per_track: int = MAX_DRIVING_PER_TRACK) -> list[DrivingFrame]:
    """The frames that drove the most suspicious tracks' scores, with pictures, most suspicious track first.

    A frame whose picture the analysis did not keep is skipped (its time and score are still in the table)."""
    verdict = analysis.verdict
    numbers = track_numbers(verdict)
    frames = {f.index: f for f in verdict.frames}
    out = []
    for track in by_suspicion(verdict)[:max_tracks]:
        for index in track.driving_frames[:per_track]:
            image, frame = analysis.frames.get(index), frames.get(index)
            if image is None or frame is None:
                continue
            face = next((f for f in frame.faces if f.track_id == track.track_id), None)
            if face is None:
                continue
            crop = face_crop(image, face)
            heat = analysis.heatmaps.get((index, track.track_id)) if analysis.heatmaps else None
            out.append(DrivingFrame(track_id=track.track_id, number=numbers[track.track_id], index=index,
                                    time_s=frame.time_s, fake_probability=face.fake_probability,
                                    frame=frame_with_boxes(image, frame, verdict, track.track_id, numbers),
                                    crop=crop,
                                    heatmap=overlay.overlay_heatmap(crop, heat) if heat is not None and len(heat)
                                    else None))
    return out


# The PDF ----------------------------------------------------------------------------------
def render_clip_pdf(analysis: "ClipAnalysis", now: datetime | None = None) -> bytes:
    """The report of one clip check as PDF bytes; `now` (UTC) is printed and set as creation date."""
    base.quiet_font_logs()
    now = base._utc(now or datetime.now(timezone.utc))
    v = analysis.verdict
    pdf = base._ReportPDF(v)
    pdf.set_creation_date(now)
    pdf.set_title(base._safe(f"Deepfake check: {v.filename or 'video clip'}"))
    pdf.set_subject("Deepfake detector report (video clip)")
    pdf.set_creator("deepfake-detector")
    pdf.set_author("deepfake-detector")
    pdf.set_keywords(base._safe(f"deepfake-check kind:video label:{v.shown_label} p_fake:{v.fake_probability:.4f} "
                                f"tracks:{len(v.tracks)} frames:{len(v.frames)} "
                                f"model:{v.model_name}/{v.model_version} sha256:{v.sha256}"))
    shown = driving_frames(analysis)
    pdf.add_page()
    base._header(pdf, now, "Deepfake check report: video clip")
    base._verdict_banner(pdf, v, verdict_sentence(v), scale=not v.no_face)
    _details(pdf, v, shown[0].frame if shown else _first_frame(analysis))
    _timelines(pdf, v)
    _driving_table(pdf, shown)
    _tracks_table(pdf, v)
    base._warnings(pdf, v, NO_WARNINGS_TEXT)
    _explanation(pdf, v)
    return bytes(pdf.output(output_producer_class=pdffonts.OutputProducer))


build_clip_report = render_clip_pdf


def verdict_sentence(v: ClipVerdict) -> str:
    """The clip verdict's numbers in a sentence, under the label word."""
    frames = f"{len(v.frames)} sampled frame{'s' if len(v.frames) != 1 else ''}"
    if v.no_face:
        return f"No face was found in the {frames}, so there is no real/fake verdict."
    subject = "the one face track" if len(v.tracks) == 1 else f"the most suspicious of {len(v.tracks)} face tracks"
    if v.label == Label.UNCERTAIN:
        return f"{v.headline} (for {subject}, {frames})."
    return (f"Fake score {score_text(v.fake_probability)} for {subject}, from {frames}. Confidence in this "
            f"verdict: {v.confidence:.0%} ({base.confidence_words(v.confidence)}).")


def _first_frame(analysis: "ClipAnalysis") -> Image.Image | None:
    """The earliest kept frame, shown when no face drove anything."""
    if not analysis.frames:
        return None
    return analysis.frames[min(analysis.frames)]


def _details(pdf: FPDF, v: ClipVerdict, picture: Image.Image | None) -> None:
    """A frame (the most suspicious one, boxed) on the left, the file, clip and model details on the right."""
    top = pdf.get_y()
    max_w, max_h = 96.0, 72.0
    h = 0.0
    if picture is not None:
        thumb = base._reduced(picture, FRAME_PX)
        scale = min(max_w / thumb.width, max_h / thumb.height)
        w, h = thumb.width * scale, thumb.height * scale
        pdf.image(io.BytesIO(base._jpeg(thumb, base.JPEG_QUALITY)), x=base.MARGIN, y=top, w=w, h=h)
        pdf.set_draw_color(*base.RULE)
        pdf.rect(base.MARGIN, top, w, h)
    x = base.MARGIN + max_w + 6
    col = pdf.w - base.MARGIN - x
    fw, fh = v.video_size
    fmt = " · ".join(part for part in (v.container, v.codec) if part)
    with_faces = sum(1 for f in v.frames if f.faces)
    rows = [
        ("File", v.filename or "(unnamed)"),
        ("SHA-256", v.sha256 or "(not computed)"),
        ("Video", f"{fw}×{fh} px, {clip_time(v.duration_s)} long, {v.fps:.3g} frames/s" + (f" ({fmt})" if fmt else "")),
        ("Frames checked", f"{len(v.frames)} sampled, {with_faces} with a face"),
        ("Face tracks", str(len(v.tracks)) if v.tracks else "none found"),
        ("Model", f"{v.model_name}, version {v.model_version}"),
        ("Decision", rule_text(v.threshold, v.uncertain_band)),
        ("Rule", v.rule),
    ]
    if v.timings_ms:
        rows.append(("Time", ", ".join(f"{k.replace('_', ' ')} {ms:.0f} ms" for k, ms in v.timings_ms.items())))
    for label, value in rows:
        pdf.set_x(x)
        pdf.set_font(base.MAIN_FONT, "B", 8)
        pdf.set_text_color(*base.MUTED)
        pdf.cell(col, 4, label.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_text_color(*base.INK)
        pdf.set_font(base.MAIN_FONT, "", 7.5 if label == "SHA-256" else 9)
        base._text(pdf, col, 4.4, value, x)
        pdf.set_y(pdf.get_y() + 1.2)
    end = max(top + h + 6, pdf.get_y()) + 4
    if picture is not None and v.tracks:
        pdf.set_font(base.MAIN_FONT, "", 7.5)
        pdf.set_text_color(*base.MUTED)
        pdf.set_xy(base.MARGIN, top + h + 1)
        pdf.cell(max_w, 4, "The frame that drove the verdict most, with every face boxed.")
        pdf.set_text_color(*base.INK)
    pdf.set_y(end)


def _timelines(pdf: FPDF, v: ClipVerdict) -> None:
    """A score-over-time picture per face track (the most suspicious ones), each under a line naming it."""
    base._section(pdf, "Score over time, per face track")
    if v.no_face:
        pdf.set_font(base.MAIN_FONT, "", 9.5)
        base._paragraph(pdf, 5, NO_TRACK_TEXT)
        pdf.set_y(pdf.get_y() + 4)
        return
    numbers = track_numbers(v)
    chosen = by_suspicion(v)[:MAX_TIMELINES]
    width = pdf.w - 2 * base.MARGIN
    height = width * TIMELINE_PX[1] / TIMELINE_PX[0]
    for track in sorted(chosen, key=lambda t: numbers[t.track_id]):
        if pdf.get_y() + height + 7 > pdf.page_break_trigger:
            pdf.add_page()
        pdf.set_font(base.MAIN_FONT, "B", 9.5)
        pdf.set_text_color(*base.TEXT_COLOURS.get(track.label, base.INK))
        pdf.cell(0, 5, f"Face {numbers[track.track_id]}: {track_words(track, len(v.frames))}",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(*base.INK)
        buf = io.BytesIO()
        timeline_image(v, track).save(buf, "PNG", optimize=True)
        pdf.image(buf, x=base.MARGIN, y=pdf.get_y() + 0.5, w=width, h=height)
        pdf.set_y(pdf.get_y() + height + 3)
    if len(v.tracks) > len(chosen):
        pdf.set_font(base.MAIN_FONT, "", 8.5)
        pdf.set_text_color(*base.MUTED)
        pdf.cell(0, 5, f"{len(v.tracks) - len(chosen)} less suspicious track(s) are not plotted; all are in the "
                       "table below.", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(*base.INK)
    pdf.set_font(base.MAIN_FONT, "", 7.5)
    pdf.set_text_color(*base.MUTED)
    base._paragraph(pdf, 4, "Each dot is the face's fake score on one sampled frame, coloured by what that score "
                            "alone would say; ringed dots drove the track's score (the dashed line in the track's "
                            "colour). Shaded zones: real (green), uncertain (amber), fake (red). Small marks at the "
                            "bottom: every sampled frame, filled where this face was seen.")
    pdf.set_text_color(*base.INK)
    pdf.set_y(pdf.get_y() + 3)


def track_words(track: TrackResult, frames: int) -> str:
    """'Likely fake, track score 0.873 (confidence 87%), seen in 12 of 32 frames'."""
    word = LABEL_WORDS.get(track.label, track.label)
    return (f"{word}, track score {score_text(track.fake_probability)} "
            f"({confidence_text(track.label, track.confidence)}), seen in {len(track.frame_indices)} of {frames} "
            f"sampled frames")


DRIVING_COLUMNS = ("Face", "Time", "Frame", "Crop", "Heatmap", "Fake score")
TRACK_COLUMNS = ("Face", "Frames seen", "Track score", "Label", "Confidence", "Frames that drove it (time)")
HEADING_SIZE = 8.5
"""Point size of the clip tables' headings (a little smaller than the photo report's)."""


def _widths(pdf: FPDF, weights: tuple[float, ...]) -> list[float]:
    """Column widths filling the text width in these proportions."""
    width = pdf.w - 2 * base.MARGIN
    return [w * width / sum(weights) for w in weights]


def _driving_table(pdf: FPDF, shown: list[DrivingFrame]) -> None:
    """The frames that drove the most suspicious tracks: the boxed frame, the crop and its heatmap, per row."""
    if not shown:
        return
    base._section(pdf, "Frames that drove the verdict")
    widths = _widths(pdf, (14, 18, 52, 28, 28, 22))
    side = widths[3] - 2 * base.CELL_PAD
    base._table_heading(pdf, widths, DRIVING_COLUMNS, HEADING_SIZE)
    for row in shown:
        frame = base._reduced(row.frame, FRAME_PX)
        fw = widths[2] - 2 * base.CELL_PAD
        fh = min(fw * frame.height / frame.width, 40.0)
        fw = fh * frame.width / frame.height
        height = max(side, fh) + 2 * base.CELL_PAD
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
            base._table_heading(pdf, widths, DRIVING_COLUMNS, HEADING_SIZE)
        x, y = base.MARGIN, pdf.get_y()
        middle = y + (height - 5) / 2
        pdf.set_font(base.MAIN_FONT, "", 9)

        def text(col: int, value: str) -> None:
            pdf.set_xy(x + sum(widths[:col]), middle)
            pdf.cell(widths[col], 5, value, align="C")

        text(0, str(row.number))
        text(1, clip_time(row.time_s))
        pdf.image(io.BytesIO(base._jpeg(frame, base.JPEG_QUALITY)),
                  x=x + sum(widths[:2]) + (widths[2] - fw) / 2, y=y + base.CELL_PAD, w=fw, h=fh)
        for col, picture in ((3, row.crop), (4, row.heatmap)):
            if picture is None:
                text(col, "none")
                continue
            small = picture.convert("RGB").resize((CROP_PX, CROP_PX), Image.Resampling.LANCZOS)
            pdf.image(io.BytesIO(base._jpeg(small, base.JPEG_QUALITY)), x=x + sum(widths[:col]) + base.CELL_PAD,
                      y=y + base.CELL_PAD, w=side, h=side)
        text(5, score_text(row.fake_probability))
        base._end_row(pdf, widths, y + height)
    base._heatmap_legend(pdf)


def _tracks_table(pdf: FPDF, v: ClipVerdict) -> None:
    """Every face track: frames seen, score, label in its colour, confidence and when its driving frames were."""
    base._section(pdf, "Face tracks")
    if v.no_face:
        pdf.set_font(base.MAIN_FONT, "", 9.5)
        base._paragraph(pdf, 5, "None: no face was found in the sampled frames.")
        pdf.set_y(pdf.get_y() + 4)
        return
    widths = _widths(pdf, (12, 20, 20, 24, 22, 52))
    base._table_heading(pdf, widths, TRACK_COLUMNS, HEADING_SIZE)
    numbers = track_numbers(v)
    height = 7.0
    for track in sorted(v.tracks, key=lambda t: numbers[t.track_id]):
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
            base._table_heading(pdf, widths, TRACK_COLUMNS, HEADING_SIZE)
        y = pdf.get_y()
        cells = (str(numbers[track.track_id]), f"{len(track.frame_indices)} of {len(v.frames)}",
                 score_text(track.fake_probability), LABEL_WORDS.get(track.label, track.label),
                 "none" if track.label == Label.UNCERTAIN else f"{track.confidence:.0%}",
                 driving_times(v, track))
        x = base.MARGIN
        for col, (w, value) in enumerate(zip(widths, cells)):
            pdf.set_xy(x, y + 1)
            if col == 3:
                pdf.set_font(base.MAIN_FONT, "B", 9)
                pdf.set_text_color(*base.TEXT_COLOURS.get(track.label, base.INK))
            else:
                pdf.set_font(base.MAIN_FONT, "", 9 if col < 5 else 8)
                pdf.set_text_color(*base.INK)
            pdf.cell(w, 5, value, align="C")
            x += w
        pdf.set_text_color(*base.INK)
        base._end_row(pdf, widths, y + height)
    pdf.set_y(pdf.get_y() + 5)


def _explanation(pdf: FPDF, v: ClipVerdict) -> None:
    """How a clip is judged (with this verdict's rule), what the score means and what it cannot tell."""
    base._section(pdf, "How a clip is judged")
    pdf.set_font(base.MAIN_FONT, "", 9)
    base._paragraph(pdf, 4.6, HOW_A_CLIP_IS_JUDGED)
    pdf.set_font(base.MAIN_FONT, "B", 9)
    base._text(pdf, pdf.w - 2 * base.MARGIN, 4.6, f"Rule: {v.rule}.", base.MARGIN)
    pdf.set_y(pdf.get_y() + 3)
    base._section(pdf, "What the score means")
    pdf.set_font(base.MAIN_FONT, "", 9)
    base._paragraph(pdf, 4.6, base.WHAT_THE_SCORE_MEANS)
    pdf.set_y(pdf.get_y() + 3)
    base._section(pdf, "What it cannot tell")
    pdf.set_font(base.MAIN_FONT, "", 9)
    base._paragraph(pdf, 4.6, base.WHAT_IT_CANNOT_TELL)
