"""The bot's handlers and the words it says. Small async functions; the wiring is in clients.bot.app.

Photos and image files get a photo's check; videos, video notes, animations and video files (by MIME type or
name, and always by content once downloaded) get a clip's check, with a status message edited as frames are
checked on a long clip."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from telegram import BotCommand, Document, Message, Update
from telegram.constants import ChatAction
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes

from clients.bot.config import BotConfig
from clients.bot.ratelimit import PerUserRateLimiter
from clients.core.analyze import Analysis, analyze_async
from clients.core.clip import ClipAnalysis, analyze_clip_async
from clients.core.clip_report import clip_time, driving_times, render_clip_pdf, track_numbers
from clients.core.clip_verdict import ClipVerdict, TrackResult
from clients.core.config import ClientConfig
from clients.core.errors import DetectorError, FileTooLarge, VideoFileTooLarge
from clients.core.detector import AsyncDetector, make_async_detector
from clients.core.report import render_pdf
from clients.core.verdict import NO_FACE, Label, Verdict, confidence_text, rule_text, score_text
from clients.core.video import VIDEO_TYPES, is_video
from serving import contract

log = logging.getLogger("clients.bot")

MB = 1024 * 1024
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".gif")
GENERIC_MIME_TYPES = ("", "application/octet-stream")
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
"""The Bot API lets a bot download files up to 20 MB (getFile refuses larger ones)."""
ACTION_REFRESH_S = 4.0  # Telegram shows a chat action for about 5 s
LABEL_MARKS = {Label.FAKE: "🔴", Label.REAL: "🟢", Label.UNCERTAIN: "🟡", NO_FACE: "⚪"}

WELCOME = (
    "Hello! I check whether a face in a photo looks manipulated or generated (a \"deepfake\").\n\n"
    "Send me a photo, or better, the image as a file. I answer with a verdict, its confidence and a "
    "score for each face, then a PDF report. Short videos work too: I check frames across the clip and follow "
    "each face through it.\n\n"
    "/help how to use me · /about the model · /privacy what is kept (nothing)"
)
HELP = (
    "How to use me:\n"
    "• Send a photo: I find the faces, score each one and answer with the verdict, then a PDF report.\n"
    "• Better: send the image as a FILE (📎 → File). Telegram then keeps the full quality; photos are "
    "recompressed, which hides the traces I look for.\n"
    "• An album gets one answer per image.\n"
    "• JPEG, PNG or WebP, up to {max_mb} MB.\n"
    "• Videos, video messages and GIFs too (MP4, MOV, WebM, MKV or animated GIF, up to 20 MB, the most Telegram "
    "lets me download): I check frames spread over the clip, give each face one score over time, and the most "
    "suspicious face decides.\n\n"
    "Reading the answer: \"Likely fake\" / \"Likely real\" with a confidence; \"Uncertain\" when the score "
    "is too close to call; \"No face found\" when there is no face to judge (the whole picture's score is then "
    "shown as a check, not a verdict). Warnings (small face, blur, heavy compression, no face, screenshot...) say why "
    "to trust a verdict less.\n\n"
    "Limits: {burst} images at once, then {per_minute:g} per minute.\n"
    "Commands: /start /help /about /privacy"
)
PRIVACY = (
    "What is kept: nothing, by default.\n"
    "• Your image or video is downloaded into memory, checked and forgotten once the answer is sent. It is "
    "never written to disk and never stored by this bot.\n"
    "• The model server receives only the face crops, in memory, and keeps nothing.\n"
    "• The PDF report is made in memory and sent to you only.\n"
    "• The bot's log records that a check happened and how long it took: no image, no file, no name.\n"
    "• Telegram itself keeps this chat as usual; delete it there if you wish."
)
NOT_IMAGE = ("This file is not an image or a video I can check ({kind}). Please send a JPEG, PNG or WebP photo — "
             f"ideally as a file, for full quality — or a clip ({VIDEO_TYPES}).")
TOO_LARGE = "This file is {size:.1f} MB; I can only check images up to {max_mb} MB. Please send a smaller image."
TOO_LARGE_VIDEO = ("This video is {size:.1f} MB; Telegram lets me download files up to {max_mb} MB only. Please "
                   "send a shorter clip, or a smaller copy of it.")
CLIP_PROGRESS = "⏳ Checking the clip: {percent}% of its frames looked at…"
RATE_LIMITED = ("You are sending faster than I can check — thank you for your patience! Please wait about "
                "{wait} seconds, then send again. (Limit: {burst} at once, then {per_minute:g} per minute.)")
DOWNLOAD_FAILED = "I could not fetch this file from Telegram. Please send it again."
PDF_FAILED = "The verdict is above; the PDF report could not be made this time."
SEND_IMAGE_OR_VIDEO = "Send me a photo, an image file or a short video and I will check it. /help tells more."
INTERNAL_ERROR = "Sorry, something went wrong on my side while handling this. Please try again."
SEND_IMAGE = "Send me a photo (or an image as a file) and I will check it. /help tells more."
UNKNOWN_COMMAND = "I don't know that command. Try /help."


@dataclass
class BotState:
    """What the handlers share: the config, the model client (opened at start) and the rate limiter."""

    config: "BotConfig"
    client_config: ClientConfig
    limiter: PerUserRateLimiter
    detector: AsyncDetector | None = None

    @classmethod
    def create(cls, config: "BotConfig") -> "BotState":
        """State for a fresh application (the detector is opened in post_init, on the running loop)."""
        return cls(config=config, client_config=config.client_config(),
                   limiter=PerUserRateLimiter(burst=config.rate_burst, per_minute=config.rate_per_minute))


def state_of(context: ContextTypes.DEFAULT_TYPE) -> BotState:
    """The shared state from the application's bot_data."""
    return context.application.bot_data["state"]


