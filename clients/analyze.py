"""The whole check of one upload: intake -> faces -> crops -> one batched request -> verdict."""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from clients.config import ClientConfig
from clients.verdict import Verdict


@dataclass
class Analysis:
    """A verdict plus the working image (boxes refer to it) and the crops that were scored."""

    verdict: Verdict
    image: Image.Image
    crops: list[Image.Image] = field(default_factory=list)


def analyze(data: bytes, filename: str, client, config: ClientConfig | None = None) -> Analysis:
    """Check one image with a DetectorClient; raises InvalidImage kinds or DetectorUnavailable."""
    raise NotImplementedError


async def analyze_async(data: bytes, filename: str, client, config: ClientConfig | None = None) -> Analysis:
    """The asyncio twin of analyze (CPU work off the event loop), for an AsyncDetectorClient."""
    raise NotImplementedError
