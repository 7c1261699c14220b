"""The whole check of one upload: intake -> faces -> crops -> one batched request -> verdict."""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import logging
import time
from concurrent.futures import wait
from dataclasses import dataclass, field

from PIL import Image

from clients.core import quality
from clients.core.config import ClientConfig
from clients.core.detector import AsyncDetector, Detector
from clients.core.facecrop import Box, square_box
from clients.core.faces import detect_faces, first_pass, rescale_boxes
from clients.core.grpc_client import Prediction
from clients.core.intake import LoadedImage, Upload
from clients.core.workers import background
from clients.core.verdict import FaceResult, Label, QualityWarning, Verdict
from serving.contract import IMAGE_SIZE, confidence_for, label_for

log = logging.getLogger(__name__)

NO_FACE_WARNING = QualityWarning(
    "no_face", "No face was found, so the whole image was scored. The detector is trained on faces: "
               "treat this result with extra caution.")

DETECT_DECODE_FRACTION = 0.75
"""A large JPEG's detection copy is decoded directly at the smallest DCT scale whose long side reaches this share
of config.detect_long_side (a 12 MP photo: 1/8, 500 px), on this thread while the working image decodes on another."""


@dataclass
class Analysis:
    """A verdict plus the working image (boxes refer to it) and the crops that were scored."""

    verdict: Verdict
    image: Image.Image
    crops: list[Image.Image] = field(default_factory=list)


@dataclass
class Prepared:
    """Everything computed before the request: the image, faces, crops and their encodings."""

    loaded: LoadedImage
    boxes: list[Box]
    crop_boxes: list[tuple[int, int, int, int]]
    crops: list[Image.Image]
    encoded: list[bytes]
    warnings: list[QualityWarning]
    sha256: str
    timings_ms: dict[str, float]
    upload: Upload | None = None
    """The upload the check was made from (its header serves the quality hints without opening the bytes again)."""

    @property
    def whole_image(self) -> bool:
        """True when no face was found and the centre of the image stands in for one."""
        return not self.boxes


def _ms(t0: float) -> float:
    """Milliseconds since t0, rounded for JSON."""
    return round(1000.0 * (time.perf_counter() - t0), 1)


