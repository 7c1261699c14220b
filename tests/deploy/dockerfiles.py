"""Read Dockerfiles, .dockerignore and the hashed lock files statically (no Docker daemon needed)."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str


def parse_dockerfile(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, with `\\` continuations joined and comments dropped."""
    out: list[Instruction] = []
    buffer = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.strip().partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        buffer = ""
    return out


def base_images(instructions: list[Instruction]) -> list[str]:
    """The image of every FROM, with ARG defaults substituted (stage names are left out)."""
    defaults: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args and not images:
            name, _, value = ins.args.partition("=")
            defaults[name.strip()] = value.strip()
        elif ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m.group(1) or m.group(2), ""), words[0])
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            if image not in stages:
                images.append(image)
    return images


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last build stage: what the shipped image runs with."""
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    return instructions[starts[-1]:]


def dockerignore_includes(patterns: list[str], path: str) -> bool:
    """Whether Docker sends `path` (relative, posix) in the build context, by .dockerignore's last match."""
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        if pat.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, pat[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pat) for prefix in prefixes)
        if hit:
            included = negate
    return included


def read_dockerignore(path: Path) -> list[str]:
    """The patterns of a .dockerignore, in order."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


@dataclass(frozen=True)
class Locked:
    """One pinned requirement of a lock file."""

    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]


def parse_lock(path: Path) -> list[Locked]:
    """The requirements of a pip-compile/uv lock file: name==version ; marker, with their --hash lines."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out: list[Locked] = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
        spec = re.sub(r"--hash=\S+", "", line).strip()
        req = Requirement(spec)
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(req.specifier) == 1, f"{path.name}: {spec!r} is not pinned with =="
        out.append(Locked(canonicalize_name(req.name), pins[0].version, str(req.marker or ""), hashes))
    return out
