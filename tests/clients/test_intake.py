"""Intake: every accepted kind of image decodes to the right RGB pixels; every refusal has its own message."""
from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from clients.core.config import ClientConfig
from clients.core.errors import (CorruptImage, EmptyFile, FileTooLarge, ImageTooLarge, ImageTooSmall,
                            InvalidImage, NotAnImage)
from clients.core.intake import load_image
from tests.clients.images import encode, noise_photo


def _raises(data: bytes, kind: type, config: ClientConfig | None = None) -> InvalidImage:
    """Assert load_image refuses `data` with exactly `kind`, and return the error."""
    with pytest.raises(kind) as info:
        load_image(data, config)
    assert type(info.value) is kind
    return info.value


# Refusals ---------------------------------------------------------------------------------------

def test_empty_file_is_refused():
    err = _raises(b"", EmptyFile)
    assert "empty" in err.user_message.lower()


@pytest.mark.parametrize("data", [b"hello, this is a text file\n" * 20, bytes(range(256)) * 8,
                                  b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"])
def test_bytes_that_are_not_an_image_are_refused(data):
    err = _raises(data, NotAnImage)
    assert "JPEG, PNG or WebP" in err.user_message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_refused_by_name(fmt):
    err = _raises(encode(noise_photo((120, 120)), fmt), NotAnImage)
    assert fmt in err.user_message and "JPEG, PNG or WebP" in err.user_message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_file_is_refused(fmt):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = encode(noise_photo((400, 300)), fmt)
    err = _raises(data[: len(data) * 2 // 3], CorruptImage)
    assert "damaged or incomplete" in err.user_message


def test_png_with_broken_compressed_data_is_refused():
    data = bytearray(encode(noise_photo((200, 200)), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 4: idat + 6] = b"\xff\xff"  # a broken zlib stream header, chunk CRC recomputed below
    length = struct.unpack(">I", data[idat - 4: idat])[0]
    crc = zlib.crc32(bytes(data[idat: idat + 4 + length])) & 0xFFFFFFFF
    data[idat + 4 + length: idat + 8 + length] = struct.pack(">I", crc)
    _raises(bytes(data), CorruptImage)


def test_file_over_the_byte_limit_is_refused_before_decoding():
    jpeg = encode(noise_photo((300, 300)), "JPEG")
    data = jpeg + b"\0" * (20 * 1024 * 1024 + 1 - len(jpeg))  # a valid JPEG with trailing bytes: 20 MB + 1
    assert ClientConfig().max_bytes == 20 * 1024 * 1024
    err = _raises(data, FileTooLarge)
    assert "20.0 MB" in err.user_message
    load_image(data[: 20 * 1024 * 1024])  # at the limit it is accepted


@pytest.mark.parametrize("size", [(10_000, 6_000), (14_000, 14_000)])
def test_decompression_bomb_is_refused_without_decoding(size):
    """60 MP is over our 50 MP limit; 196 MP is also over Pillow's own bomb limit (its error becomes ours)."""
    data = encode(Image.new("1", size), "PNG")  # a few KB on disk, gigabytes if decoded
    assert len(data) < 200_000
    t0 = time.perf_counter()
    err = _raises(data, ImageTooLarge)
    assert time.perf_counter() - t0 < 1.0
    assert "megapixels" in err.user_message


@pytest.mark.parametrize("size", [(40, 40), (1000, 50)])
def test_too_small_image_is_refused(size):
    err = _raises(encode(noise_photo(size), "PNG"), ImageTooSmall)
    assert f"{size[0]}x{size[1]}" in err.user_message


def test_every_refusal_has_its_own_user_message():
    kinds = [EmptyFile, NotAnImage, CorruptImage, FileTooLarge, ImageTooLarge, ImageTooSmall]
    messages = [k().user_message for k in kinds]
    assert len(set(messages)) == len(kinds)
    assert all(m and "Traceback" not in m and m[0].isupper() for m in messages)


# Accepted images --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_accepted_formats_decode_to_rgb(fmt):
    src = noise_photo((320, 240))
    loaded = load_image(encode(src, fmt, **({"quality": 95} if fmt != "PNG" else {})))
    assert loaded.format == fmt and loaded.image.mode == "RGB"
    assert loaded.image.size == (320, 240) == loaded.original_size
    diff = np.abs(np.asarray(loaded.image, np.int16) - np.asarray(src, np.int16)).mean()
    assert diff < 4.0


def _half_red_half_blue(w=200, h=100) -> Image.Image:
    img = Image.new("RGB", (w, h), (255, 0, 0))
    img.paste((0, 0, 255), (w // 2, 0, w, h))
    return img


@pytest.mark.parametrize("orientation,top_left,size", [
    (1, (255, 0, 0), (200, 100)),   # as stored
    (3, (0, 0, 255), (200, 100)),   # rotated 180
    (6, (255, 0, 0), (100, 200)),   # rotate 90 CW to display: stored left becomes top
    (8, (0, 0, 255), (100, 200)),   # rotate 90 CCW to display: stored right becomes top
])
def test_exif_orientation_is_applied(orientation, top_left, size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    loaded = load_image(encode(_half_red_half_blue(), "JPEG", quality=95, exif=exif.tobytes()))
    assert loaded.image.size == size == loaded.original_size
    px = loaded.image.getpixel((5, 5))
    assert all(abs(a - b) < 40 for a, b in zip(px, top_left)), px


def test_palette_with_transparency_is_composited_on_white():
    img = Image.new("P", (100, 100), 0)
    img.putpalette([255, 0, 0] + [0, 255, 0] * 255)
    img.paste(1, (50, 0, 100, 100))
    loaded = load_image(encode(img, "PNG", transparency=0))
    assert loaded.image.getpixel((10, 10)) == (255, 255, 255)
    assert loaded.image.getpixel((80, 10)) == (0, 255, 0)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(mode):
    img = Image.new(mode, (100, 100), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    img.paste((0, 255) if mode == "LA" else (0, 0, 0, 255), (50, 0, 100, 100))
    loaded = load_image(encode(img, "PNG"))
    assert loaded.image.getpixel((10, 10)) == (255, 255, 255)   # transparent -> white, not black
    assert loaded.image.getpixel((80, 10)) == (0, 0, 0)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    arr = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (100, 1))
    loaded = load_image(encode(Image.fromarray(arr), "PNG"))
    out = np.asarray(loaded.image)[:, :, 0]
    assert out[0, 0] == 0 and out[0, -1] == 255
    assert 120 <= out[0, 64] <= 135  # mid-grey stays mid-grey


def test_grey_and_cmyk_convert_to_rgb():
    grey = load_image(encode(Image.new("L", (100, 100), 77), "PNG"))
    assert grey.image.getpixel((0, 0)) == (77, 77, 77)
    cmyk = load_image(encode(Image.new("CMYK", (100, 100), (0, 255, 255, 0)), "JPEG", quality=95))
    r, g, b = cmyk.image.getpixel((50, 50))
    assert r > 200 and g < 60 and b < 60  # full magenta + yellow = red


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animated_image_gives_first_frame_and_a_warning(fmt):
    frames = [Image.new("RGB", (100, 100), c) for c in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    loaded = load_image(data)
    assert [w.code for w in loaded.warnings] == ["animated"]
    assert "first frame" in loaded.warnings[0].message
    r, g, b = loaded.image.getpixel((50, 50))
    assert r > 200 and g < 50 and b < 50


def test_large_jpeg_is_decoded_at_reduced_size():
    data = encode(noise_photo((4032, 3024)), "JPEG", quality=90)
    config = ClientConfig()
    loaded = load_image(data, config)
    assert loaded.original_size == (4032, 3024)
    assert config.work_long_side * 3 // 4 <= max(loaded.image.size) <= config.work_long_side
    assert loaded.image.size[0] / loaded.image.size[1] == pytest.approx(4 / 3, rel=0.01)


def test_large_png_is_downscaled_to_the_working_size():
    loaded = load_image(encode(noise_photo((3000, 1000)), "PNG"))
    assert loaded.image.size == (2048, 683) and loaded.original_size == (3000, 1000)
