"""The whole check of one clip: intake and caps -> sampled frames (seeking) -> faces -> tracks -> crops in a few
batched requests -> per-track scores -> a ClipVerdict, with the photo path's face detector, crop rule and label rules.

Decoding runs on a worker thread while faces are searched on the frames already decoded (PyAV and OpenCV's nets
release the GIL), so on two cores the two overlap; each batch of crops is sent as soon as it is full, so the model
server works on the first faces while later frames are still being searched."""
from __future__ import annotations

import asyncio
import hashlib
import queue
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

from PIL import Image

from clients.core.aggregate import DEFAULT_RULE, driving_frames, rule_description, track_score
from clients.core.analyze import Analysis, analyze, analyze_async, encode_crop
from clients.core.clip_verdict import ClipVerdict, FrameFace, FrameResult, TrackResult
from clients.core.config import ClientConfig
from clients.core.detector import AsyncDetector, Detector
from clients.core.facecrop import Box, square_box
from clients.core.faces import FALLBACKS, detect_with, first_pass
from clients.core.grpc_client import Prediction
from clients.core.tracks import group_by_track, link_tracks
from clients.core.verdict import Label, QualityWarning
from clients.core.video import SampledFrame, VideoInfo, VideoUpload, is_video
from clients.core.workers import background, lazy_pool
from serving.contract import confidence_for, label_for

Progress = Callable[[int, int], None]
"""progress(done, total): called after each sampled frame is decoded and searched for faces, and once more when the
model has answered (done == total)."""

_requests = lazy_pool(2, "clip-predict")
"""Threads that carry a clip's Predict calls while its later frames are still being searched for faces."""

FEW_FACES_FRACTION = 0.25
"""Below this share of sampled frames with a face, the verdict carries a warning: it rests on few views."""


FALLBACK_AFTER_MISSES = 4
"""Sampled frames in a row on which no pass found a face, after which a clip's fallback passes (finer, padded) run
only on every FALLBACK_EVERY-th frame: they were two of the three MTCNN passes each frame of a face-less clip paid
(1080p, 32 frames: 96 passes, ~3.8 s of CPU against ~2.4 s for a clip with faces)."""

FALLBACK_EVERY = 4
"""In a face-less stretch the fallback passes run on one sampled frame in this many, so a face only they find (one
filling the frame, a small one) is picked up within this many frames; the first pass still runs on every frame."""


@dataclass
class FallbackPolicy:
    """Which fallback passes a clip's next sampled frame runs, from what its earlier frames found (one per clip)."""

    misses: int = 0
    """Sampled frames in a row on which no pass found a face."""
    last: str | None = None
    """The fallback pass that found the latest faces it found: tried first, as a face filling the frame stays so."""

    def fallbacks(self) -> tuple[str, ...]:
        """All fallback passes (the last successful one first), but none on most frames of a face-less stretch."""
        stretch = self.misses - FALLBACK_AFTER_MISSES
        if stretch >= 0 and stretch % FALLBACK_EVERY != FALLBACK_EVERY - 1:
            return ()
        if self.last in FALLBACKS:
            return (self.last, *(p for p in FALLBACKS if p != self.last))
        return FALLBACKS

    def record(self, found_by: str | None) -> None:
        """Note which pass found faces on the frame just searched (None: none did)."""
        self.misses = 0 if found_by else self.misses + 1
        if found_by in FALLBACKS:
            self.last = found_by


@dataclass
class ClipAnalysis:
    """A clip verdict plus what front ends draw: the sampled frames' working images (boxes refer to them), each
    face's heatmap and crop keyed by (frame index, track id)."""

    verdict: ClipVerdict
    frames: dict[int, Image.Image] = field(default_factory=dict)
    heatmaps: dict[tuple[int, int], list[list[float]]] = field(default_factory=dict)
    crops: dict[tuple[int, int], Image.Image] = field(default_factory=dict)
    decoded_frames: int = 0
    """Frames the decoder gave to reach the sampled ones (keyframes and the frames between included)."""


