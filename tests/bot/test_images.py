"""Photos, files and albums through the real bot, the Telegram stand-in and the real local model server.

The served model is the untrained test model: these tests check what the bot says and sends
(the core's verdict, faithfully reported), never the quality of the verdict. The expected verdict
of each image is computed independently with the client core's synchronous `analyze`.
"""
from __future__ import annotations

import io
from dataclasses import replace

import pytest
from pypdf import PdfReader

from clients.core.analyze import analyze
from clients.core.errors import CorruptImage, DetectorUnavailable, FileTooLarge
from clients.core.grpc_client import DetectorClient
from clients.core.verdict import LABEL_WORDS, Verdict, confidence_text, score_text
from tests.bot.images import PDF_DOCUMENT, face_photo, large_jpeg, no_face_png, pixel_bomb_png, truncated_jpeg

pytestmark = pytest.mark.integration


def expected_verdict(data: bytes, config) -> Verdict:
    """What the client core says about these bytes (same server, same config as the bot)."""
    with DetectorClient(config.target, timeout_s=30.0) as client:
        return analyze(data, "expected", client, config.client_config()).verdict


def pdf_text(data: bytes) -> str:
    """All text of a PDF (pypdf refuses anything that is not a valid PDF)."""
    assert data.startswith(b"%PDF-")
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def pdf_keywords(data: bytes) -> str:
    """The PDF's keywords (the report puts label, model and the image's SHA-256 there)."""
    return PdfReader(io.BytesIO(data)).metadata.get("/Keywords", "")


def pdf_image_count(data: bytes) -> int:
    """How many images the PDF's pages hold (the photo with boxes, then each face's heatmap overlay)."""
    return sum(len(page.images) for page in PdfReader(io.BytesIO(data)).pages)


def assert_reply_reports(text: str, verdict: Verdict) -> None:
    """The reply carries the verdict words, the confidence, one line per face and every warning."""
    assert verdict.headline in text  # e.g. "Likely fake (confidence 87%)", "No face found: ..."
    assert score_text(verdict.fake_probability) in text
    lines = text.splitlines()
    if verdict.whole_image:
        assert "no face found" in lines[0].lower() and "Whole-image check, not a verdict" in text
    else:
        assert f"Faces ({len(verdict.faces)})" in text
        for i, face in enumerate(verdict.faces, 1):
            line = next(line for line in lines if line.startswith(f"{i}. "))
            assert face.label in line and confidence_text(face.label, face.confidence) in line
            assert score_text(face.fake_probability) in line
    for warning in verdict.warnings:
        assert warning.message in text


def test_photo_gets_verdict_then_pdf(telegram, served_config, run_bot):
    """A photo: 'upload_document' action, the verdict reply, then a valid PDF report with the verdict."""
    data = face_photo(0)
    expected = expected_verdict(data, served_config)
    with run_bot(served_config):
        message = telegram.send_photo(31, data)
        document, = telegram.wait_calls("sendDocument", 1, chat_id=31, timeout=60)
    reply, = telegram.calls_to("sendMessage", 31)
    assert_reply_reports(reply.params["text"], expected)
    assert reply.reply_to == message["message_id"]
    actions = telegram.calls_to("sendChatAction", 31)
    assert actions and actions[0].params["action"] == "upload_document"
    assert actions[0].at <= reply.at <= document.at
    # only the largest size Telegram offered was fetched
    largest = telegram.files[message["photo"][-1]["file_id"]]
    assert telegram.downloads == [largest.file_path]
    name, pdf = document.files["document"]
    assert name.endswith(".pdf")
    text = pdf_text(pdf)
    assert LABEL_WORDS[expected.shown_label].lower() in text.lower()
    assert f"sha256:{expected.sha256}" in pdf_keywords(pdf)
    assert pdf_image_count(pdf) >= 1 + len(expected.faces)  # the photo, and each face with its heatmap
    assert expected.summary in document.params["caption"]


def test_image_sent_as_file_is_handled_like_a_photo(telegram, served_config, run_bot):
    """A PNG sent as a document (full quality) gets the same answer and PDF."""
    data = face_photo(1, fmt="PNG")
    expected = expected_verdict(data, served_config)
    with run_bot(served_config):
        telegram.send_document(32, data, "portrait.png", "image/png")
        document, = telegram.wait_calls("sendDocument", 1, chat_id=32, timeout=60)
    reply, = telegram.calls_to("sendMessage", 32)
    assert_reply_reports(reply.params["text"], expected)
    assert LABEL_WORDS[expected.shown_label].lower() in pdf_text(document.files["document"][1]).lower()


