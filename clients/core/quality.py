"""Quality warnings: what about an input image limits how far its verdict can be trusted.

Each check has a threshold named and explained below and a message that tells the user how the
problem affects trust in the verdict. Codes are stable strings that front ends may key on.
Everything here is cheap (well under 100 ms on a 2048 px working image) and never raises.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from clients.core.facecrop import Box
from clients.core.verdict import QualityWarning

log = logging.getLogger(__name__)

# Stable codes -------------------------------------------------------------------------------
SMALL_FACE = "small_face"
JPEG_COMPRESSION = "jpeg_compression"
BLUR = "blur"
NO_FACE = "no_face"
MANY_FACES = "many_faces"
SCREENSHOT = "screenshot"
CODES = (SMALL_FACE, JPEG_COMPRESSION, BLUR, NO_FACE, MANY_FACES, SCREENSHOT)

# Thresholds ---------------------------------------------------------------------------------
SMALL_FACE_PX = 80
"""A face box whose shorter side is under this (working-image px) holds too little detail: the model
sees it upscaled to 224 px, and blending seams and GAN textures vanish below ~80 px."""

JPEG_QUALITY_MIN = 60
"""Estimated JPEG quality (IJG scale 1..100) under which block artefacts and lost high frequencies both
hide real traces and create fake-looking ones. Social-network recompression lands around 70..85."""

BLUR_VARIANCE_MIN = 40.0
"""Variance of the Laplacian of the grey face box resized to 224x224 (the model's input size).
Sharp faces measure in the hundreds (the shared training faces: median ~90-800 by source, 5th
percentile ~20-450); under 40 the crop is visibly soft (focus, motion or heavy upscaling)."""

MANY_FACES_MAX = 5
"""More faces than this: a group photo, where faces are small and the image label rests on the one
most suspicious face, so a single false alarm decides it."""

SCREEN_FLAT_FRACTION = 0.30
"""Share of the image in perfectly flat patches (UI backgrounds) above which, together with long
straight edges, an image looks like a screen capture. Camera noise makes flat patches rare in photos."""

SCREEN_LINE_SCORE = 0.25
"""Share of edge pixels that lie on long horizontal/vertical runs (toolbars, panels, text boxes)."""

MOIRE_PEAK_RATIO = 80.0
"""A spectral peak this many times the median of its frequency ring, away from the JPEG 8x8 grid: the
periodic interference pattern of a photographed screen. Natural faces measure ~5-15, heavily upscaled
video crops (DFDC) up to ~50; a grating of +-6 grey levels already reaches ~70, real screen moire more."""

MOIRE_FLOOR_GREY = 0.02
"""The ring median is taken as at least the spectral magnitude of a pattern this many grey levels high. An image
with almost no texture (a synthetic gradient, a flat colour) has rings of near-zero magnitude, over which the tiny
ripple of its 8-bit steps (under 0.2 grey levels) stood thousands of times higher: a false moire. Camera noise puts
the median of a photo's rings above this floor, so photos are measured as before."""

SCREEN_SIZES = {
    (1280, 720), (1280, 800), (1280, 1024), (1366, 768), (1440, 900), (1536, 864), (1600, 900),
    (1680, 1050), (1920, 1080), (1920, 1200), (2048, 1536), (2560, 1080), (2560, 1440), (2560, 1600),
    (2736, 1824), (2880, 1800), (3024, 1964), (3440, 1440), (3456, 2234), (3840, 2160), (5120, 2880),
    (750, 1334), (828, 1792), (1080, 1920), (1080, 2160), (1080, 2220), (1080, 2280), (1080, 2340),
    (1080, 2400), (1125, 2436), (1170, 2532), (1179, 2556), (1242, 2208), (1242, 2688), (1284, 2778),
    (1290, 2796), (1440, 2560), (1440, 2960), (1440, 3040), (1440, 3088), (1440, 3200), (720, 1280),
    (720, 1600), (1668, 2388), (2048, 2732), (1620, 2160), (1640, 2360),
}
"""Common monitor, phone and tablet screen sizes in pixels (either orientation matches)."""

_LOSSLESS = {"PNG", "BMP", "GIF", "TIFF"}
_BLUR_SIDE = 224
_ANALYSIS_LONG_SIDE = 512

# Standard IJG luminance table (Annex K of the JPEG standard): quality 50 uses it unscaled.
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)