@dataclass
class PreparedClip:
    """The CPU part of a clip check: sampled frames, faces, tracks, crops and their encodings."""

    info: VideoInfo
    frames: list[SampledFrame]
    boxes: list[list[Box]]
    track_ids: list[list[int]]
    keys: list[tuple[int, int]]
    """(frame index, track id) of each crop, in request order."""
    crops: list[Image.Image]
    encoded: list[bytes]
    warnings: list[QualityWarning]
    sha256: str
    timings_ms: dict[str, float]
    planned: int = 0
    decoded: int = 0


def _ms(t0: float) -> float:
    """Milliseconds since t0, rounded for JSON."""
    return round(1000.0 * (time.perf_counter() - t0), 1)


_DONE = object()


def _decoded_frames(upload: VideoUpload, steps) -> Iterable[SampledFrame]:
    """The planned frames as they are decoded on a worker thread (a few ahead of the caller, never more)."""
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = []

    def produce() -> None:
        try:
            for frame in upload.frames(steps):
                if stop:
                    return
                q.put(frame)
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            q.put(exc)

    job = background().submit(produce)
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.append(True)
        while not job.done():  # unblock a producer waiting on a full queue, then let it end
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass


class Sender:
    """Sends a clip's encoded crops in batches of `size` as they come (`send(batch)` returns a Future of its
    Prediction), so requests overlap the search for faces on later frames; answers are kept in order."""

    def __init__(self, send: Callable[[list[bytes]], Future], size: int) -> None:
        self.send = send
        self.size = max(1, size)
        self.waiting: list[bytes] = []
        self.sent: list[Future] = []

    def add(self, encoded: list[bytes]) -> None:
        """Queue crops; send every full batch."""
        self.waiting.extend(encoded)
        while len(self.waiting) >= self.size:
            self.sent.append(self.send(self.waiting[:self.size]))
            del self.waiting[:self.size]

    def flush(self) -> list[Future]:
        """Send what is left (a last, smaller batch); the futures of every batch, in order."""
        if self.waiting:
            self.sent.append(self.send(self.waiting))
            self.waiting = []
        return self.sent


def prepare_clip(data: bytes | VideoUpload, config: ClientConfig, progress: Progress | None = None,
                 sender: Sender | None = None) -> PreparedClip:
    """The CPU part of a clip check: caps, sampled frames, faces on each, tracks, crops and their encodings (handed
    to `sender` as they are made, when there is one)."""
    t_total = time.perf_counter()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    upload = data if isinstance(data, VideoUpload) else VideoUpload(data, config)
    sha = hashlib.sha256(upload.data).hexdigest()
    steps = upload.plan()
    timings["probe"] = _ms(t0)
    total = len(steps) + 1
    frames: list[SampledFrame] = []
    boxes: list[list[Box]] = []
    cut: list[list[tuple[Image.Image, bytes]]] = []
    t_faces = t_crops = 0.0
    policy = FallbackPolicy()
    t0 = time.perf_counter()
    for frame in _decoded_frames(upload, steps):  # decoding runs ahead on a worker thread
        t1 = time.perf_counter()
        coarse = first_pass(frame.small, config) if frame.small is not None else None
        frame.small = None  # searched: not kept with the working images
        # further passes only when the first found nothing, and as the clip's earlier frames advise
        faces, found_by = detect_with(frame.image, config, coarse, policy.fallbacks())
        policy.record(found_by)
        found = [f.box for f in faces]
        t2 = time.perf_counter()
        cut.append([encode_crop(frame.image.crop(square_box(b, frame.image.size, config.crop_margin))) for b in found])
        t_crops += time.perf_counter() - t2
        if sender is not None:
            sender.add([png for _, png in cut[-1]])
        t_faces += t2 - t1
        frames.append(frame)
        boxes.append(found)
        if progress is not None:
            progress(len(frames), total)
    timings["decode_and_faces"] = _ms(t0)
    timings["faces"] = round(1000.0 * t_faces, 1)
    t0 = time.perf_counter()
    track_ids = link_tracks(boxes)
    keys, crops, encoded = [], [], []
    for frame, pairs, ids in zip(frames, cut, track_ids):
        for (crop, png), tid in zip(pairs, ids):
            keys.append((frame.index, tid))
            crops.append(crop)
            encoded.append(png)
    timings["tracks"] = _ms(t0)
    timings["crops"] = round(1000.0 * t_crops, 1)
    timings["prepare"] = _ms(t_total)
    warnings = clip_warnings(len(steps), frames, boxes)
    return PreparedClip(upload.info, frames, boxes, track_ids, keys, crops, encoded, warnings, sha, timings,
                        planned=len(steps), decoded=upload.decoded)


