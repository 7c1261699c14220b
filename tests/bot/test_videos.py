"""Videos, video notes, animations and video files through the real bot, the Telegram stand-in and the real local
model server (untrained test model: these tests check what the bot says and sends, never the verdict's quality).
The expected verdict of each clip is computed independently with the client core's synchronous `analyze_clip`."""
from __future__ import annotations

import io
from dataclasses import replace

import pytest
from pypdf import PdfReader

from clients.bot.handlers import CLIP_PROGRESS, clip_verdict_text
from clients.core.clip import analyze_clip
from clients.core.clip_verdict import ClipVerdict
from clients.core.errors import CorruptVideo, NoVideoStream, VideoFileTooLarge
from clients.core.grpc_client import DetectorClient
from clients.core.verdict import LABEL_WORDS, score_text
from tests.bot.fake_telegram import FakeTelegram
from tests.clients.clips import audio_only, face_clip, faceless_clip, truncated

pytestmark = pytest.mark.integration
PROGRESS_MARK = CLIP_PROGRESS.split(" ")[0]


def expected_clip(data: bytes, config) -> ClipVerdict:
    """What the client core says about this clip (same server, same config as the bot)."""
    with DetectorClient(config.target, timeout_s=30.0) as client:
        return analyze_clip(data, "expected.mp4", client, config.client_config()).verdict


def answers(telegram: FakeTelegram, chat_id: int) -> list[str]:
    """The bot's replies to a chat, without its clip progress messages."""
    return [t for t in telegram.texts(chat_id) if not t.startswith(PROGRESS_MARK)]


def pdf_of(telegram: FakeTelegram, chat_id: int) -> tuple[str, str, str]:
    """The one report sent to a chat: its file name, text and keywords."""
    document, = telegram.calls_to("sendDocument", chat_id)
    name, data = document.files["document"]
    reader = PdfReader(io.BytesIO(data))
    return name, "\n".join(p.extract_text() or "" for p in reader.pages), reader.metadata.get("/Keywords", "")


def assert_clip_reply(text: str, verdict: ClipVerdict) -> None:
    """The reply carries the clip's headline, its score, and one line per face track."""
    assert verdict.headline in text, (verdict.headline, text)
    assert score_text(verdict.fake_probability) in text
    assert f"Faces ({len(verdict.tracks)})" in text and verdict.rule in text
    for number in range(1, len(verdict.tracks) + 1):
        line = next(line for line in text.splitlines() if line.startswith(f"{number}. "))
        assert "track score" in line and "frames" in line


def test_video_gets_clip_verdict_then_clip_pdf(telegram, served_config, run_bot, bot_logs, disk_writes):
    """A video: the clip verdict quoting it, then the clip PDF; in memory only, and its name is never logged."""
    data = face_clip("mp4", source="synthetic")
    expected = expected_clip(data, served_config)
    assert expected.tracks, "the drawn face is found"
    with disk_writes() as writes, run_bot(served_config):
        message = telegram.send_video(71, data, "holiday clip.mp4")
        document, = telegram.wait_calls("sendDocument", 1, chat_id=71, timeout=90)
    assert writes == [], f"files written while handling a video: {writes}"
    ours = [line for line in bot_logs.getvalue().splitlines() if " clients." in line]   # PTB's DEBUG shows updates
    assert any("checked one clip" in line for line in ours)
    assert not [line for line in ours if "holiday clip" in line], "the bot and the core never log a file's name"
    reply, = answers(telegram, 71)
    assert reply.splitlines()[:-1] == clip_verdict_text(expected).splitlines()[:-1], \
        "the core's verdict in the same words (the time taken aside)"
    assert_clip_reply(reply, expected)
    assert document.reply_to == message["message_id"]
    assert telegram.calls_to("sendChatAction", 71)[0].params["action"] == "upload_document"
    name, text, keywords = pdf_of(telegram, 71)
    assert name.startswith("deepfake-clip-report-") and name.endswith(".pdf")
    assert "video clip" in text and LABEL_WORDS[expected.shown_label] in text
    assert "Score over time, per face track" in text
    assert f"sha256:{expected.sha256}" in keywords and "kind:video" in keywords
    assert expected.summary in document.params["caption"]


