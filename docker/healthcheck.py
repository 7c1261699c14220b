"""Container health checks for the client images, so Docker and Kubernetes know when a client is really up.

Standard library only (plus the client core for the model check), because it runs inside the slim images:
    python docker/healthcheck.py http http://127.0.0.1:8080/_stcore/health   # the page answers
    python docker/healthcheck.py model                                       # the model server answers (bot)
Exit 0 when healthy, 1 when not; one line on stdout says why.
"""
from __future__ import annotations

import sys
import urllib.request


def check_http(url: str, timeout_s: float = 4.0) -> tuple[bool, str]:
    """A 200 from the page's own health endpoint: the web server is accepting requests."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback URL from the image
            return resp.status == 200, f"HTTP {resp.status} from {url}"
    except OSError as exc:
        return False, f"{url} unreachable: {exc}"


def check_model(timeout_s: float = 4.0) -> tuple[bool, str]:
    """The model server behind TF_SERVING_TARGET answers: the bot can do its work."""
    from dataclasses import replace

    from clients.core.config import ClientConfig
    from clients.core.detector import make_detector

    config = ClientConfig.from_env()
    client = make_detector(replace(config, timeout_s=timeout_s))
    try:
        ok = client.health()
    finally:
        client.close()
    return ok, f"model server {config.target} {'answers' if ok else 'does not answer'}"


def main(argv: list[str]) -> int:
    """Run the check named by the first argument; exit code 0 means healthy."""
    if len(argv) == 2 and argv[0] == "http":
        ok, why = check_http(argv[1])
    elif argv == ["model"]:
        ok, why = check_model()
    else:
        print("usage: healthcheck.py http URL | model")
        return 2
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
