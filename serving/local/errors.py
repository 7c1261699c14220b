"""The errors a client of the local server sees, and how much of a client's own text a message or log may show."""
from __future__ import annotations

import grpc


class ServingError(Exception):
    """An error a client sees: a gRPC status code and a message (never image content)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


UNKNOWN_MODEL = "<unknown>"
"""Logs and metrics count requests for a model that is not served under this one label: a client choosing
the name must not add a metrics series (memory) or write arbitrary text into the log per request."""
SHOWN_NAME_CHARS = 64
SHOWN_PATH_CHARS = 200


def shown_name(name: str, limit: int = SHOWN_NAME_CHARS) -> str:
    """Client-supplied text (a model name, a URL path) as it may appear in a message or log: printable, capped."""
    clean = "".join(c if c.isprintable() else "?" for c in name[:limit])
    return clean + ("..." if len(name) > limit else "")