def test_video_note_and_animations_get_clip_verdicts(telegram, served_config, run_bot):
    """A round video message, an animation (re-encoded as MP4 by Telegram), and a GIF file sent as a document
    (image/gif, animated: a clip by its content) each get a clip verdict and a clip PDF."""
    note, anim, gif = (face_clip("mp4", source="synthetic", seed=1), face_clip("mp4", source="synthetic", seed=2),
                       face_clip("gif", source="synthetic", seed=3))
    expected = {81: expected_clip(note, served_config), 82: expected_clip(anim, served_config),
                83: expected_clip(gif, served_config)}
    with run_bot(served_config):
        telegram.send_video_note(81, note)
        telegram.send_animation(82, anim)
        telegram.send_document(83, gif, "reaction.gif", "image/gif")
        for chat in expected:
            telegram.wait_calls("sendDocument", 1, chat_id=chat, timeout=120)
    for chat, verdict in expected.items():
        reply, = answers(telegram, chat)
        assert_clip_reply(reply, verdict)
        name, text, _ = pdf_of(telegram, chat)
        assert name.startswith("deepfake-clip-report-") and "video clip" in text
    assert len([p for p in telegram.downloads if p.startswith("animations/")]) == 1, "an animation is checked once"


def test_a_clip_without_faces_gets_no_verdict_but_says_so(telegram, served_config, run_bot):
    """A WebM file of an empty scene: 'No face found', no score, and the clip PDF saying the same."""
    data = faceless_clip("webm")
    expected = expected_clip(data, served_config)
    assert expected.no_face
    with run_bot(served_config):
        telegram.send_document(84, data, "empty room.webm", "video/webm")
        telegram.wait_calls("sendDocument", 1, chat_id=84, timeout=90)
    reply, = answers(telegram, 84)
    assert reply.startswith("⚪ No face found") and "Fake score" not in reply
    _, text, keywords = pdf_of(telegram, 84)
    assert "No face found" in text and "Likely" not in text and "label:no_face" in keywords


def test_bad_and_oversized_videos_get_one_line_reasons(telegram, served_config, run_bot):
    """A cut-off clip and an audio-only file are named as such; a video declared over 20 MB is refused before any
    download, and one Telegram itself refuses to hand over gets the video's words for it."""
    with run_bot(served_config):
        telegram.send_video(91, truncated(face_clip("mp4", source="synthetic"), 0.4), "cut.mp4")
        telegram.send_document(92, audio_only("mp4"), "voice.mp4", "video/mp4")
        big = telegram.send_video(93, face_clip("mp4", source="synthetic"), "long.mp4", file_size=45 * 1024 * 1024)
        telegram.send_video(94, face_clip("mp4", source="synthetic"), "undeclared.mp4",
                            file_size=30 * 1024 * 1024, declare_size=False)
        for chat in (91, 92, 93, 94):
            telegram.wait_calls("sendMessage", 1, chat_id=chat, timeout=60)
    cut, = answers(telegram, 91)
    assert cut == CorruptVideo().user_message
    audio, = answers(telegram, 92)
    assert audio == NoVideoStream().user_message
    too_big, = answers(telegram, 93)
    assert "45.0 MB" in too_big and "20 MB" in too_big and "video" in too_big
    refused, = answers(telegram, 94)
    assert refused == VideoFileTooLarge().user_message
    for text in (cut, audio, too_big, refused):
        assert "\n" not in text and "Traceback" not in text
    fetched = {c.params["file_id"] for c in telegram.calls_to("getFile")}
    assert big["video"]["file_id"] not in fetched
    assert telegram.calls_to("sendDocument") == []


def test_a_long_check_shows_progress_in_one_edited_message(telegram, served_config, run_bot):
    """With the status message due at once, a clip's check posts one progress message, edits it no more often
    than allowed, and deletes it once the verdict is there."""
    config = replace(served_config, progress_after_s=0.0, progress_every_s=0.05)
    data = face_clip("mp4", seconds=6.0, source="synthetic", seed=4)
    with run_bot(config):
        telegram.send_video(95, data, "longer.mp4")
        telegram.wait_calls("sendDocument", 1, chat_id=95, timeout=120)
        telegram.wait_calls("deleteMessage", 1, chat_id=95, timeout=30)
    progress = [t for t in telegram.texts(95) if t.startswith(PROGRESS_MARK)]
    assert len(progress) == 1 and "Checking the clip" in progress[0], telegram.texts(95)
    edits = telegram.calls_to("editMessageText", 95)
    assert all(e.params["text"].startswith(PROGRESS_MARK) for e in edits)
    assert [e.params["text"] for e in edits] == sorted({e.params["text"] for e in edits},
                                                       key=[e.params["text"] for e in edits].index)
    verdict = next(c for c in telegram.calls_to("sendMessage", 95) if not c.params["text"].startswith(PROGRESS_MARK))
    delete, = telegram.calls_to("deleteMessage", 95)
    assert delete.at >= verdict.at - 1.0 and len(answers(telegram, 95)) == 1
