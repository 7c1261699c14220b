"""Secrets and privacy checks tests/bot and tests/deploy do not already make.

Already covered elsewhere (and run by the default suite):
- bot token never in logs, replies or error messages, no file written by the bot: tests/bot/test_privacy.py,
  tests/bot/test_config.py (redaction), tests/deploy/test_secrets.py (no token in any committable file);
- no file written by the page's per-file path under load: tests/reliability/test_frontends_abuse.py;
- containers run as non-root: tests/deploy/test_images.py (client images and the model image).
Added here: every requirement line, read raw, is an exact pin followed by its hashes.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = sorted((REPO / "requirements").glob("*.txt"))
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+( ;.*)? \\$")
HASH = re.compile(r"^    --hash=sha256:[0-9a-f]{64}( \\)?$")


def requirement_blocks(text: str) -> list[list[str]]:
    """Each requirement with its continuation lines (comments and blank lines dropped)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(" "):
            assert blocks, f"continuation without a requirement: {line!r}"
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def test_there_are_lock_files():
    assert LOCKS, "no requirements/*.txt lock files"


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_requirement_is_pinned_with_hashes(lock):
    blocks = requirement_blocks(lock.read_text())
    assert len(blocks) > 5
    for block in blocks:
        head, hashes = block[0], block[1:]
        assert not head.startswith(("-e ", "--", "git+", "http:", "https:")), f"{lock.name}: {head!r} is not a pinned package"
        assert PIN.match(head), f"{lock.name}: {head!r} is not pinned with =="
        assert hashes and all(HASH.match(h) for h in hashes), f"{lock.name}: {head!r} lacks --hash lines"
        assert not hashes[-1].endswith("\\"), f"{lock.name}: {head!r} continues past its hashes"
