"""The commands, against the Telegram stand-in and the real local model server."""
from __future__ import annotations

import json
import shutil

import pytest

from serving import contract

pytestmark = pytest.mark.integration


def test_start_help_privacy_answer_in_their_chat(telegram, bot_config, run_bot):
    """/start welcomes, /help says a file keeps full quality, /privacy says nothing is kept."""
    with run_bot(bot_config):
        telegram.send_text(11, "/start")
        telegram.send_text(12, "/help")
        telegram.send_text(13, "/privacy")
        telegram.send_text(14, "hello there")
        telegram.send_text(15, "/nosuchcommand")
        for chat in (11, 12, 13, 14, 15):
            telegram.wait_calls("sendMessage", 1, chat_id=chat)
    welcome, = telegram.texts(11)
    assert "photo" in welcome.lower() and "/help" in welcome
    help_text, = telegram.texts(12)
    assert "file" in help_text.lower() and "full quality" in help_text.lower()
    assert "20 MB" in help_text
    privacy, = telegram.texts(13)
    assert "nothing" in privacy.lower() and "never written to disk" in privacy
    assert "photo" in telegram.texts(14)[0].lower()
    assert "/help" in telegram.texts(15)[0]
    # PTB's start-up calls reached the stand-in, with the right token
    assert telegram.calls_to("getMe") and telegram.calls_to("deleteWebhook")


def test_about_reports_served_version_and_unknown_accuracy(telegram, served_config, run_bot):
    """/about names the model and the version the server reports; the test model has no figures."""
    with run_bot(served_config):
        telegram.send_text(21, "/about")
        text, = [c.params["text"] for c in telegram.wait_calls("sendMessage", 1, chat_id=21)]
    assert contract.MODEL_NAME in text
    assert "version 1" in text
    assert "accuracy: unknown" in text.lower()


def test_about_reads_measured_accuracy_from_shipped_metadata(telegram, served_config, run_bot, tmp_path,
                                                             exported_model):
    """With evaluation figures in the version's metadata, /about quotes the test accuracy."""
    models = tmp_path / "models"
    meta_src = exported_model / "1" / contract.METADATA_FILE
    meta_dst = models / "1" / contract.METADATA_FILE
    meta_dst.parent.mkdir(parents=True)
    shutil.copy(meta_src, meta_dst)
    metadata = json.loads(meta_dst.read_text())
    metadata["metrics"] = {"test": {"accuracy": 0.9137, "auc": 0.9712, "per_source": {"dfdc": {"accuracy": 0.5}}},
                           "val": {"accuracy": 0.95}}
    meta_dst.write_text(json.dumps(metadata))
    from dataclasses import replace

    with run_bot(replace(served_config, model_dir=models)):
        telegram.send_text(22, "/about")
        text, = [c.params["text"] for c in telegram.wait_calls("sendMessage", 1, chat_id=22)]
    assert "91.4%" in text and "test accuracy" in text
    assert "AUC 0.971" in text


def test_about_when_model_server_is_down(telegram, bot_config, run_bot, free_tcp_port):
    """/about still answers, saying the server is not reachable."""
    from dataclasses import replace

    with run_bot(replace(bot_config, target=f"127.0.0.1:{free_tcp_port}", timeout_s=2.0)):
        telegram.send_text(23, "/about")
        text, = [c.params["text"] for c in telegram.wait_calls("sendMessage", 1, chat_id=23, timeout=40)]
    assert "not reachable" in text
    assert "accuracy: unknown" in text.lower()