@dataclass(frozen=True)
class SourceInfo:
    """Facts about the uploaded file that the decoded pixels no longer show."""

    format: str | None = None
    original_size: tuple[int, int] = (0, 0)
    jpeg_quality: int | None = None
    has_camera_exif: bool = False
    """EXIF naming a camera (Make or Model): screenshots, even those with EXIF, have none."""

    @classmethod
    def from_bytes(cls, data: bytes, fmt: str | None = None) -> "SourceInfo":
        """Read format, size, JPEG tables and EXIF presence from the header only; never raises."""
        try:
            with Image.open(io.BytesIO(data)) as im:
                return cls.from_header(im, fmt)
        except Exception:  # noqa: BLE001 - the intake has already judged the file; here we only look
            return cls(format=fmt)

    @classmethod
    def from_header(cls, im: Image.Image, fmt: str | None = None) -> "SourceInfo":
        """The same from an opened, not yet decoded image (an Upload's header), so the bytes are not opened again."""
        try:
            tables = getattr(im, "quantization", None)
            quality = estimate_jpeg_quality(tables) if tables else None
            return cls(format=(im.format or fmt), original_size=im.size, jpeg_quality=quality,
                       has_camera_exif=_camera_exif(im))
        except Exception:  # noqa: BLE001 - the intake has already judged the file; here we only look
            return cls(format=fmt)


def _camera_exif(im: Image.Image) -> bool:
    """Whether the file's EXIF names a camera maker or model (False when it cannot be read)."""
    try:
        exif = Image.Exif()
        raw = im.info.get("exif")
        if raw:
            exif.load(raw)
        elif im.format in ("JPEG", "WEBP"):
            # PNG may keep EXIF after the pixels, and reading it there decodes the whole image: the
            # chunks before the pixels (im.info) are enough for a screenshot hint.
            exif = im.getexif()
        return bool(exif.get(0x010F) or exif.get(0x0110))
    except Exception:  # noqa: BLE001 - broken EXIF is simply no camera data
        return False


def estimate_jpeg_quality(tables: dict[int, list[int]] | list) -> int | None:
    """IJG-scale quality (1..100) whose luminance table best fits the file's (order-independent)."""
    table = tables.get(0) if isinstance(tables, dict) else (tables[0] if tables else None)
    if table is None or len(table) != 64:
        return None
    given = np.sort(np.asarray(table, dtype=np.float64))
    errors = np.abs(_ijg_sorted_tables() - given).sum(axis=1)
    return int(np.argmin(errors)) + 1


def _ijg_table(quality: int) -> np.ndarray:
    """The IJG luminance table libjpeg writes at a quality setting (baseline, clamped to 1..255)."""
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((_IJG_LUMA * scale + 50.0) / 100.0), 1, 255)


@lru_cache(maxsize=1)
def _ijg_sorted_tables() -> np.ndarray:
    """Sorted IJG luminance tables for qualities 1..100, one row each (order-free comparison)."""
    return np.stack([np.sort(_ijg_table(q)) for q in range(1, 101)])


def assess(image: Image.Image, faces: list[Box], data: "bytes | SourceInfo" = b"",
           fmt: str | None = None, config: object | None = None) -> list[QualityWarning]:
    """Every quality warning for one image and its face boxes; never raises (a failing check is skipped)."""
    source = data if isinstance(data, SourceInfo) else (
        SourceInfo.from_bytes(data, fmt) if data else SourceInfo(format=fmt, original_size=image.size))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    warnings: list[QualityWarning] = []
    for check in (_check_no_face, _check_many_faces, _check_small_faces, _check_jpeg, _check_blur,
                  _check_screenshot):
        try:
            found = check(rgb, faces, source)
        except Exception:  # noqa: BLE001 - a quality hint must never break a verdict
            log.exception("quality check %s failed", check.__name__)
            continue
        if found is not None:
            warnings.append(found)
    return warnings


# The checks ---------------------------------------------------------------------------------
def _check_no_face(image: Image.Image, faces: list[Box], source: SourceInfo) -> QualityWarning | None:
    """No face: the whole image is scored, which the face-trained model was never meant for."""
    if faces:
        return None
    return QualityWarning(NO_FACE, "No face was found, so the whole image was scored. The detector is trained "
                                   "on faces; its score for other content says little either way.")


def _check_many_faces(image: Image.Image, faces: list[Box], source: SourceInfo) -> QualityWarning | None:
    """Many faces: group photos, where one false alarm on a small face decides the label."""
    if len(faces) <= MANY_FACES_MAX:
        return None
    return QualityWarning(MANY_FACES, f"{len(faces)} faces were found (more than {MANY_FACES_MAX}). The verdict "
                                      "follows the most suspicious face, so one false alarm decides it: check "
                                      "each face's own score.")


