"""No bot token anywhere in the repository: not in code, manifests, examples or docs."""
from __future__ import annotations

import re
import secrets
import string
import subprocess

from tests.deploy.manifests import REPO

TELEGRAM_TOKEN = re.compile(rb"(?<![0-9])[0-9]{8,10}:[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])")
"""The shape of a Telegram bot token: the bot id, a colon, 35 characters of secret."""
MAX_BYTES = 50 * 1024 * 1024


def _repo_files() -> list[str]:
    """Files git tracks or would add (untracked but not ignored): what could be committed."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, check=True).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def test_the_token_pattern_finds_a_token():
    """The scan would see a real token (one made up here, at run time, so none sits in the tree)."""
    alphabet = string.ascii_letters + string.digits + "_-"
    fake = f"{secrets.randbelow(9 * 10**8) + 10**8}:{''.join(secrets.choice(alphabet) for _ in range(35))}"
    assert TELEGRAM_TOKEN.search(f"TELEGRAM_BOT_TOKEN={fake}\n".encode())
    assert not TELEGRAM_TOKEN.search(b"TELEGRAM_BOT_TOKEN=\n")


def test_no_telegram_token_in_any_committable_file():
    """Every file that is or could be committed is free of anything shaped like a bot token."""
    hits = []
    files = _repo_files()
    assert "docker-compose.yml" in files and ".env.example" in files
    for rel in files:
        path = REPO / rel
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            continue
        match = TELEGRAM_TOKEN.search(path.read_bytes())
        if match:
            hits.append(f"{rel}: {match.group()[:12].decode(errors='replace')}…")
    assert not hits, f"token-shaped strings found: {hits}"


def test_secret_locations_are_git_ignored():
    """.env and secrets/ (where the README tells people to put the token) can never be committed."""
    for path in (".env", "secrets/telegram_bot_token"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