def test_album_gets_one_answer_per_image(telegram, served_config, run_bot):
    """Three photos of one media group: three replies, each quoting its own photo, and three PDFs."""
    images = [face_photo(i) for i in (2, 3, 4)]
    expected = [expected_verdict(d, served_config) for d in images]
    with run_bot(served_config):
        messages = [telegram.send_photo(33, d, media_group_id="album-1") for d in images]
        telegram.wait_calls("sendDocument", 3, chat_id=33, timeout=90)
    replies = {c.reply_to: c.params["text"] for c in telegram.calls_to("sendMessage", 33)}
    assert sorted(replies) == sorted(m["message_id"] for m in messages)
    for message, verdict in zip(messages, expected):
        assert_reply_reports(replies[message["message_id"]], verdict)
    assert sorted(c.reply_to for c in telegram.calls_to("sendDocument", 33)) == sorted(replies)


def test_no_face_still_answers_with_that_warning(telegram, served_config, run_bot):
    """An image without a face is judged whole; the reply says so and carries the no-face warning."""
    data = no_face_png()
    expected = expected_verdict(data, served_config)
    assert expected.whole_image and any(w.code == "no_face" for w in expected.warnings)
    with run_bot(served_config):
        telegram.send_document(34, data, "landscape.png", "image/png")
        document, = telegram.wait_calls("sendDocument", 1, chat_id=34, timeout=60)
    reply, = telegram.calls_to("sendMessage", 34)
    assert_reply_reports(reply.params["text"], expected)
    assert pdf_text(document.files["document"][1])


def test_refusals_each_have_a_clear_message(telegram, served_config, run_bot):
    """Non-image and oversized files are refused before any download; a broken image is named as such."""
    with run_bot(served_config):
        telegram.send_document(41, PDF_DOCUMENT, "contract.pdf", "application/pdf")
        big = telegram.send_document(42, face_photo(0), "huge.jpg", "image/jpeg", file_size=25 * 1024 * 1024)
        telegram.send_photo(43, truncated_jpeg())
        telegram.send_document(46, face_photo(0), "undeclared.jpg", "image/jpeg", file_size=30 * 1024 * 1024,
                               declare_size=False)  # Telegram itself refuses getFile over 20 MB
        for chat in (41, 42, 43, 46):
            telegram.wait_calls("sendMessage", 1, chat_id=chat, timeout=60)
    not_image, = telegram.texts(41)
    assert "not an image" in not_image and "JPEG, PNG or WebP" in not_image
    too_large, = telegram.texts(42)
    assert "25.0 MB" in too_large and "20 MB" in too_large
    broken, = telegram.texts(43)
    assert broken == CorruptImage().user_message
    refused_by_telegram, = telegram.texts(46)
    assert refused_by_telegram == FileTooLarge().user_message
    # the refused files were never fetched: only the broken photo's largest size was
    fetched = {c.params["file_id"] for c in telegram.calls_to("getFile")}
    assert big["document"]["file_id"] not in fetched
    assert all(not p.startswith("documents/") for p in telegram.downloads)
    assert len(telegram.downloads) == 1
    assert telegram.calls_to("sendDocument") == []


def test_model_server_down_gets_a_message(telegram, bot_config, run_bot, free_tcp_port):
    """With nothing listening at the target, the user is told the detector is not reachable."""
    with run_bot(replace(bot_config, target=f"127.0.0.1:{free_tcp_port}", timeout_s=2.0)):
        telegram.send_photo(44, face_photo(0))
        text, = [c.params["text"] for c in telegram.wait_calls("sendMessage", 1, chat_id=44, timeout=60)]
    assert text == DetectorUnavailable().user_message
    assert telegram.calls_to("sendDocument") == []


