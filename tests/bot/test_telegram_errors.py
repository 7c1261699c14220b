"""What Telegram's refusals and absences do to the bot: a wrong token, no Telegram at start, a user who blocked it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bot.conftest import TOKEN
from tests.bot.fake_telegram import FakeTelegram
from tests.helpers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WRONG_TOKEN = "123456789:AAH-wrong-but-well-formed-token-Qx81"


def bot_env(base_url: str, token: str = TOKEN, **extra: str) -> dict[str, str]:
    """The environment of `python -m clients.bot` pointed at a Bot API address (no model server needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "BOT_"))}
    env.update({"TELEGRAM_BOT_TOKEN": token, "TELEGRAM_BASE_URL": base_url, "BOT_POLL_TIMEOUT_S": "1",
                "TF_SERVING_TARGET": f"127.0.0.1:{free_port()}", **extra})
    return env


def run_bot_process(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the entry point to its end."""
    return subprocess.run([sys.executable, "-m", "clients.bot"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_invalid_token_is_one_redacted_line_and_a_non_zero_exit(telegram):
    """A token the Bot API answers 401 to: one line naming the problem, the token's secret half never shown."""
    proc = run_bot_process(bot_env(telegram.base_url, WRONG_TOKEN))
    err = proc.stderr
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err and WRONG_TOKEN.split(":", 1)[1] not in err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "rejected the bot token 123456789:[REDACTED]" in errors[0], err
    assert "TELEGRAM_BOT_TOKEN" in errors[0]
    assert len(err.strip().splitlines()) <= 2, err  # the start line and the error, nothing else
    assert not telegram.calls, "a rejected token gets no further than the 401"


def test_telegram_unreachable_at_start_retries_one_line_each_then_gives_up():
    """A closed port: each failed try is one warning line with the next, longer wait; a bounded run exits 1."""
    started = time.monotonic()
    proc = run_bot_process(bot_env(f"http://127.0.0.1:{free_port()}/bot", BOT_START_ATTEMPTS="3",
                                   BOT_START_RETRY_S="0.5"))
    took = time.monotonic() - started
    err = proc.stderr
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err and TOKEN.split(":", 1)[1] not in err
    tries = [line for line in err.splitlines() if "Telegram not reachable (try" in line]
    assert [t.split("(try ")[1][:3] for t in tries] == ["1/3", "2/3"], err
    assert "next try in 0 s" in tries[0] or "next try in 1 s" in tries[0]
    assert "next try in 1 s" in tries[1]  # 0.5 s, then 1 s: the wait doubles
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "not reachable after 3 tries" in errors[0], err
    assert len(err.strip().splitlines()) == 4, err  # start, two tries, the error
    assert took >= 1.5


def test_bot_starts_once_telegram_comes_up():
    """No Telegram at first, then a Bot API on that port: the bot keeps trying, then answers, and stops cleanly."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clients.bot"], cwd=REPO,
                            env=bot_env(f"http://127.0.0.1:{port}/bot", BOT_START_RETRY_S="0.3"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)  # tries at ~0, 0.3, 0.9 s fail
        assert proc.poll() is None, "the bot must keep trying, not exit"
        with FakeTelegram(TOKEN, port=port) as telegram:
            telegram.send_text(71, "/start")
            telegram.wait_calls("sendMessage", 1, chat_id=71, timeout=60)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "Telegram not reachable (try" in line]) >= 2, err


def test_user_who_blocked_the_bot_is_one_log_line_and_no_apology(telegram, bot_config, run_bot, bot_logs):
    """403 Forbidden on a reply: one INFO line without the user's id, no ERROR, no traceback, no apology sent."""
    telegram.blocked.add(61)
    with run_bot(bot_config):
        telegram.send_text(61, "/start")
        telegram.wait_calls("sendMessage", 1, chat_id=61)
        deadline = time.monotonic() + 15
        while "blocked the bot" not in bot_logs.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        telegram.send_text(62, "/start")   # everyone else is still answered
        telegram.wait_calls("sendMessage", 1, chat_id=62)
    log = bot_logs.getvalue()
    assert len(telegram.calls_to("sendMessage", 61)) == 1, "no apology to a user who cannot receive it"
    lines = [line for line in log.splitlines() if "clients.bot:" in line and "403" in line]
    assert len(lines) == 1 and " INFO " in lines[0] and "blocked the bot" in lines[0], log[-3000:]
    assert "61" not in lines[0].split("clients.bot:", 1)[1]
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]



def test_telegram_lost_while_polling_is_one_warning_per_try_then_recovers(telegram, bot_config, run_bot, bot_logs):
    """An outage mid-run (502 from the Bot API): one WARNING line per failed poll, no ERROR or traceback; once
    Telegram is back, the bot answers again."""
    with run_bot(bot_config):
        telegram.send_text(72, "/start")
        telegram.wait_calls("sendMessage", 1, chat_id=72)
        telegram.down = True
        deadline = time.monotonic() + 30
        while bot_logs.getvalue().count("not reachable while polling") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        telegram.down = False
        telegram.send_text(73, "/start")
        telegram.wait_calls("sendMessage", 1, chat_id=73, timeout=60)
    log = bot_logs.getvalue()
    lost = [line for line in log.splitlines() if "not reachable while polling" in line]
    assert len(lost) >= 2 and all(" WARNING " in line for line in lost), log[-3000:]
    assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
