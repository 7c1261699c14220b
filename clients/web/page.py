"""The Streamlit page: a thin client over the shared core (`streamlit run clients/web/page.py`).

It holds no model. Every image goes through `clients.core.analyze.analyze` and every video clip through
`clients.core.clip.analyze_clip` to the model server over gRPC; the verdict, the boxes, the heatmaps, the
timelines and the PDF all come from the shared core, so the page, the bot and the CLI cannot disagree.
Settings come from one typed config (`WebConfig.from_env()`).

Streamlit runs this file as `__main__` on every rerun. The script body at the bottom imports this
same file as the module `clients.web.page` and calls its `main()`, so the classes stored in
`st.session_state` stay the same objects across reruns, and importing `clients.web.page` does no work.
"""
from __future__ import annotations

import base64
import csv
import functools
import hashlib
import html
import io
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import streamlit as st
from PIL import Image

from clients.core.clip_verdict import ClipVerdict
from clients.core.config import ClientConfig
from clients.core.detector import Detector
from clients.core.errors import DetectorError, DetectorUnavailable, InvalidImage
from clients.core.verdict import (LABEL_WORDS, NO_FACE, Label, Verdict, band_text, format_score, rule_text,
                                  score_text)

log = logging.getLogger("clients.web")

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp"]
VIDEO_TYPES = ["mp4", "mov", "webm", "mkv", "gif"]
ACCEPTED_TYPES = IMAGE_TYPES + VIDEO_TYPES
GENERIC_ERROR = "Something went wrong on this page. Please reload it and try again; if it keeps happening, tell us."
UNEXPECTED_FILE_ERROR = "Something went wrong while checking this file. The other files are not affected; please try again."
MIB = 1024 * 1024
FACE_COLUMNS = 5  # face pictures per row: small enough to compare, large enough to see the heatmap
FRAME_COLUMNS = 3  # a clip's driving frames per row (each with its face's heatmap under it)
FRAME_SIDE = 640  # a driving frame is shown at most this large
SERVER_DOWN = ("The detector server is not reachable right now, so no image can be checked. "
               "Please try again in a minute.")


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebConfig:
    """The page's settings: the core's ClientConfig plus what only the page needs."""

    client: ClientConfig = field(default_factory=ClientConfig)
    history_size: int = 50          # env DEEPFAKE_WEB_HISTORY: predictions kept in the session
    display_long_side: int = 1024   # the annotated image is shown at most this large
    thumb_side: int = 72            # history thumbnails
    status_ttl_s: float = 30.0      # how long the sidebar's model name/version is reused

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "WebConfig":
        """Read TF_SERVING_TARGET, DEEPFAKE_* (via ClientConfig) and DEEPFAKE_WEB_HISTORY."""
        env = os.environ if env is None else env
        raw = env.get("DEEPFAKE_WEB_HISTORY", "")
        try:
            history = int(raw) if raw else cls.history_size
        except ValueError as exc:
            raise ValueError(f"DEEPFAKE_WEB_HISTORY={raw!r} is not a valid int") from exc
        return cls(client=ClientConfig.from_env(env), history_size=max(1, history))


# ---------------------------------------------------------------------------------------------
# What one file gives (kept in session_state so reruns do not call the server again)
# ---------------------------------------------------------------------------------------------
@dataclass
class FaceView:
    """One face as shown: its crop, the crop with the heatmap laid over it, and its numbers."""

    crop: Image.Image
    overlay: Image.Image | None
    label: str
    fake_probability: float
    confidence: float
    box: tuple[int, int, int, int]


@dataclass
class FrameView:
    """One frame that drove a clip's verdict as shown: the frame with boxes, the face crop and its heatmap."""

    frame: Image.Image
    crop: Image.Image | None
    overlay: Image.Image | None
    caption: str
    number: int
    """The face track's number ('Face 2')."""


@dataclass
class FileOutcome:
    """Everything the page shows for one uploaded file: a photo's or a clip's verdict with pictures and PDF,
    or a friendly error."""

    key: str
    filename: str
    checked_at: datetime
    elapsed_s: float
    verdict: Verdict | None = None
    annotated: Image.Image | None = None
    faces: list[FaceView] = field(default_factory=list)
    pdf: bytes = b""
    thumb_png: bytes = b""
    error: str = ""
    error_kind: str = ""
    clip: ClipVerdict | None = None
    timelines: list[tuple[str, Image.Image]] = field(default_factory=list)
    """(caption, score-over-time picture) per face track."""
    frames: list[FrameView] = field(default_factory=list)
    tracks: list[dict[str, str]] = field(default_factory=list)
    """The per-track table's rows."""

    @property
    def ok(self) -> bool:
        """True when the file got a verdict."""
        return self.verdict is not None or self.clip is not None

    @property
    def keep(self) -> bool:
        """Whether to reuse this outcome on reruns (not when the server was down: that may pass)."""
        return self.ok or self.error_kind == "InvalidImage"


