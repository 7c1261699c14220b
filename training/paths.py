"""Where the repo is, and how paths are read from configs and written into shipped metrics.

Configs name data and weights relative to the repo root (`../shared/...`), so a run works from any checkout. Reports
that ship in `saved_model/` record paths the same way: an absolute path of the machine that ran them
(`/work/main/../shared/...`) means nothing on another one.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = "shared"
"""The folder beside the repo that holds the shared data and weights (`../shared`)."""


def resolve(path: str | None) -> str | None:
    """Relative paths in configs are relative to the repo root, so `make train` works from anywhere."""
    if path is None or path == "imagenet" or os.path.isabs(path):
        return path
    return str((REPO_ROOT / path).resolve())


def recorded(path: str | os.PathLike | None, root: Path = REPO_ROOT) -> str | None:
    """The path as a report should keep it: relative to the repo root when it lies in the repo or in the shared
    folder beside it (`../shared/...`), so the figures read the same on every machine; other paths, a sibling
    folder's included, stay absolute, as given."""
    if path is None:
        return None
    text = os.fspath(path)
    if text == "imagenet":
        return text
    absolute, root = Path(os.path.abspath(text)), Path(os.path.abspath(root))
    real = Path(os.path.realpath(text))
    # As written first; then through links, since `resolve` follows them and a checkout's ../shared may be one.
    for candidate, base, prefix in ((absolute, root, Path()), (absolute, root.parent / SHARED, Path("..") / SHARED),
                                    (real, Path(os.path.realpath(root)), Path()),
                                    (real, Path(os.path.realpath(root.parent / SHARED)), Path("..") / SHARED)):
        if candidate.is_relative_to(base):
            return (prefix / candidate.relative_to(base)).as_posix()
    return absolute.as_posix()