def _check_small_faces(image: Image.Image, faces: list[Box], source: SourceInfo) -> QualityWarning | None:
    """Small faces: too few pixels to carry the traces the model looks for."""
    small = [b for b in faces if min(b.w, b.h) < SMALL_FACE_PX]
    if not small:
        return None
    side = min(min(b.w, b.h) for b in small)
    which = "The face is" if len(faces) == 1 else f"{len(small)} of {len(faces)} faces are"
    return QualityWarning(SMALL_FACE, f"{which} small (down to {side} px, under {SMALL_FACE_PX} px). Fine detail that "
                                      "reveals manipulation is lost at this size, so the verdict is less "
                                      "reliable.")


def _check_jpeg(image: Image.Image, faces: list[Box], source: SourceInfo) -> QualityWarning | None:
    """Heavy JPEG compression: artefacts both hide and imitate manipulation traces."""
    q = source.jpeg_quality
    if q is None or q >= JPEG_QUALITY_MIN:
        return None
    return QualityWarning(JPEG_COMPRESSION, f"The image is heavily JPEG-compressed (estimated quality {q}, under "
                                            f"{JPEG_QUALITY_MIN}). Compression erases the traces the detector "
                                            "looks for and adds block artefacts, so treat the verdict with "
                                            "caution.")


def blur_score(region: Image.Image) -> float:
    """Variance of the Laplacian of the grey region at the model's 224 px input size (higher is sharper)."""
    grey = np.asarray(region.convert("L").resize((_BLUR_SIDE, _BLUR_SIDE), Image.Resampling.BILINEAR),
                      dtype=np.float64)
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=3).var())


def _check_blur(image: Image.Image, faces: list[Box], source: SourceInfo) -> QualityWarning | None:
    """Blur: a soft face hides blending seams and texture, so 'real' is weaker evidence."""
    regions = [image.crop((b.x, b.y, b.x + b.w, b.y + b.h)) for b in faces if b.w > 0 and b.h > 0]
    if not regions:
        regions = [_centre_square(image)]
    scores = [blur_score(r) for r in regions]
    blurry = [s for s in scores if s < BLUR_VARIANCE_MIN]
    if not blurry:
        return None
    what = "The face is" if len(regions) == 1 else f"{len(blurry)} of {len(regions)} faces are"
    if not faces:
        what = "The image is"
    return QualityWarning(BLUR, f"{what} blurry (sharpness {min(blurry):.0f}, under {BLUR_VARIANCE_MIN:.0f}). Blur "
                                "hides the traces of manipulation, so a 'real' verdict is weaker evidence.")


def screenshot_reasons(image: Image.Image, faces: list[Box], source: SourceInfo) -> list[str]:
    """Why the image looks captured from a screen (empty when it does not)."""
    reasons = []
    w, h = source.original_size if source.original_size != (0, 0) else image.size
    lossless = (source.format or "").upper() in _LOSSLESS
    if lossless and not source.has_camera_exif and ((w, h) in SCREEN_SIZES or (h, w) in SCREEN_SIZES):
        reasons.append(f"a {w}x{h} {source.format} without camera data, the size of a screen")
    if not source.has_camera_exif:
        # A camera's photo of clipped sky and buildings can look flat and straight too: only
        # files that name no camera are judged on the interface look.
        small = _downscale(image, _ANALYSIS_LONG_SIDE)
        flat = flat_fraction(small)
        if flat >= SCREEN_FLAT_FRACTION and line_score(small) >= SCREEN_LINE_SCORE:
            reasons.append(f"large flat areas ({flat:.0%}) and straight interface-like edges")
    peak = max((moire_peak_ratio(image.crop((b.x, b.y, b.x + b.w, b.y + b.h))) for b in faces), default=0.0) \
        if faces else moire_peak_ratio(_centre_square(image))
    if peak >= MOIRE_PEAK_RATIO:
        reasons.append("a periodic moire pattern, as when a screen is photographed")
    return reasons


def _check_screenshot(image: Image.Image, faces: list[Box], source: SourceInfo) -> QualityWarning | None:
    """Screen capture or re-photographed screen: the verdict is about a copy, not the original."""
    reasons = screenshot_reasons(image, faces, source)
    if not reasons:
        return None
    return QualityWarning(SCREENSHOT, "The image looks like a screenshot or a photo of a screen ("
                                      + "; ".join(reasons) + "). Re-captured images lose the original's traces, "
                                      "so the verdict is about the copy, not the original picture.")


