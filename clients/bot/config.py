"""The bot's settings, read once from env vars into a typed BotConfig (flags override a few); the token comes from
TELEGRAM_BOT_TOKEN or the file TELEGRAM_BOT_TOKEN_FILE names, and a bad setting is a ConfigError of one line."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from clients.core.config import ClientConfig

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = REPO / "saved_model" / "deepfake_detector"


class ConfigError(Exception):
    """The bot cannot start with this configuration; the message is one line for the operator."""


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
    progress_after_s: float = 3.0                   # BOT_PROGRESS_AFTER_S: a clip check this long gets a status message
    progress_every_s: float = 2.0                   # BOT_PROGRESS_EVERY_S: that message is edited at most this often

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
            "progress_after_s": _number(env, "BOT_PROGRESS_AFTER_S", float, cls.progress_after_s),
            "progress_every_s": _number(env, "BOT_PROGRESS_EVERY_S", float, cls.progress_every_s),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        if config.rate_burst < 1 or config.rate_per_minute <= 0:
            raise ConfigError("BOT_RATE_BURST must be >= 1 and BOT_RATE_PER_MINUTE > 0")
        if config.start_attempts < 0 or config.start_retry_s <= 0:
            raise ConfigError("BOT_START_ATTEMPTS must be >= 0 and BOT_START_RETRY_S > 0")
        if config.progress_after_s < 0 or config.progress_every_s <= 0:
            raise ConfigError("BOT_PROGRESS_AFTER_S must be >= 0 and BOT_PROGRESS_EVERY_S > 0")
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
