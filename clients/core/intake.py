"""Intake: turn uploaded bytes into an RGB image, or refuse with a specific, user-fit domain error."""
from __future__ import annotations

import io
import logging
import struct
import threading
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from clients.core.config import ClientConfig
from clients.core.errors import (CorruptImage, EmptyFile, FileTooLarge, ImageTooLarge, ImageTooSmall, InvalidImage,
                            NotAnImage)
from clients.core.verdict import QualityWarning

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WEBP"}
"""Pillow format -> the format we report (MPO is the multi-picture JPEG many phone cameras write)."""

_ORIENTATION_TAG = 0x0112
_SWAPS_SIDES = {5, 6, 7, 8}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error,
                  Image.DecompressionBombError)


@dataclass
class LoadedImage:
    """The decoded upload: an RGB working image plus what intake noticed about it."""

    image: Image.Image
    format: str
    warnings: list[QualityWarning] = field(default_factory=list)
    original_size: tuple[int, int] = (0, 0)
    """(w, h) of the full-resolution image after EXIF orientation (the working image may be smaller)."""

    @property
    def scale(self) -> float:
        """Working-image pixels per original pixel (1.0 when not downscaled)."""
        return self.image.width / self.original_size[0] if self.original_size[0] else 1.0


def _mb(n: int) -> str:
    """Bytes as megabytes for messages."""
    return f"{n / (1024 * 1024):.1f} MB"


def _open(data: bytes, config: ClientConfig) -> Image.Image:
    """Open the header only and refuse what is not an accepted, sane image before any decoding."""
    if not data:
        raise EmptyFile()
    if len(data) > config.max_bytes:
        raise FileTooLarge(f"The file is too large ({_mb(len(data))}). Please send an image under "
                           f"{_mb(config.max_bytes)}.", detail=f"{len(data)} bytes > {config.max_bytes}")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(detail=str(exc)) from None
    except UnidentifiedImageError:
        raise NotAnImage(detail="Pillow cannot identify the data") from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(detail=f"header: {exc}") from None
    if img.format not in ACCEPTED_FORMATS:
        raise NotAnImage(f"This is a {img.format} file, which we do not check. Please send a JPEG, PNG or WebP photo.",
                         detail=f"format {img.format}")
    w, h = img.size
    if w <= 0 or h <= 0:
        raise CorruptImage(detail=f"size {w}x{h}")
    if w * h > config.max_pixels:
        raise ImageTooLarge(f"The image is too large to check ({w}x{h} pixels, {w * h / 1e6:.0f} MP). Please send a "
                            f"smaller photo (under {config.max_pixels / 1e6:.0f} megapixels).",
                            detail=f"{w}x{h} > {config.max_pixels} px")
    if min(w, h) < config.min_side:
        raise ImageTooSmall(f"The image is too small to judge ({w}x{h} pixels). Please send a photo at least "
                            f"{config.min_side} pixels on each side.", detail=f"{w}x{h} < {config.min_side}")
    return img


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent or unreadable)."""
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not refuse the image
        return 1


def _draft(img: Image.Image, long_side: int) -> None:
    """Let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale (DCT scaling: cheap), keeping the long side >= long_side."""
    request = _draft_request(img.size, long_side)
    if request:
        img.draft("RGB", request)


def drafted_size(size: tuple[int, int], request: tuple[int, int]) -> tuple[int, int]:
    """The size a JPEG of `size` decodes to after draft("RGB", request): Pillow's DCT-scale rule (1, 1/2, 1/4, 1/8),
    computed so the header need not be opened again to learn it (tests check it against Pillow)."""
    scale = min(size[0] // request[0], size[1] // request[1])
    s = next((s for s in (8, 4, 2) if scale >= s), 1)
    return (size[0] + s - 1) // s, (size[1] + s - 1) // s


def _draft_request(size: tuple[int, int], long_side: int) -> tuple[int, int] | None:
    """What _draft asks Pillow for, or None when the image is no larger than long_side."""
    w, h = size
    if max(w, h) <= long_side:
        return None
    f = long_side / max(w, h)
    return max(1, int(w * f)), max(1, int(h * f))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: alpha over white, 16-bit scaled, CMYK through its ICC profile if any."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0
        elif mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """CMYK to sRGB with the embedded ICC profile when there is one, else Pillow's plain formula."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # noqa: BLE001 - a bad profile falls back to the plain conversion
            pass
    return img.convert("RGB")