# Measurements -------------------------------------------------------------------------------
def flat_fraction(image: Image.Image) -> float:
    """Share of pixels whose 5x5 neighbourhood varies by at most 2 grey levels in every channel."""
    arr = np.asarray(image.convert("RGB"))
    kernel = np.ones((5, 5), np.uint8)
    spread = np.zeros(arr.shape[:2], dtype=np.int16)
    for c in range(3):
        ch = np.ascontiguousarray(arr[..., c])
        spread = np.maximum(spread, cv2.dilate(ch, kernel).astype(np.int16) - cv2.erode(ch, kernel).astype(np.int16))
    return float(np.mean(spread <= 2))


def line_score(image: Image.Image) -> float:
    """Share of edge pixels lying on long straight horizontal or vertical runs (UI borders, bars)."""
    grey = np.asarray(image.convert("L"))
    edges = cv2.Canny(grey, 50, 150)
    total = int(np.count_nonzero(edges))
    if total < 50:
        return 0.0
    length = max(15, min(grey.shape) // 8)
    horiz = cv2.morphologyEx(edges, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    vert = cv2.morphologyEx(edges, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    return float(np.count_nonzero(horiz | vert)) / total


def moire_peak_ratio(region: Image.Image, max_side: int = 256) -> float:
    """Strongest mid/high-frequency spectral peak over its ring's median (floored), ignoring the JPEG 8x8 grid."""
    n = min(region.width, region.height, max_side)
    if n < 64:
        return 0.0
    top, left = (region.height - n) // 2, (region.width - n) // 2
    patch = np.asarray(region.crop((left, top, left + n, top + n)).convert("L"), dtype=np.float64)
    window, table, counts = _moire_layout(n)
    if not len(counts):
        return 0.0
    mag = np.abs(np.fft.fftshift(np.fft.fft2((patch - patch.mean()) * window)))
    rings = np.sort(np.append(mag.ravel(), np.inf)[table], axis=1)  # one row per ring, padded with inf
    rows = np.arange(len(counts))
    medians = rings[rows, (counts - 1) // 2]
    peaks = rings[rows, counts - 1]
    floor = MOIRE_FLOOR_GREY * window.sum() / 2  # the windowed spectrum's peak for a sinusoid of that amplitude
    return float((peaks / np.maximum(medians, floor)).max())


@lru_cache(maxsize=8)
def _moire_layout(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an n x n patch (computed once per size): its Hann window, and the kept frequencies of its
    centred spectrum grouped by ring, as a table of flat indices (one row per ring, -1 padding) and
    the ring sizes. Kept: radius 0.08-0.48 cycles per pixel, away from the JPEG 8x8 grid."""
    window = np.outer(np.hanning(n), np.hanning(n))
    freq = np.fft.fftshift(np.fft.fftfreq(n))  # cycles per pixel, -0.5..0.5
    fy, fx = np.meshgrid(freq, freq, indexing="ij")
    radius = np.hypot(fx, fy)
    band = (radius >= 0.08) & (radius <= 0.48)
    # JPEG blocking puts energy at multiples of 1/8 cycle/pixel on each axis; leave those out.
    tol = 2.0 / n
    on_grid = (np.abs(fx * 8 - np.round(fx * 8)) < tol * 8) | (np.abs(fy * 8 - np.round(fy * 8)) < tol * 8)
    keep = (band & ~on_grid).ravel()
    flat = np.flatnonzero(keep)
    ring_of = np.minimum((radius.ravel() * n).astype(int), n)[flat]
    order = np.argsort(ring_of, kind="stable")
    flat, ring_of = flat[order], ring_of[order]
    _, starts, counts = np.unique(ring_of, return_index=True, return_counts=True)
    table = np.full((len(counts), int(counts.max(initial=0))), -1, dtype=np.intp)
    row = np.repeat(np.arange(len(counts)), counts)
    table[row, np.arange(len(flat)) - np.repeat(starts, counts)] = flat
    return window, table, counts


def _downscale(image: Image.Image, long_side: int) -> Image.Image:
    """A copy whose longer side is at most long_side (nearest keeps flat areas exactly flat)."""
    scale = long_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST)


def _centre_square(image: Image.Image) -> Image.Image:
    """The centred square of the image, the region scored when no face is found."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))