def clip_warnings(planned: int, frames: list[SampledFrame], boxes: list[list[Box]]) -> list[QualityWarning]:
    """What limits trust in a clip verdict: frames that could not be decoded, faces seen on few frames."""
    out = []
    if len(frames) < planned:
        out.append(QualityWarning("clip_cut", f"Only {len(frames)} of the {planned} frames to check could be "
                                              "decoded (the file may be cut off): the rest of the clip was not seen."))
    with_face = sum(1 for b in boxes if b)
    if frames and 0 < with_face < FEW_FACES_FRACTION * len(frames):
        out.append(QualityWarning("few_face_frames", f"A face was found on only {with_face} of {len(frames)} "
                                                     "checked frames: the verdict rests on few views."))
    return out


def merge_predictions(parts: list[Prediction]) -> Prediction:
    """One Prediction from a clip's batches (threshold, band and version of the last answer)."""
    last = parts[-1]
    return Prediction(fake_probability=[p for part in parts for p in part.fake_probability],
                      heatmaps=[h for part in parts for h in part.heatmaps], threshold=last.threshold,
                      uncertain_band=last.uncertain_band, model_name=last.model_name,
                      model_version=last.model_version)


def no_face_prediction(detector_info) -> Prediction:
    """An empty Prediction carrying the answering version's threshold and band (no crop was sent)."""
    return Prediction([], [], detector_info.threshold, tuple(detector_info.uncertain_band), detector_info.name,
                      detector_info.version)


def build_clip_verdict(prep: PreparedClip, pred: Prediction, filename: str, rule: str = DEFAULT_RULE) -> ClipVerdict:
    """Per-frame scores, per-track scores by the rule and labels with the answering version's threshold and band;
    the most suspicious track decides the clip (no face anywhere: no tracks, no real/fake verdict)."""
    threshold, band = pred.threshold, (round(pred.uncertain_band[0], 6), round(pred.uncertain_band[1], 6))
    score = {key: round(float(p), 6) for key, p in zip(prep.keys, pred.fake_probability)}
    frames = []
    for frame, frame_boxes, ids in zip(prep.frames, prep.boxes, prep.track_ids):
        faces = [FrameFace(tid, box.as_tuple(), score[(frame.index, tid)]) for box, tid in zip(frame_boxes, ids)]
        frames.append(FrameResult(frame.index, frame.time_s, frame.keyframe, faces))
    tracks = []
    for tid, members in sorted(group_by_track(prep.track_ids).items()):
        indices = [prep.frames[f].index for f, _ in members]
        scores = [score[(i, tid)] for i in indices]
        p = round(track_score(scores, rule), 6)
        label = Label(label_for(p, threshold, band))
        tracks.append(TrackResult(tid, p, label, round(confidence_for(p, label), 6), indices, scores,
                                  [indices[i] for i in driving_frames(scores, rule)]))
    info = prep.info
    common = dict(threshold=round(threshold, 6), uncertain_band=band, tracks=tracks, frames=frames,
                  rule=rule_description(rule), model_name=pred.model_name, model_version=pred.model_version,
                  duration_s=info.duration_s, fps=info.fps, video_size=info.size, container=info.container,
                  codec=info.codec, timings_ms=dict(prep.timings_ms), warnings=list(prep.warnings),
                  sha256=prep.sha256, filename=filename)
    if not tracks:
        return ClipVerdict(label=Label.NO_FACE, fake_probability=0.0, confidence=0.0, **common)
    top = max(tracks, key=lambda t: t.fake_probability)
    return ClipVerdict(label=top.label, fake_probability=top.fake_probability, confidence=top.confidence, **common)


