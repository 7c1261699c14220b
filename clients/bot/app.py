"""The Telegram bot: send a photo or a video, get a verdict and a PDF report. Run: `python -m clients.bot`.

A thin front end over the client core (clients.core.analyze, clients.core.report). Configuration comes
from env vars (see clients.bot.config.BotConfig); the token is read from TELEGRAM_BOT_TOKEN or from the file named
by TELEGRAM_BOT_TOKEN_FILE and is redacted from every log record. Images and videos stay in memory.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from urllib.parse import quote

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, CommandHandler, MessageHandler, TypeHandler, filters

from clients.bot.config import BotConfig, ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[REDACTED]"
EXIT_CONFIG_ERROR = 2
EXIT_TELEGRAM_UNREACHABLE = 1
START_RETRY_MAX_S = 30.0
"""The longest wait between two tries to reach Telegram at start (the wait doubles from BOT_START_RETRY_S)."""

log = logging.getLogger("clients.bot")


class TelegramUnreachable(Exception):
    """Telegram did not answer within the allowed tries at start; the message is one line for the operator."""


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
    from clients.bot import handlers as h  # the client core loads here, after the config is known good

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
        MessageHandler(filters.VIDEO, h.on_video),
        MessageHandler(filters.VIDEO_NOTE, h.on_video_note),
        MessageHandler(filters.ANIMATION, h.on_animation),     # before documents: an animation is one too
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

