"""Fixtures of the bot tests: the Telegram stand-in, the real bot running in polling mode, logs, disk audit."""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
import threading
import time
from dataclasses import replace

import pytest

from tests.bot.fake_telegram import FakeTelegram

TOKEN = "987654321:AAE-distinctive-T0KEN-for-tests-ZqX7wVb9"
"""A fake token that would stand out in any log line."""


@pytest.fixture
def telegram():
    """The Telegram Bot API stand-in on 127.0.0.1, accepting only TOKEN."""
    with FakeTelegram(TOKEN) as fake:
        yield fake


class BotRunner:
    """The bot's real Application (built by clients.bot.app.build_application) polling in a thread."""

    def __init__(self, config) -> None:
        self.config = config
        self.application = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bot", daemon=True)

    def _run(self) -> None:
        """Same path as main(): build, then run_polling (no signal handlers outside the main thread)."""
        from clients.bot.app import build_application, poll

        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.application = build_application(self.config)
            poll(self.application, self.config, stop_signals=None, close_loop=False)
        except BaseException as exc:  # surfaced by start()/stop()
            self.error = exc
        finally:
            self.loop.close()

    def start(self, timeout: float = 30.0) -> "BotRunner":
        """Start polling and wait until the updater runs."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app = self.application
            if self.error is not None:
                raise RuntimeError(f"bot failed to start: {self.error!r}")
            if app is not None and app.running and app.updater is not None and app.updater.running:
                return self
            time.sleep(0.02)
        raise TimeoutError("bot did not start polling")

    def stop(self) -> None:
        """Ask run_polling to stop and wait for the shutdown."""
        if self.application is not None and self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.application.stop_running)
        self.thread.join(30)
        assert not self.thread.is_alive(), "bot did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def bot_config(telegram, tmp_path):
    """A BotConfig pointed at the stand-in; target/model_dir filled by the tests that need a model."""
    from clients.bot.config import BotConfig

    return BotConfig(token=TOKEN, target="127.0.0.1:1", timeout_s=5.0, base_url=telegram.base_url,
                     base_file_url=telegram.base_file_url, poll_timeout_s=1.0, rate_burst=50,
                     rate_per_minute=600.0, model_dir=tmp_path / "no-models", log_level="DEBUG")


@pytest.fixture
def served_config(bot_config, model_server, exported_model):
    """The bot config talking to the real local model server (untrained test model)."""
    return replace(bot_config, target=model_server, model_dir=exported_model)


@pytest.fixture
def run_bot():
    """Factory: `with run_bot(config) as runner:` runs the bot for the block."""

    @contextlib.contextmanager
    def running(config):
        runner = BotRunner(config).start()
        try:
            yield runner
        finally:
            runner.stop()

    return running


@pytest.fixture
def bot_logs():
    """Everything logged, at DEBUG, through the bot's own logging setup (httpx forced to DEBUG too)."""
    from clients.bot.app import setup_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    noisy = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    stream = io.StringIO()
    setup_logging(logging.DEBUG, [TOKEN], stream=stream)
    logging.getLogger("httpx").setLevel(logging.DEBUG)  # make URL lines go through the filter
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


class DiskAudit:
    """Records, via a process-wide audit hook, every file opened for writing while active."""

    _installed = False
    _active: list[list[str]] = []
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        """The audit hook: note writes, renames and new directories."""
        if not cls._active:
            return
        path = None
        if event == "open":
            target, mode, flags = args
            writes = (isinstance(flags, int) and flags & cls.WRITE_FLAGS) or \
                     (isinstance(mode, str) and any(c in mode for c in "wax+"))
            path = target if writes else None
        elif event in ("os.mkdir", "os.rename", "os.replace", "shutil.copyfile", "os.symlink", "os.link"):
            path = args[0]
        if path is None or isinstance(path, int):
            return
        text = os.fsdecode(path)
        if text.startswith(("/dev/", "/proc/")):
            return
        for sink in cls._active:
            sink.append(f"{event}: {text}")

    @classmethod
    @contextlib.contextmanager
    def watching(cls):
        """Collect writes for the duration of the block."""
        if not cls._installed:
            sys.addaudithook(cls._hook)
            cls._installed = True
        sink: list[str] = []
        cls._active.append(sink)
        try:
            yield sink
        finally:
            cls._active.remove(sink)


@pytest.fixture
def disk_writes():
    """Context manager factory recording file writes made by this process."""
    return DiskAudit.watching


@pytest.fixture
def free_tcp_port() -> int:
    """A loopback port nothing listens on (a model server that is down)."""
    from tests.helpers import free_port

    return free_port()


@pytest.fixture
def silent_server():
    """A loopback port that accepts TCP connections but never says a word (a hung model server)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