def centre_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred square (left, top, right, bottom): what is scored when no face is found."""
    w, h = size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return left, top, left + side, top + side


def encode_crop(crop: Image.Image) -> tuple[Image.Image, bytes]:
    """The crop at most IMAGE_SIZE square (antialiased, as the server would resize it) and its lossless PNG."""
    if crop.width > IMAGE_SIZE or crop.height > IMAGE_SIZE:
        crop = crop.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR, reducing_gap=3.0)
    buf = io.BytesIO()
    crop.save(buf, "PNG", compress_level=0)  # stored, not deflated: 2x faster to make; ~150 KB on the wire
    return crop, buf.getvalue()


def finer_long_side(loaded: LoadedImage, boxes: list[Box], config: ClientConfig) -> int | None:
    """The long side at which every face's crop reaches the model's input size, if a finer decode can help."""
    if not boxes or loaded.format != "JPEG":
        return None
    long_side = max(loaded.image.size)
    if long_side >= min(max(loaded.original_size), config.draft_long_side):
        return None  # already at full resolution or at the usual working scale
    smallest = min(max(b.w, b.h) * (1.0 + 2.0 * config.crop_margin) for b in boxes)
    if smallest >= IMAGE_SIZE:
        return None
    return int(long_side * IMAGE_SIZE / max(smallest, 1.0)) + 1  # load_image caps it at the usual scale


def as_upload(data: bytes | Upload, config: ClientConfig) -> Upload:
    """The upload to check: bytes are opened and validated here, once; an Upload is taken as it is."""
    return data if isinstance(data, Upload) else Upload(data, config)


def decode_finer_for_faces(data: bytes | Upload, loaded: LoadedImage, boxes: list[Box],
                           config: ClientConfig) -> tuple[LoadedImage, list[Box]]:
    """Decode a drafted JPEG again, larger, when a face found at the first scale would be cut from too few pixels."""
    want = finer_long_side(loaded, boxes, config)
    if want is None:
        return loaded, boxes
    finer = as_upload(data, config).decode(want)
    if finer.image.size == loaded.image.size:
        return loaded, boxes
    return finer, rescale_boxes(boxes, loaded.image.size, finer.image.size)


def decode_and_detect(data: bytes | Upload, config: ClientConfig,
                      timings: dict[str, float]) -> tuple[LoadedImage, list[Box]]:
    """The working image and its faces, adding to timings' decode and faces.

    For a large JPEG whose detection copy can be decoded at a smaller DCT scale than the working image, that
    copy is decoded here and searched for faces while the working image decodes on another thread (libjpeg
    releases the GIL): detection no longer waits for the larger decode, nor for downscaling it."""
    t0 = time.perf_counter()
    upload = as_upload(data, config)
    small_side = int(config.detect_long_side * DETECT_DECODE_FRACTION)
    small_long = upload.decoded_long_side(small_side)
    if small_long is None or small_long >= (upload.decoded_long_side(config.first_decode_long_side) or 0):
        loaded = upload.decode(config.first_decode_long_side)
        timings["decode"] += _ms(t0)
        t0 = time.perf_counter()
        boxes = detect_faces(loaded.image, config)
        timings["faces"] = _ms(t0)
        return loaded, boxes
    working = background().submit(upload.decode, config.first_decode_long_side)
    try:
        small = upload.decode(small_side)
    except BaseException:
        wait([working])  # the same data fails there too: leave no decode running behind the error
        raise
    timings["decode"] += _ms(t0)
    t0 = time.perf_counter()
    found = first_pass(small.image, config)
    timings["faces"] = _ms(t0)
    t0 = time.perf_counter()
    loaded = working.result()
    timings["decode"] += _ms(t0)
    t0 = time.perf_counter()
    boxes = detect_faces(loaded.image, config, found)  # further passes only when the first found nothing
    timings["faces"] += _ms(t0)
    return loaded, boxes


def _merge_warnings(*groups: list[QualityWarning]) -> list[QualityWarning]:
    """All warnings in order, one per code."""
    seen: set[str] = set()
    out = []
    for group in groups:
        for w in group:
            if w.code not in seen:
                seen.add(w.code)
                out.append(w)
    return out


def prepare_crops(data: bytes | Upload, config: ClientConfig) -> Prepared:
    """The CPU part of a check that the request needs: decode, find faces, cut and encode crops."""
    t_total = time.perf_counter()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    upload = as_upload(data, config)
    sha = hashlib.sha256(upload.data).hexdigest()
    timings["decode"] = _ms(t0)
    loaded, boxes = decode_and_detect(upload, config, timings)

    t0 = time.perf_counter()
    loaded, boxes = decode_finer_for_faces(upload, loaded, boxes, config)
    timings["decode"] += _ms(t0)

    t0 = time.perf_counter()
    if boxes:
        crop_boxes = [square_box(b, loaded.image.size, config.crop_margin) for b in boxes]
    else:
        crop_boxes = [centre_square(loaded.image.size)]
    pairs = [encode_crop(loaded.image.crop(cb)) for cb in crop_boxes]
    timings["crops"] = _ms(t0)
    warnings = _merge_warnings([] if boxes else [NO_FACE_WARNING], loaded.warnings)
    timings["prepare"] = _ms(t_total)
    return Prepared(loaded, boxes, crop_boxes, [p[0] for p in pairs], [p[1] for p in pairs], warnings, sha, timings,
                    upload)


def _source(prep: Prepared, data: bytes | Upload) -> bytes | quality.SourceInfo:
    """What the quality checks read of the file: the upload's header when there is one, else the bytes."""
    upload = prep.upload or (data if isinstance(data, Upload) else None)
    return quality.SourceInfo.from_header(upload.header, upload.format) if upload else data


