"""The Telegram bot: send a photo, get a verdict and a PDF report. Run: `python -m clients.bot`.

A thin front end over the client core (clients.analyze, clients.report). Configuration comes
from env vars (see BotConfig); the token is read from TELEGRAM_BOT_TOKEN or from the file named
by TELEGRAM_BOT_TOKEN_FILE and is redacted from every log record. Images stay in memory.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, CommandHandler, MessageHandler, TypeHandler, filters

from clients.config import ClientConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO / "saved_model" / "deepfake_detector"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[REDACTED]"
EXIT_CONFIG_ERROR = 2
EXIT_TELEGRAM_UNREACHABLE = 1
START_RETRY_MAX_S = 30.0
"""The longest wait between two tries to reach Telegram at start (the wait doubles from BOT_START_RETRY_S)."""

log = logging.getLogger("clients.bot")


class ConfigError(Exception):
    """The bot cannot start with this configuration; the message is one line for the operator."""


class TelegramUnreachable(Exception):
    """Telegram did not answer within the allowed tries at start; the message is one line for the operator."""


@dataclass(frozen=True)
class BotConfig:
    """Everything the bot needs, from env vars (flags override a few)."""

    token: str = field(repr=False)                  # TELEGRAM_BOT_TOKEN or TELEGRAM_BOT_TOKEN_FILE
    target: str = ClientConfig.target               # TF_SERVING_TARGET
    timeout_s: float = ClientConfig.timeout_s       # DEEPFAKE_TIMEOUT_S
    max_bytes: int = ClientConfig.max_bytes         # DEEPFAKE_MAX_BYTES (Telegram's own download cap is 20 MB)
    rate_burst: int = 10                            # BOT_RATE_BURST: images/commands a user may send at once
    rate_per_minute: float = 10.0                   # BOT_RATE_PER_MINUTE: steady rate after the burst
    concurrency: int = 8                            # BOT_CONCURRENCY: updates handled at the same time
    base_url: str | None = None                     # TELEGRAM_BASE_URL, e.g. a local Bot API server
    base_file_url: str | None = None                # TELEGRAM_BASE_FILE_URL
    poll_timeout_s: float = 10.0                    # BOT_POLL_TIMEOUT_S: long-polling wait
    model_dir: Path = DEFAULT_MODEL_DIR             # DEEPFAKE_MODEL_DIR: where /about reads measured accuracy
    log_level: str = "INFO"                         # BOT_LOG_LEVEL
    start_attempts: int = 0                         # BOT_START_ATTEMPTS: tries to reach Telegram at start, 0 = no limit
    start_retry_s: float = 1.0                      # BOT_START_RETRY_S: first wait between tries (doubles, up to 30 s)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "BotConfig":
        """Read the env (os.environ by default); explicit non-None overrides win."""
        env = dict(os.environ if env is None else env)
        client = ClientConfig.from_env(env)
        values = {
            "token": overrides.pop("token", None) or read_token(env),
            "target": client.target,
            "timeout_s": client.timeout_s,
            "max_bytes": client.max_bytes,
            "rate_burst": _number(env, "BOT_RATE_BURST", int, cls.rate_burst),
            "rate_per_minute": _number(env, "BOT_RATE_PER_MINUTE", float, cls.rate_per_minute),
            "concurrency": _number(env, "BOT_CONCURRENCY", int, cls.concurrency),
            "base_url": env.get("TELEGRAM_BASE_URL") or None,
            "base_file_url": env.get("TELEGRAM_BASE_FILE_URL") or None,
            "poll_timeout_s": _number(env, "BOT_POLL_TIMEOUT_S", float, cls.poll_timeout_s),
            "model_dir": Path(env.get("DEEPFAKE_MODEL_DIR") or DEFAULT_MODEL_DIR),
            "log_level": (env.get("BOT_LOG_LEVEL") or cls.log_level).upper(),
            "start_attempts": _number(env, "BOT_START_ATTEMPTS", int, cls.start_attempts),
            "start_retry_s": _number(env, "BOT_START_RETRY_S", float, cls.start_retry_s),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        if config.rate_burst < 1 or config.rate_per_minute <= 0:
            raise ConfigError("BOT_RATE_BURST must be >= 1 and BOT_RATE_PER_MINUTE > 0")
        if config.start_attempts < 0 or config.start_retry_s <= 0:
            raise ConfigError("BOT_START_ATTEMPTS must be >= 0 and BOT_START_RETRY_S > 0")
        return config

    def client_config(self) -> ClientConfig:
        """The client core's config for this bot (env for the rest, our target/timeout/limit)."""
        return ClientConfig.from_env(target=self.target, timeout_s=self.timeout_s, max_bytes=self.max_bytes)