def _long_sides(config: ClientConfig, min_long_side: int | None) -> tuple[int, int]:
    """(the usual draft long side, the one asked for, capped at the usual)."""
    usual = config.draft_long_side
    return usual, usual if min_long_side is None else min(min_long_side, usual)


class Upload:
    """One upload: its bytes validated once from the header, each rendition (working image, detection copy, finer
    decode) decoded at most once and kept, so no step of a check opens or checks the bytes again."""

    def __init__(self, data: bytes, config: ClientConfig | None = None) -> None:
        self.data = data
        self.config = config or ClientConfig()
        self.header = _open(data, self.config)  # refuses what is not an accepted, sane image: once
        self.format = ACCEPTED_FORMATS[self.header.format]
        self._decoded: dict[int | None, LoadedImage] = {}
        self._locks: dict[int | None, threading.Lock] = {}
        self._lock = threading.Lock()

    def decoded_long_side(self, min_long_side: int) -> int | None:
        """The long side decode(min_long_side) gives a JPEG large enough to be drafted, else None (header only)."""
        if self.format != "JPEG" or max(self.header.size) <= self.config.work_long_side:
            return None
        request = _draft_request(self.header.size, min(min_long_side, self.config.draft_long_side))
        return max(drafted_size(self.header.size, request) if request else self.header.size)

    def _draft_key(self, min_long_side: int | None) -> int | None:
        """What tells two renditions apart: the drafted long side of a JPEG (None: decoded whole)."""
        if self.format != "JPEG":
            return None
        usual, wanted = _long_sides(self.config, min_long_side)
        request = _draft_request(self.header.size, wanted if max(self.header.size) > self.config.work_long_side
                                 else usual)
        return max(drafted_size(self.header.size, request) if request else self.header.size)

    def decode(self, min_long_side: int | None = None) -> LoadedImage:
        """The EXIF-oriented RGB rendition for min_long_side (as load_image), decoded on first use only."""
        key = self._draft_key(min_long_side)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._decoded:
                self._decoded[key] = _decode(self.data, self.config, min_long_side)
            return self._decoded[key]


def _reopen(data: bytes) -> Image.Image:
    """A fresh Pillow image on already validated bytes (a decode needs its own: draft and load consume it)."""
    try:
        return Image.open(io.BytesIO(data))
    except _DECODE_ERRORS as exc:
        raise CorruptImage(detail=f"header: {exc}") from None


def load_image(data: bytes, config: ClientConfig | None = None, min_long_side: int | None = None) -> LoadedImage:
    """Decode an upload to an EXIF-oriented RGB working image, or raise the InvalidImage kind that says why not.

    A JPEG larger than config.work_long_side is decoded at the smallest DCT scale (1/2, 1/4, 1/8) whose
    long side still reaches `min_long_side` (default and cap: 3/4 of work_long_side, so a 12 MP photo
    decodes at 1/2 scale); smaller images are decoded whole.
    """
    return Upload(data, config).decode(min_long_side)


def _decode(data: bytes, config: ClientConfig, min_long_side: int | None) -> LoadedImage:
    """One decode of validated bytes at the scale load_image describes."""
    usual, min_long_side = _long_sides(config, min_long_side)
    img = _reopen(data)
    fmt = ACCEPTED_FORMATS[img.format]
    warnings: list[QualityWarning] = []
    frames = getattr(img, "n_frames", 1)
    if getattr(img, "is_animated", False) and frames > 1 and img.format != "MPO":
        warnings.append(QualityWarning("animated", f"This is an animated image ({frames} frames); "
                                                   "only the first frame was checked."))
    w, h = img.size
    if fmt == "JPEG":
        _draft(img, min_long_side if max(w, h) > config.work_long_side else usual)
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed Pillow process-wide: truncated files would pass
        log.warning("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True; truncated images will not be refused")
    try:
        img.load()  # force the full decode first: truncated or corrupt data fails here, not later
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(detail=str(exc)) from None
    except _DECODE_ERRORS as exc:
        raise CorruptImage(detail=f"decode: {exc}") from None
    orientation = _orientation(img)  # after load: PNG's getexif() would otherwise load (and swallow errors)
    original_size = (h, w) if orientation in _SWAPS_SIDES else (w, h)
    try:
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of an upright image
        img = _to_rgb(img)
    except _DECODE_ERRORS as exc:
        raise CorruptImage(detail=f"convert: {exc}") from None
    if max(img.size) > config.work_long_side:
        img.thumbnail((config.work_long_side, config.work_long_side), Image.Resampling.LANCZOS)
    return LoadedImage(image=img, format=fmt, warnings=warnings, original_size=original_size)
