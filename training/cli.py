"""The edge of the report commands: print the report, or one line for a known failure instead of a stack trace."""
from __future__ import annotations

import sys
from typing import Callable, TypeVar

Report = TypeVar("Report")

KNOWN_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, ValueError)
"""A missing model, manifest or version, or a flag out of range: the user's to fix, so no traceback."""


def run_and_print(make_report: Callable[[], Report], render: Callable[[Report], str]) -> int:
    """Exit code 0 with the rendered report on stdout, or 2 with `error: ...` on stderr."""
    try:
        report = make_report()
    except KNOWN_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    return 0
