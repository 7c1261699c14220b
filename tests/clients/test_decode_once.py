"""One upload from bytes to Verdict: the bytes are validated once and each rendition decoded at most once (issue 20).

Every way the core could read the image is counted: Pillow's Image.open, JPEG drafts, pixel decodes (an image file's
load with tiles left to decode) and OpenCV's imdecode."""
from __future__ import annotations

import asyncio
import io
from collections import Counter
from dataclasses import dataclass, field

import cv2
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from clients.core.analyze import analyze, analyze_async
from clients.core.config import ClientConfig
from clients.core.grpc_client import Prediction
from clients.core.intake import Upload, drafted_size
from tests.clients.images import encode, noise_photo, photo_with_faces, shared_faces


class _Stub:
    """A model that is no server: every crop scores 0.9."""

    target = "stub"

    def predict(self, crops: list[bytes]) -> Prediction:
        return Prediction([0.9] * len(crops), [], 0.5, (0.45, 0.55), "stub_model", 7)


class _AsyncStub(_Stub):
    """The same for analyze_async."""

    async def predict(self, crops: list[bytes]) -> Prediction:
        return _Stub.predict(self, crops)


@dataclass
class Reads:
    """What was done to the bytes: opens, drafts, pixel decodes (by decoded size) and OpenCV decodes."""

    opens: int = 0
    drafts: int = 0
    decodes: Counter = field(default_factory=Counter)
    imdecodes: int = 0


@pytest.fixture
def reads(monkeypatch) -> Reads:
    """Count every read of an image the core could make while the test runs."""
    seen = Reads()
    open_, draft, load, imdecode = Image.open, JpegImagePlugin.JpegImageFile.draft, ImageFile.ImageFile.load, \
        cv2.imdecode

    def counting_open(*args, **kwargs):
        seen.opens += 1
        return open_(*args, **kwargs)

    def counting_draft(self, *args, **kwargs):
        seen.drafts += 1
        return draft(self, *args, **kwargs)

    def counting_load(self):
        if self.tile:
            seen.decodes[(self.format, self.size)] += 1
        return load(self)

    def counting_imdecode(*args, **kwargs):
        seen.imdecodes += 1
        return imdecode(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", counting_draft)
    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    monkeypatch.setattr(cv2, "imdecode", counting_imdecode)
    return seen


def _uploads() -> dict[str, bytes]:
    """A small JPEG, a 12 MP JPEG (large and small faces: two or three renditions) and a PNG."""
    a, b = shared_faces(2, seed=5)[:2]
    return {
        "jpeg": encode(photo_with_faces([(a, (150, 200, 500))], size=(1200, 900)), "JPEG", quality=92),
        "large_jpeg": encode(photo_with_faces([(a, (500, 700, 1100)), (b, (2600, 900, 160))], size=(4000, 3000)),
                             "JPEG", quality=90),
        "png": encode(photo_with_faces([(b, (100, 100, 400))], size=(900, 700)), "PNG"),
    }


@pytest.fixture(scope="module")
def uploads() -> dict[str, bytes]:
    """The three uploads, encoded once for the module."""
    return _uploads()


def _assert_once_per_rendition(seen: Reads, kind: str) -> None:
    """One open to validate, one more per rendition decoded, no rendition decoded twice, nothing through OpenCV."""
    renditions = len(seen.decodes)
    assert renditions >= 1 and all(n == 1 for n in seen.decodes.values()), seen
    assert seen.opens == 1 + renditions, seen
    assert seen.drafts <= renditions and seen.imdecodes == 0, seen
    if kind != "large_jpeg":
        assert renditions == 1, seen


@pytest.mark.parametrize("kind", ["jpeg", "large_jpeg", "png"])
def test_one_upload_to_a_verdict_decodes_each_rendition_at_most_once(uploads, reads, kind):
    verdict = analyze(uploads[kind], f"{kind}.img", _Stub(), ClientConfig()).verdict
    assert verdict.faces
    _assert_once_per_rendition(reads, kind)


def test_the_async_path_decodes_each_rendition_at_most_once(uploads, reads):
    asyncio.run(analyze_async(uploads["large_jpeg"], "large.jpg", _AsyncStub(), ClientConfig()))
    _assert_once_per_rendition(reads, "large_jpeg")


def test_an_upload_serves_a_rendition_it_has_decoded_from_its_cache(uploads, reads):
    upload = Upload(uploads["large_jpeg"], ClientConfig())
    first = upload.decode(500)
    assert upload.decode(500) is first and upload.decode(400) is first  # 400 and 500 both draft to 1/8
    assert reads.opens == 2 and sum(reads.decodes.values()) == 1


@pytest.mark.parametrize("size", [(4000, 3000), (3000, 4000), (4032, 3024), (1201, 901), (5001, 77)])
@pytest.mark.parametrize("long_side", [500, 640, 1000, 1500])
def test_the_drafted_size_is_pillows(size, long_side):
    data = encode(noise_photo(size), "JPEG", quality=70)
    img = Image.open(io.BytesIO(data))
    f = long_side / max(size)
    request = (max(1, int(size[0] * f)), max(1, int(size[1] * f)))
    img.draft("RGB", request)
    assert drafted_size(size, request) == img.size