def _number(env: dict[str, str], name: str, kind: type, default):
    """An int/float env var, or a ConfigError naming it."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None


def read_token(env: dict[str, str]) -> str:
    """The bot token from TELEGRAM_BOT_TOKEN, else from the file TELEGRAM_BOT_TOKEN_FILE names."""
    token = (env.get("TELEGRAM_BOT_TOKEN") or "").strip()
    if token:
        return token
    path = env.get("TELEGRAM_BOT_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read TELEGRAM_BOT_TOKEN_FILE {path}: {exc.strerror}") from None
        if token:
            return token
        raise ConfigError(f"TELEGRAM_BOT_TOKEN_FILE {path} is empty")
    raise ConfigError("no Telegram bot token: set TELEGRAM_BOT_TOKEN, or TELEGRAM_BOT_TOKEN_FILE to a file holding it")


# logging -------------------------------------------------------------------------------------
class RedactSecrets(logging.Filter):
    """Replaces secrets (the token, its URL-quoted form and its secret half) in every record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        forms = set()
        for secret in filter(None, secrets):
            forms.update({secret, quote(secret, safe=""), quote(secret)})
            _, _, tail = secret.partition(":")
            if len(tail) >= 8:
                forms.add(tail)
        self.forms = sorted(forms, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """The text with every secret form replaced."""
        for form in self.forms:
            text = text.replace(form, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message, its arguments, the traceback and the stack; always keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info:
            record.exc_text = self.scrub(record.exc_text or logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


def redacted_token(token: str) -> str:
    """The token as an operator may see it: the bot's id, the secret half replaced."""
    bot_id, sep, _ = token.partition(":")
    return f"{bot_id}:{REDACTED}" if sep and bot_id.isdigit() else REDACTED


def setup_logging(level: str | int, secrets: list[str], stream=None) -> logging.Handler:
    """Once, at the entry point: one root handler that redacts secrets; HTTP client loggers quiet."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore"):  # they log request URLs, which carry the token
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # at INFO it lists the glyphs of a file's name
    return handler


# the application -----------------------------------------------------------------------------
def build_application(config: BotConfig) -> Application:
    """The bot: a table of what each kind of message gets (main() and the tests both use this)."""
    from clients import bot_handlers as h  # the client core loads here, after the config is known good

    builder = (Application.builder().token(config.token).concurrent_updates(config.concurrency)
               .post_init(h.open_detector).post_shutdown(h.close_detector))
    if config.base_url:
        builder = builder.base_url(config.base_url)
    if config.base_file_url:
        builder = builder.base_file_url(config.base_file_url)
    application = builder.build()
    application.bot_data["state"] = h.BotState.create(config)

    application.add_handler(TypeHandler(Update, h.rate_limit), group=-1)   # floods stop here
    application.add_handlers([
        CommandHandler("start", h.start),
        CommandHandler("help", h.help_command),
        CommandHandler("about", h.about),
        CommandHandler("privacy", h.privacy),
        MessageHandler(filters.PHOTO, h.on_photo),
        MessageHandler(filters.Document.ALL, h.on_document),
        MessageHandler(filters.COMMAND, h.unknown_command),
        MessageHandler(filters.ALL, h.other_message),
    ])
    application.add_error_handler(h.on_error)
    return application


async def reach_telegram(config: BotConfig) -> None:
    """Ask Telegram who we are (getMe) until it answers, waiting longer after each failure, one log line per try.

    An invalid token (401) raises InvalidToken at once: no retry can fix it. Without an answer after
    config.start_attempts tries (0 = no limit), TelegramUnreachable."""
    urls = {key: value for key, value in (("base_url", config.base_url), ("base_file_url", config.base_file_url))
            if value}
    delay, attempt = config.start_retry_s, 0
    limit = f"/{config.start_attempts}" if config.start_attempts else ""
    while True:
        attempt += 1
        try:
            async with Bot(config.token, **urls):  # initialising a Bot calls getMe
                return
        except InvalidToken:
            raise
        except TelegramError as err:
            if config.start_attempts and attempt >= config.start_attempts:
                raise TelegramUnreachable(f"Telegram not reachable after {attempt} tries "
                                          f"({type(err).__name__}: {err}); giving up") from None
            log.warning("Telegram not reachable (try %d%s: %s: %s); next try in %.0f s", attempt, limit,
                        type(err).__name__, err, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, START_RETRY_MAX_S)


def poll(application: Application, config: BotConfig, **kwargs) -> None:
    """Long-poll Telegram until stopped (SIGINT/SIGTERM, or application.stop_running())."""
    application.run_polling(allowed_updates=[Update.MESSAGE], timeout=config.poll_timeout_s, **kwargs)


# entry point ---------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The few flags; everything else is an env var (see BotConfig)."""
    parser = argparse.ArgumentParser(prog="python -m clients.bot", description=__doc__.splitlines()[0])
    parser.add_argument("--target", help="model server host:port (default: TF_SERVING_TARGET or localhost:8500)")
    parser.add_argument("--timeout", type=float, dest="timeout_s", help="seconds per model request")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (default: BOT_LOG_LEVEL or INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Read the config, set up logging, build the application and poll until stopped."""
    args = parse_args(argv)
    try:
        config = BotConfig.from_env(target=args.target, timeout_s=args.timeout_s,
                                    log_level=args.log_level.upper() if args.log_level else None)
    except (ConfigError, ValueError) as exc:
        print(f"clients.bot: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    setup_logging(config.log_level, [config.token])
    log.info("starting: model server %s, rate limit %d then %.0f/min", config.target,
             config.rate_burst, config.rate_per_minute)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # run_polling runs on it too, and closes it
    try:
        loop.run_until_complete(reach_telegram(config))
        poll(build_application(config), config)
    except InvalidToken:
        log.error("Telegram rejected the bot token %s (401 Unauthorized): check TELEGRAM_BOT_TOKEN or "
                  "TELEGRAM_BOT_TOKEN_FILE", redacted_token(config.token))
        return EXIT_CONFIG_ERROR
    except TelegramUnreachable as err:
        log.error("%s", err)
        return EXIT_TELEGRAM_UNREACHABLE
    except KeyboardInterrupt:
        pass  # stopped while still trying to reach Telegram
    finally:
        if not loop.is_closed():
            loop.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