def with_quality(prep: Prepared, data: bytes | Upload, config: ClientConfig) -> Prepared:
    """The prepared check with its quality warnings added (never raises: hints must not block a verdict)."""
    t0 = time.perf_counter()
    try:
        q = quality.assess(prep.loaded.image, prep.boxes, _source(prep, data), prep.loaded.format, config)
    except Exception:  # noqa: BLE001 - quality hints must never block a verdict
        log.exception("quality assessment failed")
        q = []
    timings = dict(prep.timings_ms, quality=_ms(t0))
    timings["prepare"] = round(timings["prepare"] + timings["quality"], 1)
    return dataclasses.replace(prep, warnings=_merge_warnings(prep.warnings, q), timings_ms=timings)


def prepare(data: bytes | Upload, config: ClientConfig) -> Prepared:
    """The whole CPU part of a check: crops for the request, then the quality assessment."""
    return with_quality(prepare_crops(data, config), data, config)


def build_verdict(prep: Prepared, pred: Prediction, filename: str) -> Verdict:
    """Per-face labels with the answering version's threshold; the most suspicious face decides the image."""
    threshold, band = pred.threshold, pred.uncertain_band
    faces = []
    for i, p in enumerate(pred.fake_probability):
        label = Label(label_for(p, threshold, band))
        box = prep.boxes[i].as_tuple() if prep.boxes else _xywh(prep.crop_boxes[i])
        faces.append(FaceResult(box=box, fake_probability=round(p, 6), label=label,
                                confidence=round(confidence_for(p, label), 6),
                                heatmap=pred.heatmaps[i] if i < len(pred.heatmaps) else [],
                                crop_box=prep.crop_boxes[i]))
    top = max(faces, key=lambda f: f.fake_probability)
    return Verdict(label=top.label, fake_probability=top.fake_probability, confidence=top.confidence,
                   threshold=round(threshold, 6), uncertain_band=(round(band[0], 6), round(band[1], 6)),
                   faces=faces, whole_image=prep.whole_image, model_name=pred.model_name,
                   model_version=pred.model_version, timings_ms=dict(prep.timings_ms), warnings=list(prep.warnings),
                   sha256=prep.sha256, filename=filename, image_size=prep.loaded.image.size,
                   original_size=prep.loaded.original_size)


def _xywh(ltrb: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) as (x, y, w, h)."""
    return ltrb[0], ltrb[1], ltrb[2] - ltrb[0], ltrb[3] - ltrb[1]


def _finish(prep: Prepared, pred: Prediction, filename: str, t_request: float, t_total: float) -> Analysis:
    """Assemble the Analysis and its timings."""
    verdict = build_verdict(prep, pred, filename)
    verdict.timings_ms["request"] = t_request
    verdict.timings_ms["total"] = _ms(t_total)
    return Analysis(verdict=verdict, image=prep.loaded.image, crops=prep.crops)


def analyze(data: bytes, filename: str, client: Detector, config: ClientConfig | None = None) -> Analysis:
    """Check one image with a Detector (make_detector); raises InvalidImage kinds or DetectorUnavailable/ModelError.

    The quality assessment runs on another thread while the request is in flight (it only adds hints)."""
    config = config or ClientConfig.from_env()
    t_total = time.perf_counter()
    prep = prepare_crops(data, config)
    assessed = background().submit(with_quality, prep, prep.upload, config)
    t0 = time.perf_counter()
    try:
        pred = client.predict(prep.encoded)
        t_request = _ms(t0)
    finally:
        prep = assessed.result()
    return _finish(prep, pred, filename, t_request, t_total)


async def analyze_async(data: bytes, filename: str, client: AsyncDetector,
                        config: ClientConfig | None = None) -> Analysis:
    """The asyncio twin of analyze for an AsyncDetector (make_async_detector): CPU work runs in worker threads."""
    config = config or ClientConfig.from_env()
    t_total = time.perf_counter()
    prep = await asyncio.to_thread(prepare_crops, data, config)
    assessed = asyncio.get_running_loop().run_in_executor(background(), with_quality, prep, prep.upload, config)
    t0 = time.perf_counter()
    try:
        pred = await client.predict(prep.encoded)
        t_request = _ms(t0)
    finally:
        prep = await assessed
    return _finish(prep, pred, filename, t_request, t_total)