# life cycle ----------------------------------------------------------------------------------
async def open_detector(application: Application) -> None:
    """Open the detector (its gRPC channel) on the running loop and publish the command list."""
    state: BotState = application.bot_data["state"]
    state.detector = make_async_detector(state.client_config)
    with contextlib.suppress(TelegramError):
        await application.bot.set_my_commands([
            BotCommand("start", "Welcome"), BotCommand("help", "How to use the bot"),
            BotCommand("about", "The model, its version and accuracy"),
            BotCommand("privacy", "What is kept (nothing)"),
        ])


async def close_detector(application: Application) -> None:
    """Close the gRPC channel."""
    state: BotState = application.bot_data["state"]
    if state.detector is not None:
        await state.detector.close()
        state.detector = None


# guards --------------------------------------------------------------------------------------
async def rate_limit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Let a user's update through if their bucket has a token; else say so once and stop it."""
    user = update.effective_user
    if user is None:
        return
    state = state_of(context)
    decision = state.limiter.check(user.id)
    if decision.allowed:
        return
    if decision.notify and update.effective_message is not None:
        await update.effective_message.reply_text(RATE_LIMITED.format(
            wait=max(1, round(decision.retry_after_s)), burst=state.config.rate_burst,
            per_minute=state.config.rate_per_minute))
    raise ApplicationHandlerStop


# commands ------------------------------------------------------------------------------------
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Welcome, and say what to send."""
    await update.effective_message.reply_text(WELCOME)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """How to use the bot; sending a file is the better way."""
    config = state_of(context).config
    await update.effective_message.reply_text(HELP.format(
        max_mb=config.max_bytes // MB, burst=config.rate_burst, per_minute=config.rate_per_minute))


async def about(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The model, the version being served and its measured accuracy."""
    state = state_of(context)
    try:
        info = await state.detector.model_info()
    except DetectorError as err:
        log.warning("about: model info unavailable: %s", err)
        info = None
    await update.effective_message.reply_text(about_text(info, state.config.model_dir))


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What is kept: nothing by default."""
    await update.effective_message.reply_text(PRIVACY)


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Point to /help."""
    await update.effective_message.reply_text(UNKNOWN_COMMAND)