def test_model_server_too_slow_gets_a_message(telegram, bot_config, run_bot, silent_server):
    """A server that accepts connections but never answers: the deadline fires and the user is told."""
    with run_bot(replace(bot_config, target=silent_server, timeout_s=1.5)):
        telegram.send_photo(45, face_photo(0))
        text, = [c.params["text"] for c in telegram.wait_calls("sendMessage", 1, chat_id=45, timeout=60)]
    assert "took too long" in text and "try again" in text


def test_flood_from_one_user_is_limited_politely_and_others_are_not(telegram, served_config, run_bot):
    """Burst 2: a user's 6 photos give 2 checks and one polite notice; another user is unaffected."""
    config = replace(served_config, rate_burst=2, rate_per_minute=1.0)
    flood = face_photo(5)
    with run_bot(config):
        for _ in range(6):
            telegram.send_photo(51, flood)
        telegram.wait_calls("sendDocument", 2, chat_id=51, timeout=90)
        telegram.send_text(52, "/help")
        telegram.send_text(52, "/privacy")
        telegram.wait_calls("sendMessage", 2, chat_id=52, timeout=60)
    texts = telegram.texts(51)
    notices = [t for t in texts if "faster than I can check" in t]
    assert len(notices) == 1 and "wait about" in notices[0] and "2 at once" in notices[0]
    assert len(texts) == 3  # two verdicts and one notice; the other three photos are dropped silently
    assert len(telegram.calls_to("sendDocument", 51)) == 2
    answers = telegram.texts(52)  # handled concurrently: either order
    assert len(answers) == 2
    assert any("How to use me" in t for t in answers) and any("What is kept" in t for t in answers)


def test_concurrent_users_each_get_their_own_answer(telegram, served_config, run_bot):
    """Four users send different faces at once; each chat gets the verdict of its own image."""
    users = {61: face_photo(0), 62: face_photo(1), 63: face_photo(2), 64: face_photo(3)}
    expected = {uid: expected_verdict(d, served_config) for uid, d in users.items()}
    with run_bot(served_config):
        sent = {uid: telegram.send_photo(uid, d) for uid, d in users.items()}
        for uid in users:
            telegram.wait_calls("sendDocument", 1, chat_id=uid, timeout=90)
    for uid, verdict in expected.items():
        reply, = telegram.calls_to("sendMessage", uid)
        assert reply.reply_to == sent[uid]["message_id"]
        assert_reply_reports(reply.params["text"], verdict)
        document, = telegram.calls_to("sendDocument", uid)
        assert verdict.summary in document.params["caption"]
        assert f"sha256:{verdict.sha256}" in pdf_keywords(document.files["document"][1])
    probabilities = {round(v.fake_probability, 4) for v in expected.values()}
    assert len(probabilities) > 1, "the test images should score differently, or mix-ups would not show"


def test_many_large_files_each_get_an_answer(telegram, served_config, run_bot):
    """Large images, a pixel bomb and a big non-image from two users at once: every file gets its own answer."""
    big = {111: [large_jpeg(1)], 112: [large_jpeg(2)]}
    assert all(len(d) > 3 * 1024 * 1024 for ds in big.values() for d in ds)
    with run_bot(served_config):
        sent = {uid: [telegram.send_document(uid, d, f"big{i}.jpg", "image/jpeg") for i, d in enumerate(ds)]
                for uid, ds in big.items()}
        bomb = telegram.send_document(112, pixel_bomb_png(), "bomb.png", "image/png")
        telegram.send_document(112, b"PK\x03\x04" + bytes(64), "archive.zip", "application/zip",
                               file_size=19 * 1024 * 1024)
        telegram.wait_calls("sendDocument", 1, chat_id=111, timeout=120)
        telegram.wait_calls("sendDocument", 1, chat_id=112, timeout=120)
        telegram.wait_calls("sendMessage", 3, chat_id=112, timeout=60)
    for uid, messages in sent.items():
        replies = {c.reply_to: c.params["text"] for c in telegram.calls_to("sendMessage", uid)}
        for message in messages:
            assert "fake score" in replies[message["message_id"]].lower()  # a verdict (or whole-image check)
    replies_112 = {c.reply_to: c.params["text"] for c in telegram.calls_to("sendMessage", 112)}
    assert "50 megapixels" in replies_112[bomb["message_id"]]  # the core's ImageTooLarge message
    assert any("not an image" in t for t in replies_112.values())
    assert not any(p.endswith("archive.zip") for p in telegram.downloads)