@dataclass(frozen=True)
class HistoryEntry:
    """One past prediction of this session, for the history table and its CSV."""

    checked_at: datetime
    filename: str
    label: str
    confidence: float
    fake_probability: float
    faces: int
    elapsed_s: float
    model: str
    sha256: str
    thumb_png: bytes = b""

    def row(self) -> dict[str, str]:
        """The CSV row (plain text, no thumbnail)."""
        return {
            "time_utc": self.checked_at.strftime("%Y-%m-%d %H:%M:%S"),
            "file": self.filename,
            "verdict": self.label,
            "confidence": f"{self.confidence:.4f}",
            "fake_probability": f"{self.fake_probability:.4f}",
            "faces": str(self.faces),
            "seconds": f"{self.elapsed_s:.3f}",
            "model": self.model,
            "sha256": self.sha256,
        }


CSV_FIELDS = ["time_utc", "file", "verdict", "confidence", "fake_probability", "faces", "seconds", "model", "sha256"]


def history_csv(entries: list[HistoryEntry]) -> str:
    """The session's history as CSV text, newest first (what the download button serves)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for entry in entries:
        writer.writerow(entry.row())
    return buf.getvalue()


def _png(image: Image.Image) -> bytes:
    """PNG bytes of an image (for thumbnails embedded in HTML)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def check_file(data: bytes, filename: str, client, config: WebConfig, key: str | None = None,
               progress=None) -> FileOutcome:
    """Check one upload (a photo, or a clip by its content) end to end through the core; every failure becomes a
    friendly FileOutcome. progress(done, total) hears of a clip's frames as they are checked."""
    from clients.core import overlay, report
    from clients.core.analyze import analyze
    from clients.core.video import is_video

    key = key or hashlib.sha256(data + filename.encode()).hexdigest()
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    try:
        if is_video(data):
            return check_clip(data, filename, client, config, key, now, started, progress)
        analysis = analyze(data, filename, client, config.client)
        verdict = analysis.verdict
        annotated = overlay.thumbnail(overlay.draw_boxes(analysis.image, verdict), config.display_long_side)
        faces = []
        for face, crop in zip(verdict.faces, analysis.crops):
            heat = overlay.overlay_heatmap(crop, face.heatmap) if face.heatmap else None
            faces.append(FaceView(crop=overlay.thumbnail(crop, 224),
                                  overlay=overlay.thumbnail(heat, 224) if heat is not None else None,
                                  label=NO_FACE if verdict.whole_image else face.label,
                                  fake_probability=face.fake_probability,
                                  confidence=face.confidence, box=tuple(face.box)))
        pdf = report.render_pdf(analysis)
        thumb = _png(overlay.thumbnail(analysis.image, config.thumb_side))
    except InvalidImage as exc:
        log.info("refused %r: %s", filename, exc)
        return FileOutcome(key, filename, now, time.perf_counter() - started, error=exc.user_message,
                           error_kind="InvalidImage")
    except DetectorUnavailable as exc:
        log.warning("detector unavailable for %r: %s", filename, exc)
        return FileOutcome(key, filename, now, time.perf_counter() - started, error=exc.user_message,
                           error_kind="DetectorUnavailable")
    except DetectorError as exc:
        log.warning("detector error for %r: %s", filename, exc)
        return FileOutcome(key, filename, now, time.perf_counter() - started, error=exc.user_message,
                           error_kind=type(exc).__name__)
    except Exception:  # one broken file must never stop the others, nor show a trace
        log.exception("unexpected failure while checking %r", filename)
        return FileOutcome(key, filename, now, time.perf_counter() - started, error=UNEXPECTED_FILE_ERROR,
                           error_kind="Unexpected")
    return FileOutcome(key, filename, now, time.perf_counter() - started, verdict=verdict, annotated=annotated,
                       faces=faces, pdf=pdf, thumb_png=thumb)


def check_clip(data: bytes, filename: str, client, config: WebConfig, key: str, now: datetime, started: float,
               progress=None) -> FileOutcome:
    """A clip through the core: its verdict, a timeline per face track, the driving frames, the track table and
    the PDF (errors are turned into words by check_file)."""
    from clients.core import clip_report, overlay
    from clients.core.clip import analyze_clip

    analysis = analyze_clip(data, filename, client, config.client, progress=progress)
    v = analysis.verdict
    numbers = clip_report.track_numbers(v)
    ordered = sorted(v.tracks, key=lambda t: numbers[t.track_id])
    timelines = [(f"Face {numbers[t.track_id]}: {clip_report.track_words(t, len(v.frames))}",
                  clip_report.timeline_image(v, t)) for t in ordered]
    frames = [FrameView(frame=overlay.thumbnail(d.frame, FRAME_SIDE),
                        crop=overlay.thumbnail(d.crop, 224) if d.crop is not None else None,
                        overlay=overlay.thumbnail(d.heatmap, 224) if d.heatmap is not None else None,
                        caption=f"Face {d.number} at {clip_report.clip_time(d.time_s)}: fake score "
                                f"{score_text(d.fake_probability)}", number=d.number)
              for d in clip_report.driving_frames(analysis)]
    tracks = [{"Face": str(numbers[t.track_id]), "Frames seen": f"{len(t.frame_indices)} of {len(v.frames)}",
               "Track score": score_text(t.fake_probability), "Verdict": LABEL_WORDS.get(t.label, t.label),
               "Confidence": "none" if t.label == Label.UNCERTAIN else f"{t.confidence:.0%}",
               "Frames that drove it": clip_report.driving_times(v, t)} for t in ordered]
    pdf = clip_report.render_clip_pdf(analysis)
    first = frames[0].frame if frames else (analysis.frames[min(analysis.frames)] if analysis.frames else None)
    thumb = _png(overlay.thumbnail(first, config.thumb_side)) if first is not None else b""
    return FileOutcome(key, filename, now, time.perf_counter() - started, clip=v, timelines=timelines,
                       frames=frames, tracks=tracks, pdf=pdf, thumb_png=thumb,
                       annotated=frames[0].frame if frames else (overlay.thumbnail(first, FRAME_SIDE)
                                                                 if first is not None else None))