async def other_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text, stickers and the rest: say what the bot wants."""
    await update.effective_message.reply_text(SEND_IMAGE_OR_VIDEO)


# images --------------------------------------------------------------------------------------
async def on_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Check the largest size Telegram kept of a photo."""
    message = update.effective_message
    largest = message.photo[-1]
    await check_image(message, context, largest.file_id, largest.file_size, f"photo_{message.message_id}.jpg")


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Check an image or a video sent as a file (a file of no useful type is judged by its content once
    downloaded); refuse other files without downloading them."""
    message = update.effective_message
    document = message.document
    video = is_video_document(document)
    if not (video or is_image_document(document) or is_untyped_document(document)):
        await message.reply_text(NOT_IMAGE.format(kind=document.mime_type or "unknown type"), do_quote=True)
        return
    name = document.file_name or f"{'video' if video else 'file'}_{message.message_id}"
    await check_file(message, context, document.file_id, document.file_size, name, video=video)


async def on_video(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Check a video sent as a video (Telegram's player shows it)."""
    message = update.effective_message
    video = message.video
    name = video.file_name or f"video_{message.message_id}.mp4"
    await check_file(message, context, video.file_id, video.file_size, name, video=True)


async def on_video_note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Check a round video message."""
    message = update.effective_message
    note = message.video_note
    await check_file(message, context, note.file_id, note.file_size, f"video_note_{message.message_id}.mp4",
                     video=True)


async def on_animation(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Check an animation (a GIF, which Telegram usually turns into a silent MP4)."""
    message = update.effective_message
    animation = message.animation
    name = animation.file_name or f"animation_{message.message_id}.mp4"
    await check_file(message, context, animation.file_id, animation.file_size, name, video=True)


def is_image_document(document: Document) -> bool:
    """An image by its MIME type or, when Telegram gave none useful, by its extension."""
    mime = (document.mime_type or "").lower()
    if mime.startswith("image/"):
        return True
    name = (document.file_name or "").lower()
    return mime in GENERIC_MIME_TYPES and name.endswith(IMAGE_EXTENSIONS)


def is_video_document(document: Document) -> bool:
    """A video by its MIME type or, when Telegram gave none useful, by its extension (a GIF file is judged by its
    content: a still one is a photo)."""
    mime = (document.mime_type or "").lower()
    if mime.startswith("video/"):
        return True
    name = (document.file_name or "").lower()
    return mime in GENERIC_MIME_TYPES and name.endswith(VIDEO_EXTENSIONS) and not name.endswith(".gif")


def is_untyped_document(document: Document) -> bool:
    """A file whose MIME type and name say nothing: only its content can tell whether it is a picture or a clip."""
    mime = (document.mime_type or "").lower()
    name = (document.file_name or "").lower()
    return mime in GENERIC_MIME_TYPES and "." not in name.rsplit("/", 1)[-1]


async def check_image(message: Message, context: ContextTypes.DEFAULT_TYPE, file_id: str,
                      file_size: int | None, filename: str) -> None:
    """A photo's check (an animated GIF or a video in disguise still gets a clip's check, by its content)."""
    await check_file(message, context, file_id, file_size, filename, video=False)


