"""Secrets and privacy: the token never reaches a log line; user images never reach the disk."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.conftest import TOKEN
from tests.bot.images import PDF_DOCUMENT, face_photo, truncated_jpeg

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET_HALF = TOKEN.split(":", 1)[1]


def test_token_never_logged_and_nothing_written_to_disk(telegram, served_config, run_bot, bot_logs,
                                                        disk_writes):
    """A full session at DEBUG (commands, a photo with its PDF, refusals): no token in the logs, no file written."""
    with disk_writes() as writes:
        with run_bot(served_config):
            telegram.send_text(81, "/start")
            telegram.send_text(81, "/about")
            telegram.send_photo(82, face_photo(0))
            telegram.send_document(83, PDF_DOCUMENT, "notes.pdf", "application/pdf")
            telegram.send_photo(84, truncated_jpeg())
            telegram.send_document(85, face_photo(1), "big.jpg", "image/jpeg", file_size=40 * 1024 * 1024,
                                   declare_size=False)
            telegram.wait_calls("sendMessage", 2, chat_id=81, timeout=60)
            telegram.wait_calls("sendDocument", 1, chat_id=82, timeout=90)
            for chat in (83, 84, 85):
                telegram.wait_calls("sendMessage", 1, chat_id=chat, timeout=60)
    log = bot_logs.getvalue()
    assert "getUpdates" in log and "sendDocument" in log  # the HTTP request lines were logged...
    assert "[REDACTED]" in log                             # ...with the token taken out
    assert TOKEN not in log and SECRET_HALF not in log
    assert "checked one image" in log and "image refused" in log
    sent = " ".join(c.params.get("text", "") + c.params.get("caption", "") for c in telegram.calls)
    assert SECRET_HALF not in sent
    assert writes == [], f"files written while handling user images: {writes}"


def test_entry_point_polls_answers_and_stops_on_sigint(telegram, tmp_path, free_tcp_port):
    """`python -m clients.bot` with the token in a file: answers /start, logs at DEBUG without the token, exits 0."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    env.update({"TELEGRAM_BOT_TOKEN_FILE": str(token_file), "TELEGRAM_BASE_URL": telegram.base_url,
                "TELEGRAM_BASE_FILE_URL": telegram.base_file_url, "BOT_LOG_LEVEL": "DEBUG",
                "BOT_POLL_TIMEOUT_S": "1", "TF_SERVING_TARGET": f"127.0.0.1:{free_tcp_port}"})
    proc = subprocess.Popen([sys.executable, "-m", "clients.bot"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        telegram.send_text(91, "/start")
        welcome, = telegram.wait_calls("sendMessage", 1, chat_id=91, timeout=60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "/help" in welcome.params["text"]
    assert "[REDACTED]" in err  # PTB logs its API URL at DEBUG; the filter scrubbed it
    assert TOKEN not in err and SECRET_HALF not in err
    assert "Traceback" not in err


def test_disk_audit_sees_writes_from_other_threads(disk_writes, tmp_path):
    """The audit used above is not blind: a write from another thread (as the bot's handlers run) shows up."""
    import threading

    target = tmp_path / "leak.jpg"
    with disk_writes() as writes:
        worker = threading.Thread(target=target.write_bytes, args=(b"\xff\xd8",))
        worker.start()
        worker.join()
        target.read_bytes()  # reads are not writes
    assert writes == [f"open: {target}"]
