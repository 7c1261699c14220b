"""The bot's configuration, token handling and log redaction."""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clients.bot.app import RedactSecrets, setup_logging
from clients.bot.config import BotConfig, ConfigError, read_token
from tests.bot.conftest import TOKEN

REPO = Path(__file__).resolve().parents[2]


def test_token_from_env_and_from_file(tmp_path):
    """TELEGRAM_BOT_TOKEN wins; else the file named by TELEGRAM_BOT_TOKEN_FILE, stripped."""
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")
    assert read_token({"TELEGRAM_BOT_TOKEN": TOKEN}) == TOKEN
    assert read_token({"TELEGRAM_BOT_TOKEN_FILE": str(token_file)}) == TOKEN
    assert read_token({"TELEGRAM_BOT_TOKEN": "1:env", "TELEGRAM_BOT_TOKEN_FILE": str(token_file)}) == "1:env"


@pytest.mark.parametrize("env", [{}, {"TELEGRAM_BOT_TOKEN": "  "}, {"TELEGRAM_BOT_TOKEN_FILE": "/nonexistent/token"}])
def test_missing_token_is_a_config_error(env, tmp_path):
    """No token, a blank one, or an unreadable token file: a ConfigError naming the variables."""
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        read_token(env)


def test_config_from_env_reads_limits_and_urls():
    """Every knob comes from its env var; the token never shows in the repr."""
    config = BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "TF_SERVING_TARGET": "127.0.0.1:9",
                                 "DEEPFAKE_TIMEOUT_S": "3.5", "BOT_RATE_BURST": "4",
                                 "BOT_RATE_PER_MINUTE": "2", "TELEGRAM_BASE_URL": "http://127.0.0.1:1/bot",
                                 "TELEGRAM_BASE_FILE_URL": "http://127.0.0.1:1/file/bot"})
    assert (config.target, config.timeout_s, config.rate_burst, config.rate_per_minute) == ("127.0.0.1:9", 3.5, 4, 2.0)
    assert config.base_url == "http://127.0.0.1:1/bot" and config.base_file_url == "http://127.0.0.1:1/file/bot"
    assert config.client_config().target == "127.0.0.1:9"
    assert TOKEN not in repr(config)
    with pytest.raises(ConfigError, match="BOT_RATE_BURST"):
        BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_RATE_BURST": "many"})
    start = BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_START_ATTEMPTS": "5", "BOT_START_RETRY_S": "0.5"})
    assert (start.start_attempts, start.start_retry_s) == (5, 0.5)
    assert BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN}).start_attempts == 0  # keep trying until Telegram answers
    with pytest.raises(ConfigError, match="BOT_START_RETRY_S"):
        BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_START_RETRY_S": "0"})
    progress = BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_PROGRESS_AFTER_S": "0",
                                   "BOT_PROGRESS_EVERY_S": "1.5"})
    assert (progress.progress_after_s, progress.progress_every_s) == (0.0, 1.5)
    with pytest.raises(ConfigError, match="BOT_PROGRESS_EVERY_S"):
        BotConfig.from_env({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_PROGRESS_EVERY_S": "0"})


def test_missing_token_exits_2_with_one_line():
    """`python -m clients.bot` without a token: exit code 2 and one line on stderr, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_BOT_TOKEN")}
    proc = subprocess.run([sys.executable, "-m", "clients.bot"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN" in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_redaction_covers_args_urls_and_tracebacks():
    """The token is scrubbed from the message, its arguments, a quoted URL and an exception's text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets([TOKEN]))
    logger = logging.getLogger("tests.bot.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("url %s", f"https://api.telegram.org/bot{TOKEN}/getMe")
        logger.warning("quoted https://x/bot%s/getMe", TOKEN.replace(":", "%3A"))
        logger.warning("secret half only: %s", TOKEN.split(":", 1)[1])
        try:
            raise RuntimeError(f"request to /bot{TOKEN}/sendMessage failed")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert TOKEN not in text and TOKEN.split(":", 1)[1] not in text
    assert text.count("[REDACTED]") == 4
    assert "RuntimeError" in text  # the traceback itself is kept


def test_setup_logging_quiets_http_clients_and_redacts_on_the_root_handler():
    """One root handler, carrying the redaction filter; httpx/httpcore at WARNING."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        stream = io.StringIO()
        handler = setup_logging("DEBUG", [TOKEN], stream=stream)
        assert root.handlers == [handler]
        assert any(isinstance(f, RedactSecrets) for f in handler.filters)
        assert logging.getLogger("httpx").level == logging.WARNING
        assert logging.getLogger("fontTools").level == logging.WARNING  # its INFO lines spell out file names
        logging.getLogger("telegram.test").debug("Set Bot API URL: https://api.telegram.org/bot%s", TOKEN)
        assert TOKEN not in stream.getvalue() and "[REDACTED]" in stream.getvalue()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