async def check_file(message: Message, context: ContextTypes.DEFAULT_TYPE, file_id: str, file_size: int | None,
                     filename: str, video: bool) -> None:
    """Size check, download to memory, then a photo's or a clip's check by the bytes' content, each answered with
    the verdict and then the PDF. `video` says what Telegram called it, for the size limit and its words."""
    state = state_of(context)
    limit = min(state.config.max_bytes, TELEGRAM_DOWNLOAD_LIMIT) if video else state.config.max_bytes
    if file_size is not None and file_size > limit:
        words = TOO_LARGE_VIDEO if video else TOO_LARGE
        await message.reply_text(words.format(size=file_size / MB, max_mb=limit // MB), do_quote=True)
        return
    async with chat_action(context, message.chat_id, ChatAction.UPLOAD_DOCUMENT):
        try:
            data = await download(context, file_id, limit, VideoFileTooLarge if video else FileTooLarge)
            if is_video(data):
                await answer_clip(message, context, data, filename)
            else:
                await answer_image(message, context, data, filename)
        except DetectorError as err:
            log.info("%s refused: %s: %s", "video" if video else "image", type(err).__name__, err)
            await message.reply_text(err.user_message, do_quote=True)


async def answer_image(message: Message, context: ContextTypes.DEFAULT_TYPE, data: bytes, filename: str) -> None:
    """Analyse a picture; answer with the verdict, then the PDF."""
    state = state_of(context)
    analysis = await analyze_async(data, filename, state.detector, state.client_config)
    del data
    verdict = analysis.verdict
    log.info("checked one image: %s, %d face(s), %.0f ms", verdict.shown_label, len(verdict.faces),
             verdict.timings_ms.get("total", 0.0))
    await message.reply_text(verdict_text(verdict), do_quote=True)
    await send_report(message, analysis)


async def answer_clip(message: Message, context: ContextTypes.DEFAULT_TYPE, data: bytes, filename: str) -> None:
    """Analyse a clip, with a status message on a long one; answer with the verdict, then the clip's PDF."""
    state = state_of(context)
    async with clip_progress(message, state.config) as progress:
        analysis = await analyze_clip_async(data, filename, state.detector, state.client_config, progress=progress)
    del data
    verdict = analysis.verdict
    log.info("checked one clip: %s, %d face track(s), %d frames, %.0f ms", verdict.shown_label,
             len(verdict.tracks), len(verdict.frames), verdict.timings_ms.get("total", 0.0))
    await message.reply_text(clip_verdict_text(verdict), do_quote=True)
    await send_report(message, analysis)


async def download(context: ContextTypes.DEFAULT_TYPE, file_id: str, limit: int,
                   too_large: type[FileTooLarge] = FileTooLarge) -> bytes:
    """The file's bytes, in memory only; Telegram's refusals become domain errors."""
    try:
        tg_file = await context.bot.get_file(file_id)
        if tg_file.file_size is not None and tg_file.file_size > limit:
            raise too_large()
        return bytes(await tg_file.download_as_bytearray())
    except BadRequest as err:
        if "too big" in str(err).lower():
            raise too_large() from None
        raise DetectorError(DOWNLOAD_FAILED, f"download refused: {err}") from None
    except TelegramError as err:
        raise DetectorError(DOWNLOAD_FAILED, f"download failed: {type(err).__name__}") from None


async def send_report(message: Message, analysis: Analysis | ClipAnalysis) -> None:
    """Render the photo's or the clip's PDF off the event loop and send it as a document."""
    clip = isinstance(analysis, ClipAnalysis)
    try:
        pdf = await asyncio.to_thread(render_clip_pdf if clip else render_pdf, analysis)
    except Exception:
        log.exception("report rendering failed")
        await message.reply_text(PDF_FAILED, do_quote=True)
        return
    kind = "clip-report" if clip else "report"
    name = f"deepfake-{kind}-{analysis.verdict.sha256[:12] or message.message_id}.pdf"
    await message.reply_document(document=pdf, filename=name, do_quote=True,
                                 caption=f"Report: {analysis.verdict.summary}")


@contextlib.asynccontextmanager
async def clip_progress(message: Message, config: BotConfig) -> AsyncIterator[Callable[[int, int], None]]:
    """A progress(done, total) callback for the clip check; once the check has taken config.progress_after_s, a
    status message says how far it is, edited at most every config.progress_every_s, and deleted at the end."""
    latest: list[tuple[int, int]] = []
    status_box: list[Message] = []

    def progress(done: int, total: int) -> None:
        """Remember how far the check is (called on the event loop by the core)."""
        latest[:] = [(done, total)]

    async def report() -> None:
        """Post, then edit, the status message while the check runs."""
        status: Message | None = None
        shown = ""
        await asyncio.sleep(config.progress_after_s)
        while True:
            if latest:
                done, total = latest[0]
                text = CLIP_PROGRESS.format(percent=min(99, int(100 * done / total)) if total else 0)
                if text != shown:
                    with contextlib.suppress(TelegramError):
                        if status is None:
                            status = await message.reply_text(text, do_quote=True)
                            status_box.append(status)
                        else:
                            await status.edit_text(text)
                        shown = text
            await asyncio.sleep(config.progress_every_s)

    task = asyncio.create_task(report())
    try:
        yield progress
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for status in status_box:
            with contextlib.suppress(TelegramError):
                await status.delete()


@contextlib.asynccontextmanager
async def chat_action(context: ContextTypes.DEFAULT_TYPE, chat_id: int, action: str) -> AsyncIterator[None]:
    """Show `action` (e.g. "sending a file...") in the chat until the block ends."""

    async def keep_showing() -> None:
        """Re-send the action before Telegram hides it."""
        while True:
            with contextlib.suppress(TelegramError):
                await context.bot.send_chat_action(chat_id, action)
            await asyncio.sleep(ACTION_REFRESH_S)

    task = asyncio.create_task(keep_showing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# errors --------------------------------------------------------------------------------------
async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log what went wrong (the token is redacted by the log filter) and apologise without details.

    A user who blocked the bot (403 Forbidden) is no error of ours: one line, and no apology they cannot receive.
    Telegram lost while polling (no update) is one line per try: the updater keeps trying, with growing waits."""
    if isinstance(context.error, Forbidden):
        log.info("a reply was not delivered: the user blocked the bot or left the chat (403 Forbidden)")
        return
    if update is None and isinstance(context.error, NetworkError):
        log.warning("Telegram not reachable while polling (%s: %s); trying again", type(context.error).__name__,
                    context.error)
        return
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        with contextlib.suppress(TelegramError):
            await update.effective_message.reply_text(INTERNAL_ERROR)


# words ---------------------------------------------------------------------------------------
def verdict_text(verdict: Verdict) -> str:
    """The reply: verdict and confidence, per-face scores, warnings, model and time."""
    lines = [f"{LABEL_MARKS.get(verdict.shown_label, '')} {verdict.headline}".strip()]
    if verdict.whole_image:
        lines.append(verdict.whole_image_check)
    else:
        lines.append(f"Fake score {score_text(verdict.fake_probability)} "
                     f"({rule_text(verdict.threshold, verdict.uncertain_band)})")
        lines.append("")
        lines.append(f"Faces ({len(verdict.faces)}):")
        lines.extend(face_line(i, face) for i, face in enumerate(verdict.faces, 1))
    return "\n".join(lines + closing_lines(verdict))


def closing_lines(verdict: Verdict | ClipVerdict) -> list[str]:
    """What every reply ends with: the warnings, then which model answered, how long it took, and that a PDF follows."""
    lines = ["", "Warnings:", *(f"⚠️ {w.message}" for w in verdict.warnings)] if verdict.warnings else []
    seconds = verdict.timings_ms.get("total", 0.0) / 1000
    return [*lines, "", f"Model {verdict.model_name} v{verdict.model_version} · {seconds:.1f} s · the PDF report follows."]


def clip_verdict_text(verdict: ClipVerdict) -> str:
    """The reply to a clip: the verdict, its numbers and rule, one line per face track, warnings, model and time."""
    lines = [f"{LABEL_MARKS.get(verdict.shown_label, '')} {verdict.headline}".strip()]
    frames = f"{len(verdict.frames)} frames checked over {clip_time(verdict.duration_s)}"
    if verdict.no_face:
        lines.append(f"{frames}; none showed a face, and the detector judges faces only.")
    else:
        lines.append(f"Fake score {score_text(verdict.fake_probability)} "
                     f"({rule_text(verdict.threshold, verdict.uncertain_band)}); {frames}.")
        lines.append(f"Rule: {verdict.rule}.")
        lines.append("")
        lines.append(f"Faces ({len(verdict.tracks)}):")
        numbers = track_numbers(verdict)
        for track in sorted(verdict.tracks, key=lambda t: numbers[t.track_id]):
            lines.append(track_line(numbers[track.track_id], track, verdict))
    return "\n".join(lines + closing_lines(verdict))


def track_line(number: int, track: TrackResult, verdict: ClipVerdict) -> str:
    """One face track: its label and confidence, its score, how often it was seen and when it looked worst."""
    return (f"{number}. {track.label}, {confidence_text(track.label, track.confidence)} (track score "
            f"{score_text(track.fake_probability)}), seen in {len(track.frame_indices)} of {len(verdict.frames)} "
            f"frames; most telling at {driving_times(verdict, track)}")


def face_line(index: int, face) -> str:
    """One face: its label, what its confidence is, its fake score and where it is."""
    x, y, w, h = face.box
    return (f"{index}. {face.label}, {confidence_text(face.label, face.confidence)} (fake score "
            f"{score_text(face.fake_probability)}) at x={x}, y={y}, {w}×{h} px")


def about_text(info, model_dir: Path) -> str:
    """Model name, the served version, threshold/band and measured accuracy (or 'unknown')."""
    version = info.version if info is not None else newest_version(model_dir)
    metadata = read_metadata(model_dir, version) if version else {}
    accuracy = measured_accuracy(metadata.get("metrics") or {})
    lines = ["Deepfake face-image detector"]
    if info is not None:
        lines.append(f"Model: {info.name}, version {info.version} (being served now)")
        lines.append(f"Decision rule: {rule_text(info.threshold, info.uncertain_band)}")
    else:
        shipped = f"version {version} shipped" if version else "version unknown"
        lines.append(f"Model: {contract.MODEL_NAME}, {shipped} (the model server is not reachable right now)")
    lines.append(f"Measured accuracy: {accuracy}" if accuracy else
                 "Measured accuracy: unknown (no evaluation figures ship with this version)")
    if metadata.get("training_data"):
        lines.append(f"Trained on: {training_data_words(metadata['training_data'])}")
    lines.append("")
    lines.append("It is a statistical model: it can be wrong, and it only judges faces. Treat the verdict as "
                 "one clue among others.")
    return "\n".join(lines)


TRAINING_SOURCES = {
    "dfdc": "face swaps from the Deepfake Detection Challenge videos (DFDC) with their real frames",
    "utkface": "real portrait photos (UTKFace)",
    "mobilestylegan": "faces generated by MobileStyleGAN (a StyleGAN-family generator)",
    "ffhq": "real portrait photos from Flickr (FFHQ)",
    "aaf": "real portrait photos of people of all ages (All-Age-Faces)",
}
"""The data sets a version's metadata names, in words a user reads (the metadata holds paths and short names)."""


def training_data_words(raw: str) -> str:
    """The metadata's training_data ('../shared/data/faces (dfdc, utkface); configs/x.json') without paths or
    file names: the named sources described in words."""
    names = re.findall(r"\(([^)]*)\)", raw)
    sources = [n.strip() for group in names for n in group.split(",") if n.strip()]
    if sources:
        return "; ".join(TRAINING_SOURCES.get(s.lower(), s) for s in sources)
    words = [w for w in re.split(r"[\s;]+", raw) if w and "/" not in w and not re.search(r"\.\w+$", w)]
    return " ".join(words) or "not stated"


def newest_version(model_dir: Path) -> int | None:
    """The highest version directory under the model base path, if any."""
    versions = contract.version_dirs(model_dir)
    return versions[-1] if versions else None


def read_metadata(model_dir: Path, version: int) -> dict:
    """The metadata JSON of one version, or {} when it is absent or unreadable."""
    path = Path(model_dir) / str(version) / contract.METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def measured_accuracy(metrics: dict) -> str | None:
    """'91.2% (test accuracy), AUC 0.95' from the metrics dict, preferring test over validation figures."""
    found: list[tuple[int, str, float]] = []

    def walk(node, path: tuple[str, ...]) -> None:
        """Collect accuracy/AUC numbers with their key path."""
        if isinstance(node, dict):
            if path and path[-1] in ("per_source", "band", "bins", "reliability"):
                return
            for key, value in node.items():
                walk(value, path + (str(key).lower(),))
            return
        if isinstance(node, bool) or not isinstance(node, (int, float)) or not 0.0 <= node <= 1.0 or not path:
            return
        key, where = path[-1], " ".join(path)
        if "accuracy" not in key and key not in ("auc", "roc_auc"):
            return
        if any(word in key for word in ("inside", "outside", "best", "_at_", "target")):
            return
        rank = 0 if "test" in where else 1 if "val" in where else 2
        found.append((rank, where, float(node)))

    walk(metrics, ())
    accs = sorted(f for f in found if "accuracy" in f[1].split()[-1])
    aucs = sorted(f for f in found if f[1].split()[-1] in ("auc", "roc_auc"))
    if not accs:
        return None
    _, where, value = accs[0]
    text = f"{value:.1%} ({where.replace('_', ' ')})"
    if aucs:
        scope = " ".join(aucs[0][1].split()[:-1]).replace("_", " ")
        text += f", AUC {aucs[0][2]:.3f}" + (f" ({scope})" if scope else "")
    return text