def _assemble(prep: PreparedClip, pred: Prediction, filename: str, t_request: float, t_total: float) -> ClipAnalysis:
    """The ClipAnalysis: verdict with timings, working images, heatmaps and crops keyed by (frame, track)."""
    verdict = build_clip_verdict(prep, pred, filename)
    verdict.timings_ms["request"] = t_request
    verdict.timings_ms["total"] = _ms(t_total)
    heatmaps = {key: h for key, h in zip(prep.keys, pred.heatmaps)}
    crops = dict(zip(prep.keys, prep.crops))
    images = {f.index: f.image for f in prep.frames}
    return ClipAnalysis(verdict=verdict, frames=images, heatmaps=heatmaps, crops=crops, decoded_frames=prep.decoded)


def analyze_clip(data: bytes, filename: str, detector: Detector, config: ClientConfig | None = None,
                 progress: Progress | None = None) -> ClipAnalysis:
    """Check one clip with a Detector; raises InvalidVideo kinds (EmptyFile for zero bytes) or
    DetectorUnavailable/ModelError. progress(done, total) is called on this thread."""
    config = config or ClientConfig.from_env()
    t_total = time.perf_counter()
    sender = Sender(lambda batch: _requests().submit(detector.predict, batch), config.video_batch)
    prep = prepare_clip(data, config, progress, sender)
    sent = sender.flush()
    t0 = time.perf_counter()
    if prep.encoded:
        pred = merge_predictions([f.result() for f in sent])
    else:
        pred = no_face_prediction(detector.model_info())
    t_request = _ms(t0)
    if progress is not None:
        progress(prep.planned + 1, prep.planned + 1)
    return _assemble(prep, pred, filename, t_request, t_total)


async def analyze_clip_async(data: bytes, filename: str, detector: AsyncDetector, config: ClientConfig | None = None,
                             progress: Progress | None = None) -> ClipAnalysis:
    """The asyncio twin of analyze_clip: the CPU part runs in a worker thread, and progress(done, total) is called
    on the event loop's thread (so a bot may schedule a message edit from it)."""
    config = config or ClientConfig.from_env()
    loop = asyncio.get_running_loop()
    t_total = time.perf_counter()
    on_loop = None if progress is None else (lambda done, total: loop.call_soon_threadsafe(progress, done, total))
    sender = Sender(lambda batch: asyncio.run_coroutine_threadsafe(detector.predict(batch), loop), config.video_batch)
    prep = await asyncio.to_thread(prepare_clip, data, config, on_loop, sender)
    sent = sender.flush()
    t0 = time.perf_counter()
    if prep.encoded:
        pred = merge_predictions([await asyncio.wrap_future(f) for f in sent])
    else:
        pred = no_face_prediction(await detector.model_info())
    t_request = _ms(t0)
    if progress is not None:
        progress(prep.planned + 1, prep.planned + 1)
    return _assemble(prep, pred, filename, t_request, t_total)


def analyze_any(data: bytes, filename: str, detector: Detector,
                config: ClientConfig | None = None, progress: Progress | None = None) -> Analysis | ClipAnalysis:
    """A photo's Analysis or a clip's ClipAnalysis, whichever the bytes are (by content, not name)."""
    if is_video(data):
        return analyze_clip(data, filename, detector, config, progress)
    return analyze(data, filename, detector, config)


async def analyze_any_async(data: bytes, filename: str, detector: AsyncDetector, config: ClientConfig | None = None,
                            progress: Progress | None = None) -> Analysis | ClipAnalysis:
    """The asyncio twin of analyze_any."""
    if is_video(data):
        return await analyze_clip_async(data, filename, detector, config, progress)
    return await analyze_async(data, filename, detector, config)