def history_entry(outcome: FileOutcome) -> HistoryEntry:
    """The history line of a successful check (a clip counts its face tracks as its faces)."""
    v = outcome.verdict or outcome.clip
    assert v is not None
    faces = len(v.tracks) if isinstance(v, ClipVerdict) else 0 if v.whole_image else len(v.faces)
    return HistoryEntry(checked_at=outcome.checked_at, filename=outcome.filename, label=v.shown_label,
                        confidence=v.confidence, fake_probability=v.fake_probability,
                        faces=faces, elapsed_s=outcome.elapsed_s,
                        model=f"{v.model_name} v{v.model_version}", sha256=v.sha256, thumb_png=outcome.thumb_png)


def pdf_name(filename: str) -> str:
    """The report's file name: the upload's stem plus '-report.pdf', safe for any browser."""
    stem = os.path.splitext(os.path.basename(filename))[0] or "image"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return f"{safe}-report.pdf"


# ---------------------------------------------------------------------------------------------
# Server access (cached per process)
# ---------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def get_client(target: str, timeout_s: float, retries: int, model_name: str) -> Detector:
    """One detector per target for the whole server process (its gRPC channel is meant to be shared)."""
    from clients.core.detector import make_detector

    return make_detector(ClientConfig(target=target, timeout_s=timeout_s, retries=retries, model_name=model_name))


def client_for(config: WebConfig):
    """The cached client for this config's target."""
    c = config.client
    return get_client(c.target, c.timeout_s, c.retries, c.model_name)


@dataclass(frozen=True)
class ServerStatus:
    """What the sidebar says about the model server."""

    healthy: bool
    model_name: str = ""
    model_version: int = 0
    threshold: float | None = None
    uncertain_band: tuple[float, float] | None = None


def server_status(config: WebConfig) -> ServerStatus:
    """Health on every run (a cheap status call); the model's name and version reused for a while."""
    c = config.client
    client = client_for(config)
    if not client.health():
        return ServerStatus(healthy=False)
    info = _model_info(c.target, c.timeout_s, c.retries, c.model_name, _ttl_bucket(config.status_ttl_s))
    if info is None:
        return ServerStatus(healthy=False)
    return ServerStatus(healthy=True, model_name=info.name, model_version=info.version,
                        threshold=info.threshold, uncertain_band=tuple(info.uncertain_band))


