"""Seed files for the hostile-input runs: every format, mode, animation and EXIF oddity the intake may meet.

Each seed is small (so thousands of mutations of it run in seconds) except the bombs, whose headers
claim far more pixels than their bytes hold. The fuzzer then truncates, bit-flips, splices and
re-labels these seeds.
"""
from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.clients.images import encode, noise_photo


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_header_claiming(width: int, height: int, body: bytes = b"") -> bytes:
    """A PNG whose IHDR claims width x height (8-bit grey) with `body` as its only (tiny) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(body))
            + _png_chunk(b"IEND", b""))


def png_bomb(width: int, height: int) -> bytes:
    """A real, complete 1-bit PNG of width x height: kilobytes on disk, huge once decoded."""
    row = b"\x00" + bytes((width + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def with_exif_orientation(value: int, fmt: str = "JPEG") -> bytes:
    """A photo whose EXIF orientation tag holds `value` (valid 1..8 or not)."""
    exif = Image.Exif()
    exif[0x0112] = value
    return encode(noise_photo((96, 80), seed=value % 7), fmt, exif=exif.tobytes())


def with_truncated_exif(cut: int, lying_length: bool = False) -> bytes:
    """A JPEG whose EXIF block is cut short inside (its IFD offsets point past the end); with
    lying_length the APP1 segment still claims the full block, which breaks the JPEG itself."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"
    exif[0x9003] = "2024:01:01 00:00:00"
    data = encode(noise_photo((90, 90), seed=3), "JPEG", exif=exif.tobytes())
    start = data.index(b"Exif\x00\x00")
    out = bytearray(data[:start + 6 + cut] + data[start + 6 + cut + 12:])
    if not lying_length:
        seg_len = struct.unpack(">H", data[start - 2:start])[0]
        out[start - 2:start] = struct.pack(">H", seg_len - 12)
    return bytes(out)


def _animated(fmt: str, mode: str = "RGB") -> bytes:
    """A 3-frame animation in fmt (GIF, WEBP or PNG = APNG)."""
    frames = [noise_photo((80, 72), seed=s).convert(mode) for s in range(3)]
    extra = {"duration": 50, "loop": 0}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **extra)


def _mode_image(mode: str) -> Image.Image:
    """An 80x70 image in the given Pillow mode with varied content."""
    rgb = noise_photo((80, 70), seed=len(mode))
    if mode in ("RGB", "RGBA", "L", "LA", "1", "CMYK", "YCbCr"):
        return rgb.convert(mode)
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    arr = np.asarray(rgb.convert("L"), dtype=np.float64)
    if mode == "I;16":
        return Image.fromarray((arr * 257).astype(np.uint16))
    if mode == "I":
        return Image.fromarray((arr * 1000).astype(np.int32))
    if mode == "F":
        return Image.fromarray((arr / 255.0).astype(np.float32))
    raise ValueError(mode)


@functools.lru_cache(maxsize=1)
def seed_files() -> dict[str, bytes]:
    """Name -> bytes of every seed (built once per process)."""
    s: dict[str, bytes] = {}
    photo = noise_photo((120, 96), seed=1)
    s["jpeg"] = encode(photo, "JPEG", quality=85)
    s["jpeg-progressive"] = encode(photo, "JPEG", quality=70, progressive=True)
    s["png"] = encode(photo, "PNG")
    s["webp"] = encode(photo, "WEBP", quality=80)
    s["webp-lossless"] = encode(photo, "WEBP", lossless=True)
    for mode in ("1", "L", "LA", "RGBA", "I;16"):
        s[f"png-{mode}"] = encode(_mode_image(mode), "PNG")
    p = _mode_image("P")
    s["png-P-transparency"] = encode(p, "PNG", transparency=0)
    s["gif-P-transparency"] = encode(p, "GIF", transparency=0)
    s["webp-RGBA"] = encode(_mode_image("RGBA"), "WEBP")
    s["jpeg-L"] = encode(_mode_image("L"), "JPEG")
    s["jpeg-CMYK"] = encode(_mode_image("CMYK"), "JPEG")
    s["jpeg-YCbCr"] = encode(_mode_image("YCbCr"), "JPEG")
    s["tiff-F"] = encode(_mode_image("F"), "TIFF")
    s["tiff-I"] = encode(_mode_image("I"), "TIFF")
    s["tiff-CMYK"] = encode(_mode_image("CMYK"), "TIFF")
    s["bmp"] = encode(photo, "BMP")
    s["gif-animated"] = _animated("GIF")
    s["webp-animated"] = _animated("WEBP")
    s["apng"] = _animated("PNG")
    s["apng-RGBA"] = _animated("PNG", "RGBA")
    for v in (0, 3, 6, 8, 9, 255, 65535):
        s[f"exif-orientation-{v}"] = with_exif_orientation(v)
    s["webp-exif-orientation-6"] = with_exif_orientation(6, "WEBP")
    s["png-exif-orientation-99"] = with_exif_orientation(99, "PNG")
    for cut in (0, 8, 20, 40):
        s[f"exif-truncated-{cut}"] = with_truncated_exif(cut)
    s["exif-app1-length-lies"] = with_truncated_exif(8, lying_length=True)
    s["png-header-100000x100000"] = png_header_claiming(100_000, 100_000)
    s["png-header-2^31"] = png_header_claiming(2**31 - 1, 2**31 - 1)
    s["png-header-8000x8000-empty-body"] = png_header_claiming(8000, 8000)
    s["png-bomb-20000x20000"] = png_bomb(20_000, 20_000)
    s["png-header-1x70000"] = png_header_claiming(1, 70_000)
    s["jpeg-tiny"] = encode(noise_photo((16, 16)), "JPEG")
    s["text"] = b"Hello, I am definitely a photo.\n" * 8
    s["pdf"] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer<<>>\n%%EOF\n"
    s["svg"] = b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"></svg>'
    s["html"] = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
    s["zip"] = b"PK\x03\x04" + bytes(60)
    return s


def total_seed_bytes() -> int:
    """Size of the seed corpus (for the report)."""
    return sum(len(v) for v in seed_files().values())


def magic_prefixes() -> list[bytes]:
    """File signatures that make a wrong 'extension' inside the bytes (a header that lies)."""
    return [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a", b"BM",
            b"II*\x00", b"\x00\x00\x00\x0cjP  ", b"\x00\x00\x00\x18ftypheic"]


def image_from(data: bytes) -> Image.Image:
    """Decode bytes with Pillow (helper for the seeds' own sanity checks)."""
    return Image.open(io.BytesIO(data))