def _ttl_bucket(ttl_s: float) -> int:
    """A number that changes every ttl_s seconds (the cache key that makes the model info expire)."""
    return int(time.monotonic() // max(ttl_s, 0.001))


@st.cache_resource(show_spinner=False, max_entries=8)
def _model_info(target: str, timeout_s: float, retries: int, model_name: str, bucket: int):
    """The served model's name, version, threshold and band (one tiny Predict per target and time bucket)."""
    try:
        return get_client(target, timeout_s, retries, model_name).model_info()
    except DetectorError as exc:
        log.warning("model info from %s: %s", target, exc)
        return None


# ---------------------------------------------------------------------------------------------
# Theme: Streamlit cannot switch its theme per session at run time, so the page paints itself
# ---------------------------------------------------------------------------------------------
PALETTES = {
    "light": {
        "bg": "#f5f7fb", "surface": "#ffffff", "surface2": "#eef1f7", "sidebar": "#eaeef6",
        "text": "#1b2030", "muted": "#5b6476", "border": "#d9dee9", "accent": "#3056d3",
        "accent_text": "#ffffff", "fake": "#c62f3b", "real": "#1f8a4c", "uncertain": "#b7791f",
        "fake_bg": "#fdecee", "real_bg": "#e7f6ed", "uncertain_bg": "#fdf5e6", "shadow": "rgba(20,30,60,.06)",
        "error_bg": "#fdecee", "error_fg": "#7a1c25", "warning_bg": "#fdf3e1", "warning_fg": "#6b4a0e",
        "info_bg": "#e8eefd", "info_fg": "#1d3b7a", "success_bg": "#e7f6ed", "success_fg": "#14532d",
        "toggle_off": "#c3c9d6",
    },
    "dark": {
        "bg": "#0e1320", "surface": "#161c2c", "surface2": "#1d2538", "sidebar": "#121828",
        "text": "#e7eaf2", "muted": "#9aa3b8", "border": "#2b3550", "accent": "#7d9bff",
        "accent_text": "#0e1320", "fake": "#ff6b76", "real": "#4fd18b", "uncertain": "#f5b94a",
        "fake_bg": "#3a1d24", "real_bg": "#15322a", "uncertain_bg": "#3a3020", "shadow": "rgba(0,0,0,.35)",
        "error_bg": "#3a1d24", "error_fg": "#ffc9ce", "warning_bg": "#352b1a", "warning_fg": "#ffe2a6",
        "info_bg": "#1b2a48", "info_fg": "#c8d8ff", "success_bg": "#15322a", "success_fg": "#bff0d4",
        "toggle_off": "#46506a",
    },
}


def theme_css(theme: str) -> str:
    """CSS that paints the whole page (app, header, sidebar, widgets, tables) in one palette."""
    p = PALETTES[theme]
    alerts = "\n".join(
        f'[data-testid="stAlertContainer"]:has([data-testid="stAlertContent{kind.title()}"]) {{ '
        f'background-color: {p[kind + "_bg"]} !important; }}\n'
        f'[data-testid="stAlertContent{kind.title()}"], [data-testid="stAlertContent{kind.title()}"] * {{ '
        f'color: {p[kind + "_fg"]} !important; }}'
        for kind in ("error", "warning", "info", "success"))
    scheme = "dark" if theme == "dark" else "light"
    return f"""
<style>
:root {{ color-scheme: {scheme}; }}
.stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"], [data-testid="stBottomBlockContainer"] {{
  background-color: {p['bg']} !important; color: {p['text']} !important; }}
[data-testid="stHeader"] {{ background-color: {p['bg']} !important; }}
[data-testid="stHeader"] *, [data-testid="stToolbar"] * {{ color: {p['text']} !important; }}
[data-testid="stSidebar"], [data-testid="stSidebarContent"] {{
  background-color: {p['sidebar']} !important; border-right: 1px solid {p['border']}; }}
.stApp h1, .stApp h2, .stApp h3, .stApp h4, .stApp h5, .stApp h6, .stApp p, .stApp li, .stApp label,
.stApp span, .stApp small, .stApp strong, .stApp em, .stApp td, .stApp th, .stApp summary,
[data-testid="stMarkdownContainer"], [data-testid="stCaptionContainer"], [data-testid="stWidgetLabel"] {{
  color: {p['text']}; }}
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] * {{ color: {p['muted']} !important; }}
.stApp a {{ color: {p['accent']} !important; }}
[data-testid="stFileUploaderDropzone"] {{
  background-color: {p['surface']} !important; border: 1.5px dashed {p['border']} !important; color: {p['text']} !important; }}
[data-testid="stFileUploaderDropzone"] * {{ color: {p['text']} !important; }}
[data-testid="stFileUploaderDropzoneInstructions"] small {{ color: {p['muted']} !important; }}
[data-testid="stFileChip"] {{ background-color: {p['surface2']} !important; border: 1px solid {p['border']} !important; }}
[data-testid="stFileChip"] * {{ color: {p['text']} !important; }}
[data-testid="stExpander"] details, [data-testid="stExpander"] summary {{
  background-color: {p['surface']} !important; border-color: {p['border']} !important; color: {p['text']} !important; }}
div[class*="st-key-card-"] {{
  border-color: {p['border']} !important; }}
div[class*="st-key-card-"] {{ background-color: {p['surface']} !important; border-radius: 14px !important;
  box-shadow: 0 2px 12px {p['shadow']}; }}
.stButton > button, .stDownloadButton > button, [data-testid="stBaseButton-secondary"],
[data-testid="stFileUploaderDropzone"] button {{
  background-color: {p['surface2']} !important; color: {p['text']} !important; border: 1px solid {p['border']} !important; }}
.stButton > button:hover, .stDownloadButton > button:hover, [data-testid="stFileUploaderDropzone"] button:hover {{
  border-color: {p['accent']} !important; color: {p['accent']} !important; }}
.stButton > button *, .stDownloadButton > button * {{ color: inherit !important; }}
[data-testid="stTable"] table, .stTable table {{ background-color: {p['surface']} !important; color: {p['text']} !important; }}
[data-testid="stTable"] th, [data-testid="stTable"] td {{
  background-color: {p['surface']} !important; color: {p['text']} !important; border-color: {p['border']} !important; }}
[data-testid="stTable"] th {{ background-color: {p['surface2']} !important; }}
[data-testid="stProgress"] > div > div {{ background-color: {p['surface2']} !important; }}
[data-testid="stMetricValue"], [data-testid="stMetricLabel"] * {{ color: {p['text']} !important; }}
[data-testid="stCheckbox"] label:has(input[role="switch"]:not(:checked)) > span + div {{
  background-color: {p['toggle_off']} !important; }}
[data-testid="stTooltipIcon"] button, [data-testid="stTooltipIcon"] svg {{ color: {p['muted']} !important;
  stroke: {p['muted']} !important; }}
{alerts}
code {{ background-color: {p['surface2']} !important; color: {p['text']} !important; }}
hr {{ border-color: {p['border']} !important; }}
.df-card {{ background: {p['surface']}; border: 1px solid {p['border']}; border-radius: 14px;
  padding: 1rem 1.2rem; box-shadow: 0 2px 10px {p['shadow']}; margin-bottom: .6rem; }}
.df-file {{ font-weight: 600; font-size: 1.05rem; color: {p['text']}; word-break: break-all; }}
.df-verdict {{ display: flex; align-items: baseline; gap: .8rem; flex-wrap: wrap; padding: .8rem 1rem;
  border-radius: 12px; margin: .4rem 0 .6rem 0; border: 1px solid {p['border']}; }}
.df-verdict .df-label {{ font-size: 1.55rem; font-weight: 700; }}
.df-verdict .df-conf {{ font-size: 1.0rem; color: {p['muted']}; }}
.df-fake {{ background: {p['fake_bg']}; }} .df-fake .df-label {{ color: {p['fake']}; }}
.df-real {{ background: {p['real_bg']}; }} .df-real .df-label {{ color: {p['real']}; }}
.df-uncertain {{ background: {p['uncertain_bg']}; }} .df-uncertain .df-label {{ color: {p['uncertain']}; }}
.df-meter {{ position: relative; height: 10px; border-radius: 6px; margin: .3rem 0 .2rem 0;
  background: linear-gradient(90deg, {p['real']} 0%, {p['uncertain']} 50%, {p['fake']} 100%); opacity: .9; }}
.df-meter .df-mark {{ position: absolute; top: -4px; width: 4px; height: 18px; border-radius: 2px;
  background: {p['text']}; box-shadow: 0 0 0 2px {p['surface']}; }}
.df-meter .df-thr {{ position: absolute; top: -2px; width: 2px; height: 14px; background: {p['surface']}; opacity: .9; }}
.df-meter .df-band {{ position: absolute; top: 0; height: 10px; background: rgba(255,255,255,.35);
  border-left: 1px dashed {p['surface']}; border-right: 1px dashed {p['surface']}; }}
.df-scale {{ display: flex; justify-content: space-between; font-size: .78rem; color: {p['muted']}; }}
.df-muted {{ color: {p['muted']} !important; font-size: .9rem; }}
.df-status {{ display: inline-flex; align-items: center; gap: .45rem; font-weight: 600; }}
.df-dot {{ width: .65rem; height: .65rem; border-radius: 50%; display: inline-block; }}
.df-dot.up {{ background: {p['real']}; }} .df-dot.down {{ background: {p['fake']}; }}
table.df-history {{ width: 100%; border-collapse: collapse; background: {p['surface']}; border-radius: 12px;
  overflow: hidden; border: 1px solid {p['border']}; }}
table.df-history th, table.df-history td {{ padding: .45rem .7rem; text-align: left; border-bottom: 1px solid {p['border']};
  color: {p['text']}; font-size: .92rem; }}
table.df-history th {{ background: {p['surface2']}; font-weight: 600; }}
table.df-history img {{ width: 48px; height: 48px; object-fit: cover; border-radius: 8px; display: block; }}
.df-pill {{ padding: .12rem .55rem; border-radius: 999px; font-weight: 600; font-size: .85rem; }}
.df-pill.fake {{ background: {p['fake_bg']}; color: {p['fake']}; }}
.df-pill.real {{ background: {p['real_bg']}; color: {p['real']}; }}
.df-pill.uncertain {{ background: {p['uncertain_bg']}; color: {p['uncertain']}; }}
</style>
"""


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
HOW_IT_WORKS = """
1. Your image is sent to the detector server. Nothing is stored there.
2. The page finds the faces in it and cuts out a square around each one (the whole image if it finds none).
3. A neural network trained on real photos and on deepfakes (face swaps and fully generated faces)
   gives each face a **fake score**.
4. The most suspicious face decides the verdict for the image.
5. A video is checked on frames spread over it: the same face across frames forms a **face track**,
   which gets one score from its frames; the most suspicious track decides the clip.
"""

SCORE_TEXT = """
The **fake score** is the model's calibrated probability that a face was manipulated or generated:
0.80 means that, among images like this one, about 8 in 10 were fake.

The **threshold** is the score from which the verdict says *likely fake*. Around it lies an
**uncertain band**: scores inside it are too close to call, so the page says *uncertain* instead of
guessing. **Confidence** is how sure the model is of the verdict it gives (the score for *fake*,
one minus the score for *real*).

The **heatmap** shows the parts of a face that pushed the score towards *fake* (red = most).
"""

LIMITS_TEXT = """
- It is a statistical tool, not proof. A verdict can be wrong either way; do not accuse anyone on it alone.
- It was trained on a limited set of face swaps and generated faces; new generators may fool it.
- Small, blurry, heavily compressed faces, screenshots and photos of screens are judged less reliably:
  the page warns you when it sees them.
- It only looks at faces. An edited background or a real face in a false context is not detected.
"""


def render_sidebar(config: WebConfig) -> ServerStatus:
    """Theme toggle, server health and model, then the plain-words explanations."""
    sb = st.sidebar
    sb.toggle("Dark theme", key="dark_theme", help="Switch the whole page between light and dark.")
    status = server_status(config)
    sb.markdown("### Detector server")
    if status.healthy:
        sb.markdown('<span class="df-status"><span class="df-dot up"></span>Online</span>', unsafe_allow_html=True)
        sb.markdown(f"Model **{html.escape(status.model_name)}**, version **{status.model_version}**")
        if status.threshold is not None:
            band = status.uncertain_band or (status.threshold, status.threshold)
            sb.caption(f"Decision rule: {rule_text(status.threshold, band)}.")
    else:
        sb.markdown('<span class="df-status"><span class="df-dot down"></span>Not reachable</span>',
                    unsafe_allow_html=True)
        sb.caption("The page cannot reach the detector server right now.")
    sb.caption(f"Server address: `{config.client.target}`")
    with sb.expander("How it works", expanded=True):
        st.markdown(HOW_IT_WORKS)
    with sb.expander("What the score and threshold mean"):
        st.markdown(SCORE_TEXT)
    with sb.expander("Limits"):
        st.markdown(LIMITS_TEXT)
    return status


def verdict_html(v: Verdict | ClipVerdict) -> str:
    """The coloured verdict banner with the confidence and a score meter."""
    word = LABEL_WORDS.get(v.shown_label, v.shown_label)
    low, high = v.uncertain_band
    band = ""
    if low < high:
        band = f'<div class="df-band" style="left:{low*100:.1f}%;width:{(high-low)*100:.1f}%"></div>'
    meter = (f'<div class="df-meter">{band}<div class="df-thr" style="left:calc({v.threshold*100:.1f}% - 1px)"></div>'
             f'<div class="df-mark" style="left:calc({v.fake_probability*100:.1f}% - 2px)"></div></div>'
             '<div class="df-scale"><span>0 real</span><span>threshold '
             f'{format_score(v.threshold)}</span><span>1 fake</span></div>')
    return (f'<div class="df-verdict df-{html.escape(v.shown_label)}"><span class="df-label">{html.escape(word)}'
            f'</span><span class="df-conf">{html.escape(v.detail)}</span></div>' + meter)


def explain_label(v: Verdict) -> str:
    """One sentence under the banner that says what this verdict means."""
    score, threshold = score_text(v.fake_probability), format_score(v.threshold)
    if v.whole_image:
        return v.whole_image_check
    if v.label == Label.UNCERTAIN:
        return (f"The fake score {score} is inside the uncertain band ({band_text(v.uncertain_band)}): "
                "the model cannot tell reliably, so treat this image as unverified.")
    if v.label == Label.FAKE:
        return f"The fake score {score} is at or above the threshold {threshold}."
    return f"The fake score {score} is below the threshold {threshold}."


def timing_text(outcome: FileOutcome) -> str:
    """'Checked in 0.42 s (model 0.30 s, …)' from the core's timings and the page's own clock."""
    v = outcome.verdict
    parts = []
    if v is not None:
        names = {"decode": "reading", "faces": "finding faces", "request": "model"}
        for key, name in names.items():
            if key in v.timings_ms:
                parts.append(f"{name} {v.timings_ms[key] / 1000:.2f} s")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"Checked in {outcome.elapsed_s:.2f} s{detail}."


def faces_table(outcome: FileOutcome):
    """The per-face rows (a pandas frame for st.table; "Face #" is a column, since Streamlit hides a 1..n index)."""
    import pandas as pd

    rows = [{"Face #": i + 1, "Verdict": LABEL_WORDS.get(f.label, f.label), "Fake score": f"{f.fake_probability:.3f}",
             "Confidence": f"{f.confidence:.0%}", "Box (x, y, w, h)": ", ".join(str(int(n)) for n in f.box)}
            for i, f in enumerate(outcome.faces)]
    return pd.DataFrame(rows)


def explain_clip(v: ClipVerdict) -> str:
    """One sentence under a clip's banner: what decided it."""
    frames = f"{len(v.frames)} sampled frame{'s' if len(v.frames) != 1 else ''}"
    if v.no_face:
        return f"No face was found in the {frames}, so there is no real/fake verdict: the detector judges faces."
    which = "its one face track" if len(v.tracks) == 1 else f"the most suspicious of its {len(v.tracks)} face tracks"
    return (f"The clip's fake score {score_text(v.fake_probability)} is that of {which}, from {frames} "
            f"({rule_text(v.threshold, v.uncertain_band)}). Rule: {v.rule}.")


def render_verdict_column(outcome: FileOutcome, v: Verdict | ClipVerdict, explanation: str, details: str) -> None:
    """The card's right column, one code path for photos and clips so both say the same things the same way: verdict
    banner, the explanation, warnings, time plus `details`, and the PDF download."""
    st.markdown(verdict_html(v), unsafe_allow_html=True)
    st.markdown(explanation)
    for w in v.warnings:
        st.warning(w.message, icon="⚠️")
    st.caption(f"{timing_text(outcome)} {details}")
    st.download_button("Download PDF report", data=outcome.pdf, file_name=pdf_name(outcome.filename),
                       mime="application/pdf", key=f"pdf-{outcome.key}", on_click="ignore",
                       icon=":material/picture_as_pdf:")


def render_clip(outcome: FileOutcome, show_heatmap: bool) -> None:
    """A clip's card body: the verdict, the frame that drove it most, a timeline per face track, the driving
    frames with boxes and heatmaps, the track table, warnings, time and PDF."""
    v = outcome.clip
    left, right = st.columns([1.1, 1], gap="large")
    with left:
        if outcome.annotated is not None:
            caption = (outcome.frames[0].caption + " (the frame that drove the verdict most)" if outcome.frames
                       else "No face found in the sampled frames.")
            st.image(outcome.annotated, caption=caption, width="stretch")
    with right:
        width, height = v.video_size
        render_verdict_column(outcome, v, explain_clip(v),
                              f"Clip {width}×{height}, {v.duration_s:.1f} s. Model {v.model_name} v{v.model_version}.")
    if not outcome.timelines:
        return
    st.markdown("**Score over time, per face track**")
    for caption, picture in outcome.timelines:
        st.image(picture, caption=caption, width="stretch")
    st.markdown("**Face tracks**")
    st.table(_frame(outcome.tracks), hide_index=True)
    if outcome.frames:
        st.markdown("**Frames that drove the verdict**")
        cols = st.columns(FRAME_COLUMNS)
        for i, view in enumerate(outcome.frames):
            with cols[i % FRAME_COLUMNS]:
                st.image(view.frame, caption=view.caption, width="stretch")
                face = view.overlay if (show_heatmap and view.overlay is not None) else view.crop
                if face is not None:
                    what = "heatmap" if face is view.overlay else "crop"
                    st.image(face, caption=f"Face {view.number} ({what})", width=160)
        if show_heatmap and any(view.overlay is not None for view in outcome.frames):
            render_heatmap_legend()


def _frame(rows: list[dict[str, str]]):
    """Rows as a pandas frame for st.table."""
    import pandas as pd

    return pd.DataFrame(rows)


def render_outcome(outcome: FileOutcome, show_heatmap: bool) -> None:
    """One file's card: verdict, picture with boxes, faces, heatmaps, warnings, time and PDF."""
    with st.container(border=True, key=f"card-{outcome.key}"):
        st.markdown(f'<div class="df-file">{html.escape(outcome.filename)}</div>', unsafe_allow_html=True)
        if not outcome.ok:
            if outcome.error_kind == "DetectorUnavailable":
                st.error(f"{outcome.error}", icon="🔌")
            else:
                st.error(f"{outcome.error}", icon="⚠️")
            return
        if outcome.clip is not None:
            render_clip(outcome, show_heatmap)
            return
        v = outcome.verdict
        left, right = st.columns([1.1, 1], gap="large")
        with left:
            caption = ("No face found: the whole image was judged." if v.whole_image
                       else f"{len(v.faces)} face{'s' if len(v.faces) != 1 else ''} found.")
            st.image(outcome.annotated, caption=caption, width="stretch")
        with right:
            render_verdict_column(outcome, v, explain_label(v), f"Model {v.model_name} v{v.model_version}.")
        if outcome.faces:
            st.markdown("**Faces**" if not v.whole_image else "**Whole-image check (not a verdict)**")
            st.table(faces_table(outcome), hide_index=True)
            cols = st.columns(FACE_COLUMNS)
            for i, face in enumerate(outcome.faces):
                with cols[i % FACE_COLUMNS]:
                    shown = face.overlay if (show_heatmap and face.overlay is not None) else face.crop
                    what = "heatmap" if shown is face.overlay else "crop"
                    st.image(shown, caption=f"Face {i + 1} ({what}): {LABEL_WORDS.get(face.label, face.label)}, "
                                            f"score {face.fake_probability:.2f}", width="stretch")
            if show_heatmap and any(face.overlay is not None for face in outcome.faces):
                render_heatmap_legend()


@functools.lru_cache(maxsize=1)
def heatmap_legend_png() -> bytes:
    """The heatmaps' colour scale, drawn by the same function as the PDF report's legend."""
    from clients.core import overlay

    return _png(overlay.legend(256, 12))


def render_heatmap_legend() -> None:
    """The colour scale under the heatmaps, with the PDF's words for it, so the colours can be read."""
    from clients.core.report import HEATMAP_LEGEND

    st.image(heatmap_legend_png(), caption=HEATMAP_LEGEND, width=320)


def render_history(config: WebConfig) -> None:
    """The session's recent predictions with thumbnails, a clear button and a CSV download."""
    entries: list[HistoryEntry] = st.session_state.setdefault("history", [])
    st.markdown("### Recent checks")
    if not entries:
        st.caption("Nothing checked yet in this session.")
        return
    rows = []
    for e in entries:
        thumb = (f'<img alt="" src="data:image/png;base64,{base64.b64encode(e.thumb_png).decode()}">'
                 if e.thumb_png else "")
        rows.append(f"<tr><td>{thumb}</td><td>{html.escape(e.filename)}</td>"
                    f'<td><span class="df-pill {html.escape(e.label)}">{html.escape(LABEL_WORDS.get(e.label, e.label))}'
                    f"</span></td><td>{e.confidence:.0%}</td><td>{e.faces}</td>"
                    f"<td>{e.checked_at.strftime('%H:%M:%S')} UTC</td><td>{e.elapsed_s:.2f} s</td></tr>")
    st.markdown('<table class="df-history"><thead><tr><th></th><th>File</th><th>Verdict</th><th>Confidence</th>'
                "<th>Faces</th><th>Checked</th><th>Took</th></tr></thead><tbody>" + "".join(rows)
                + "</tbody></table>", unsafe_allow_html=True)
    st.caption(f"Keeps the last {config.history_size} checks of this browser session only.")
    a, b, _ = st.columns([1.4, 1, 2.6])
    with a:
        st.download_button("Download history (CSV)", data=history_csv(entries), file_name="deepfake-checks.csv",
                           mime="text/csv", key="history_csv", on_click="ignore", icon=":material/download:")
    with b:
        st.button("Clear history", key="clear_history", on_click=clear_history, icon=":material/delete:")


def clear_history() -> None:
    """Button callback: forget this session's predictions."""
    st.session_state["history"] = []


def process_uploads(files, config: WebConfig) -> list[FileOutcome]:
    """Check every new upload (with progress), reuse earlier outcomes, record new verdicts in the history."""
    done: dict[str, FileOutcome] = st.session_state.setdefault("outcomes", {})
    keys = [getattr(f, "file_id", None) or f"{f.name}-{f.size}" for f in files]
    todo = [(k, f) for k, f in zip(keys, files) if k not in done]
    if todo:
        client = client_for(config)
        bar = st.progress(0.0, text=f"Checking {len(todo)} file{'s' if len(todo) != 1 else ''}…")
        for i, (key, f) in enumerate(todo):
            with st.spinner(f"Checking {f.name}…"):
                outcome = check_file(f.getvalue(), f.name, client, config, key=key,
                                     progress=frame_progress(bar, f.name, i, len(todo)))
            done[key] = outcome
            if outcome.ok:
                history: list[HistoryEntry] = st.session_state.setdefault("history", [])
                history.insert(0, history_entry(outcome))
                del history[config.history_size:]
            bar.progress((i + 1) / len(todo), text=f"Checked {i + 1} of {len(todo)}")
        bar.empty()
    outcomes = [done[k] for k in keys]
    for key in [k for k in done if k not in keys]:   # forget files the user removed
        del done[key]
    for key in [k for k in keys if not done[k].keep]:  # retry these on the next run (server may be back)
        del done[key]
    return outcomes


def frame_progress(bar, name: str, position: int, files: int):
    """A clip's progress(done, total) callback that moves the bar within this file's share of it."""

    def progress(done: int, total: int) -> None:
        """Show how many of the clip's frames are checked."""
        share = min(max(done / total, 0.0), 1.0) if total else 0.0
        bar.progress(min((position + share) / files, 1.0), text=f"Checking {name}: frame {done} of {total}")

    return progress


def upload_limit_mb(config: WebConfig) -> int:
    """The uploader's per-file limit in whole MB: the core's own limit (DEEPFAKE_MAX_BYTES) rounded down, never above
    Streamlit's server.maxUploadSize, so the limit the widget states is the one that applies and the widget itself
    refuses every file the core would refuse for its size (for any limit of 1 MB or more)."""
    server_mb = int(st.get_option("server.maxUploadSize"))
    return max(1, min(config.client.max_bytes // MIB, server_mb))


def render_page() -> None:
    """The whole page, top to bottom."""
    # "auto": the sidebar starts open on a wide screen and collapsed on a phone, where it would cover the results.
    st.set_page_config(page_title="Deepfake face check", page_icon="🕵️", layout="wide",
                       initial_sidebar_state="auto")
    st.session_state.setdefault("dark_theme", False)
    st.session_state.setdefault("history", [])
    config = WebConfig.from_env()
    st.html(theme_css("dark" if st.session_state["dark_theme"] else "light"))
    status = render_sidebar(config)
    # The sidebar toggle above may have just changed the theme; the CSS is re-sent every run from the state.

    st.title("Is this face real?")
    st.markdown('<p class="df-muted">Upload photos or short videos with faces. Each face is checked by a deepfake '
                "detector; you get a verdict, where it looked, what may limit trust in it, and a PDF report. A video "
                "gets a score over time for each face in it.</p>", unsafe_allow_html=True)
    if not status.healthy:
        st.error(SERVER_DOWN, icon="🔌")

    files = st.file_uploader("Images or videos (JPG, PNG, WebP; MP4, MOV, WebM, MKV, animated GIF; several at once)",
                             type=ACCEPTED_TYPES,
                             accept_multiple_files=True, key="uploads", max_upload_size=upload_limit_mb(config))
    st.toggle("Show heatmaps on faces", value=True, key="show_heatmap",
              help="Colours the parts of each face that pushed the score towards fake.")
    if files:
        outcomes = process_uploads(files, config)
        for outcome in outcomes:
            render_outcome(outcome, st.session_state["show_heatmap"])
    st.divider()
    render_history(config)


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is at the time of each record."""

    @property
    def stream(self):  # type: ignore[override]
        """The current sys.stderr."""
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        """Ignore: the stream is always the current sys.stderr."""


def _setup_logging() -> None:
    """Send the page's own log lines (with tracebacks) to stderr, once per process."""
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main() -> None:
    """Run the page; anything unexpected becomes a friendly message here and a traceback in the log."""
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

    _setup_logging()
    try:
        render_page()
    except ScriptControlException:  # st.rerun / st.stop are Streamlit's own control flow
        raise
    except Exception:
        log.exception("the web page failed")
        st.error(GENERIC_ERROR, icon="⚠️")


if __name__ == "__main__":
    from clients.web.page import main as _main  # the importable module: same classes on every rerun

    _main()
