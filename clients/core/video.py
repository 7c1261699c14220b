"""Video intake: recognise a clip by its bytes, refuse what is over a cap from the container's header (before any
frame is decoded), and decode only the sampled frames, by seeking to the keyframe before each.

PyAV (FFmpeg) reads the clip from memory (`av.open(io.BytesIO(data))`): nothing is written to disk. A clip is
opened once to probe and index it (packets only: timestamps and keyframe flags, no decoding), then once to decode
the planned frames. Frame numbers are positions in presentation order, read from the index, so they hold for
variable frame rates and animated GIFs' per-frame delays too.
"""
from __future__ import annotations

import bisect
import io
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from PIL import Image

from clients.core.config import ClientConfig
from clients.core.errors import (CorruptVideo, DetectorError, EmptyFile, NoVideoStream, NotAVideo, VideoFileTooLarge,
                                 VideoTooLarge, VideoTooLong, VideoTooManyFrames)

log = logging.getLogger(__name__)

VIDEO_TYPES = "MP4, MOV, WebM, MKV or animated GIF"
"""What a user may send as a clip, in words for messages."""

SNIFF_BYTES = 64
"""Leading bytes that tell a container apart (the EBML DocType of WebM sits in the first few dozen)."""

_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis",
                 b"crx ", b"jpx ", b"jp2 "}
"""ISO-BMFF major brands of still images (HEIF, AVIF, camera raw, JPEG 2000): an ftyp box alone is no video."""

KEYFRAME_EXTRA_FRACTION = 0.25
"""Keyframes decoded anyway on the way to a target join the sample, up to this share of the requested frames."""


def container_kind(head: bytes) -> str | None:
    """'MP4', 'MOV', 'WebM', 'MKV' or 'GIF' from a file's first bytes, else None (GIF may be a still image)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return "MOV" if brand == b"qt  " else "MP4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WebM" if b"webm" in head[:SNIFF_BYTES] else "MKV"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def gif_is_animated(data: bytes) -> bool:
    """Whether a GIF holds more than one frame (a still GIF stays with the photo path)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return bool(getattr(img, "is_animated", False))
    except Exception:  # noqa: BLE001 - an unreadable GIF is no clip; the photo path refuses it in its words
        return False


def is_video(data: bytes) -> bool:
    """Whether the bytes are a clip we check as video: MP4/MOV (ftyp), MKV/WebM (EBML) or an animated GIF."""
    kind = container_kind(data[:SNIFF_BYTES])
    if kind == "GIF":
        return gif_is_animated(data)
    return kind is not None


def _mb(n: int) -> str:
    """Bytes as megabytes for messages."""
    return f"{n / (1024 * 1024):.1f} MB"


def _duration_text(seconds: float) -> str:
    """A duration as people read it (2 h 5 min, 7 min 30 s, 45 s)."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def sample_positions(frame_count: int, n: int) -> list[int]:
    """n frame numbers spread evenly over the clip (the middle of n equal slices); every frame when it has fewer."""
    if frame_count <= 0 or n <= 0:
        return []
    if frame_count <= n:
        return list(range(frame_count))
    return [int((k + 0.5) * frame_count / n) for k in range(n)]


def keyframe_before(frame: int, keyframes: Sequence[int]) -> int:
    """The last keyframe at or before a frame (the first frame when the index shows none before it)."""
    i = bisect.bisect_right(keyframes, frame) - 1
    return keyframes[i] if i >= 0 else 0


@dataclass(frozen=True)
class DecodeStep:
    """One frame to reach: seek to `seek_to` first (a keyframe), or None to decode on from the previous step."""

    target: int
    seek_to: int | None
    cost: int
    """Frames decoded to reach the target (the target included)."""


def plan_decode(targets: Sequence[int], keyframes: Sequence[int]) -> list[DecodeStep]:
    """How to reach each target (ascending): decode on from the last one when no keyframe lies between, else
    seek to the keyframe before it; the cost is the frames decoded."""
    steps: list[DecodeStep] = []
    pos: int | None = None  # the next frame the decoder would give
    for t in sorted(set(targets)):
        k = keyframe_before(t, keyframes)
        if pos is not None and k < pos <= t:
            steps.append(DecodeStep(t, None, t - pos + 1))
        else:
            steps.append(DecodeStep(t, k, t - k + 1))
        pos = t + 1
    return steps


def plan_cost(steps: Sequence[DecodeStep]) -> int:
    """Frames a plan decodes."""
    return sum(s.cost for s in steps)


def fit_budget(targets: Sequence[int], keyframes: Sequence[int], budget: int) -> list[DecodeStep]:
    """The plan for the targets, with the dearest targets moved to their keyframe (one frame to decode) until the
    plan decodes at most `budget` frames."""
    chosen = sorted(set(targets))
    steps = plan_decode(chosen, keyframes)
    while plan_cost(steps) > budget:
        dear = max((s for s in steps if s.cost > 1), key=lambda s: s.cost, default=None)
        if dear is None:
            break
        chosen = sorted({keyframe_before(dear.target, keyframes) if t == dear.target else t for t in chosen})
        steps = plan_decode(chosen, keyframes)
    return steps


def with_keyframes(steps: Sequence[DecodeStep], keyframes: Sequence[int], spacing: float,
                   limit: int) -> list[DecodeStep]:
    """The plan plus the keyframes it decodes anyway (each seek lands on one) that are at least half a spacing
    from every target, at most `limit` of them: more views of the faces at no decoding cost."""
    targets = [s.target for s in steps]
    extra = []
    for s in steps:
        k = s.seek_to
        if k is None or k == s.target or len(extra) >= limit:
            continue
        if min(abs(k - t) for t in targets + extra) >= spacing / 2:
            extra.append(k)
    if not extra:
        return list(steps)
    return plan_decode(sorted(targets + extra), keyframes)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says of a clip, read before decoding."""

    container: str
    codec: str
    duration_s: float
    fps: float
    size: tuple[int, int]
    frame_count: int


@dataclass
class SampledFrame:
    """One decoded frame: its number in the clip, time, whether it is a keyframe, and its upright RGB image."""

    index: int
    time_s: float
    keyframe: bool
    image: Image.Image
    small: Image.Image | None = None
    """A copy no longer than config.detect_long_side, scaled from the decoded frame by FFmpeg on the decoding
    thread (None when the working image is no larger): the face search's first pass runs on it."""


@dataclass
class FrameIndex:
    """The video stream's packets in presentation order: timestamps (stream time base) and keyframe numbers."""

    pts: list[int]
    keyframes: list[int]
    time_base: float

    def frame_of(self, pts: int) -> int:
        """The frame number of a timestamp (the nearest one listed)."""
        i = bisect.bisect_left(self.pts, pts)
        if i >= len(self.pts):
            return len(self.pts) - 1
        if i > 0 and pts - self.pts[i - 1] < self.pts[i] - pts:
            return i - 1
        return i

    def time_of(self, frame: int) -> float:
        """Seconds from the first frame."""
        return (self.pts[frame] - self.pts[0]) * self.time_base


_AV_ERRORS: tuple[type[BaseException], ...] = (Exception,)
"""What PyAV/FFmpeg may raise on a broken file: its FFmpegError kinds, and plain ValueError, IndexError,
UnicodeDecodeError... from metadata. Every one becomes CorruptVideo (our own domain errors pass through)."""


@contextmanager
def _as_corrupt(stage: str) -> Iterator[None]:
    """Turn any error PyAV raises while `stage` runs into CorruptVideo (domain errors pass through)."""
    try:
        yield
    except DetectorError:
        raise
    except MemoryError:
        raise
    except _AV_ERRORS as exc:
        raise CorruptVideo(detail=f"{stage}: {type(exc).__name__}: {exc}") from None


def _open_container(data: bytes):
    """An FFmpeg demuxer on the bytes in memory (no file on disk)."""
    import av  # imported on first use: no FFmpeg loading at import time

    return av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")


class VideoUpload:
    """One clip: its bytes checked against every cap from the container's header and packet index (nothing decoded),
    then the sampled frames decoded on request, each by seeking to the keyframe before it."""

    def __init__(self, data: bytes, config: ClientConfig | None = None) -> None:
        self.data = data
        self.config = config or ClientConfig()
        self.decoded = 0
        """Frames the decoder has given so far (the cap's counter; tests read it)."""
        self.seeks = 0
        self.info, self.index = self._probe()

    def _probe(self) -> tuple[VideoInfo, FrameIndex]:
        """Refuse what is empty, too large, not a clip, without video, too long or too big; index the packets."""
        data, config = self.data, self.config
        if not data:
            raise EmptyFile(f"The file is empty. Please send a clip ({VIDEO_TYPES}).")
        if len(data) > config.max_bytes:
            raise VideoFileTooLarge(f"The video file is too large ({_mb(len(data))}). Please send a clip under "
                                    f"{_mb(config.max_bytes)}.", detail=f"{len(data)} bytes > {config.max_bytes}")
        kind = container_kind(data[:SNIFF_BYTES])
        if kind is None:
            raise NotAVideo(detail="no MP4/MOV, Matroska/WebM or GIF signature")
        with _as_corrupt("open"):
            try:
                container = _open_container(data)
            except Exception as exc:  # noqa: BLE001 - FFmpeg cannot even read the header: a broken file
                raise CorruptVideo(detail=f"open: {type(exc).__name__}: {exc}") from None
        with container, _as_corrupt("probe"):
            if not container.streams.video:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
                raise NoVideoStream(detail=f"streams: {kinds}")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            w, h = int(ctx.width or 0), int(ctx.height or 0)
            if w <= 0 or h <= 0:
                raise CorruptVideo(detail=f"frame size {w}x{h}")
            self._check_pixels(w, h)
            header_s = _header_duration(container, stream)
            if header_s is not None:
                self._check_duration(header_s)
            index = self._read_index(container, stream)
            duration = header_s if header_s else _index_duration(index, stream)
            self._check_duration(duration)
            fps = _fps(stream, index, duration)
            info = VideoInfo(container=kind, codec=str(ctx.name or ""), duration_s=round(duration, 3),
                             fps=round(fps, 3), size=(w, h), frame_count=len(index.pts))
        return info, index

    def _check_pixels(self, w: int, h: int) -> None:
        """Refuse frames over the resolution cap."""
        cap = self.config.video_max_pixels
        if w * h > cap:
            raise VideoTooLarge(f"The clip's picture is too large to check ({w}x{h}, {w * h / 1e6:.1f} MP). Please "
                                f"send a clip of at most {cap / 1e6:.1f} MP (4K is 3840x2160).",
                                detail=f"{w}x{h} > {cap} px")

    def _check_duration(self, seconds: float) -> None:
        """Refuse a clip longer than the duration cap."""
        cap = self.config.video_max_duration_s
        if seconds > cap:
            raise VideoTooLong(f"The clip is too long to check ({_duration_text(seconds)}). Please send a clip of at "
                               f"most {_duration_text(cap)}, or cut out the part to check.",
                               detail=f"{seconds:.1f} s > {cap} s")

    def _read_index(self, container, stream) -> FrameIndex:
        """Every video packet's timestamp and keyframe flag (demuxing only), capped at config.video_max_packets."""
        cap = self.config.video_max_packets
        stamps: list[tuple[int, bool]] = []
        for n, packet in enumerate(container.demux(stream)):
            if packet.size == 0 and packet.pts is None:
                continue  # the demuxer's end-of-stream marker
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None:
                ts = stamps[-1][0] + 1 if stamps else 0
            stamps.append((int(ts), bool(packet.is_keyframe)))
            if n >= cap:
                raise VideoTooManyFrames(f"The clip has too many frames to check (over {cap:,}). Please send a "
                                         f"shorter clip.", detail=f"packets > {cap}")
        if not stamps:
            raise CorruptVideo(detail="the video stream has no frames")
        stamps.sort()
        pts, keys = [], []
        for ts, key in stamps:
            if pts and ts == pts[-1]:
                continue  # a repeated timestamp: one frame
            if key:
                keys.append(len(pts))
            pts.append(ts)
        if not keys or keys[0] != 0:
            keys.insert(0, 0)  # decoding starts at the stream's first frame whatever its flag says
        return FrameIndex(pts, keys, float(stream.time_base or 0) or 1 / 1000)

    def plan(self, n: int | None = None) -> list[DecodeStep]:
        """The decode plan for n evenly spread frames (config.video_frames), within the decode cap, plus the
        keyframes it passes anyway."""
        n = self.config.video_frames if n is None else n
        count = len(self.index.pts)
        targets = sample_positions(count, n)
        budget = self.config.video_max_decoded_frames
        if len(targets) > budget:
            targets = sample_positions(count, budget)
        steps = fit_budget(targets, self.index.keyframes, budget)
        extra = int(n * KEYFRAME_EXTRA_FRACTION)
        planned = with_keyframes(steps, self.index.keyframes, count / max(1, len(targets)), extra)
        return planned if plan_cost(planned) <= budget else steps

    def frames(self, steps: Sequence[DecodeStep] | None = None,
               on_frame: Callable[[SampledFrame], None] | None = None) -> Iterator[SampledFrame]:
        """Decode the planned frames (self.plan() by default), in order, each as an upright RGB working image."""
        steps = list(self.plan() if steps is None else steps)
        if not steps:
            return
        keyset = set(self.index.keyframes)
        with _as_corrupt("decode"):
            container = _open_container(self.data)
        with container:
            decoder: _Decoder | None = None
            given, last = 0, -1
            for step in steps:
                try:
                    with _as_corrupt("decode"):
                        if decoder is None or step.seek_to is not None:
                            decoder = self._seek(container, step.seek_to or 0)
                        frame = decoder.decode_to(self.index.pts[step.target])
                except CorruptVideo as exc:
                    if not given:
                        raise
                    log.info("clip decoding stopped after %d sampled frames: %s", given, exc.detail)
                    break  # a broken packet further on: keep the frames decoded before it
                if frame is None:
                    break  # the stream ended early (a truncated file): keep what was decoded
                index = self.index.frame_of(frame.pts) if frame.pts is not None else step.target
                if index <= last:
                    continue  # a frame missing from the stream made an earlier step land here already
                last = index
                image, small = self._images(frame)
                sampled = SampledFrame(index, round(self.index.time_of(index), 3), index in keyset, image, small)
                given += 1
                if on_frame is not None:
                    on_frame(sampled)
                yield sampled

    def _seek(self, container, frame: int) -> "_Decoder":
        """A decoder positioned at the keyframe `frame` (FFmpeg's seek also flushes the codec's buffers)."""
        self.seeks += 1
        stream = container.streams.video[0]
        container.seek(self.index.pts[frame], stream=stream, backward=True, any_frame=False)
        return _Decoder(container, stream, self)

    def count_decoded(self) -> None:
        """One more frame out of the decoder; refuse the clip past the decode cap."""
        self.decoded += 1
        cap = self.config.video_max_decoded_frames
        if self.decoded > cap:
            raise VideoTooManyFrames(f"The clip needs more than {cap:,} frames decoded to check. Please send a "
                                     f"shorter clip.", detail=f"decoded > {cap}")

    def _images(self, frame) -> tuple[Image.Image, Image.Image | None]:
        """The frame as an upright RGB image no longer than config.video_work_long_side, and the face search's
        smaller copy (config.detect_long_side) when the working image is larger than that. A YUV frame is scaled
        before the conversion to RGB, and the small copy is scaled from the scaled frame: about half the work of
        converting at full size first."""
        rotation = int(getattr(frame, "rotation", 0) or 0)
        work = _scaled(frame, self.config.video_work_long_side)
        image = upright(work.to_image(), rotation)
        if max(image.size) <= self.config.detect_long_side:
            return image, None
        return image, upright(_scaled(work, self.config.detect_long_side).to_image(), rotation)


SKIPPABLE_CODECS = {"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "h263"}
"""Decoders that skip non-reference frames correctly (AVDISCARD_NONREF): on the way to a target, frames no other
frame is predicted from are not decoded at all (x264's B-frames: about half of an H.264 stream's frames)."""


class _Decoder:
    """Packets of the video stream decoded one by one up to a target timestamp, non-reference frames before the
    target skipped where the codec allows it (a skipped frame cannot change any frame decoded after it)."""

    def __init__(self, container, stream, upload: VideoUpload) -> None:
        self.packets = container.demux(stream)
        self.ctx = stream.codec_context
        self.skip = self.ctx.name in SKIPPABLE_CODECS
        self.upload = upload
        self.pending: list = []

    def decode_to(self, target_pts: int):
        """The target frame (or the first shown after it); None when the stream ends first."""
        while True:
            while self.pending:
                frame = self.pending.pop(0)
                self.upload.count_decoded()
                if frame.pts is not None and frame.pts >= target_pts:
                    return frame
            packet = next(self.packets, None)
            if packet is None:
                return None
            if self.skip:
                self.ctx.skip_frame = "DEFAULT" if packet.pts is None or packet.pts == target_pts else "NONREF"
            self.pending = list(self.ctx.decode(packet))


SCALE_INTERPOLATION = "AREA"
"""swscale's area averaging: an antialiased downscale, cheaper than its bilinear (4.1 against 6.0 ms for 1080p to
720p RGB here)."""


def _scaled(frame, long_side: int):
    """The frame no longer than long_side: scaled by FFmpeg (swscale) in its own YUV planes, or straight to RGB for
    other pixel formats (a GIF's palette); the frame itself when it is small enough."""
    w, h = frame.width, frame.height
    scale = min(1.0, long_side / max(w, h))
    if scale >= 1.0:
        return frame
    size = {"width": max(2, round(w * scale)), "height": max(2, round(h * scale)),
            "interpolation": SCALE_INTERPOLATION}
    if frame.format.name.startswith("yuv"):
        return frame.reformat(**size)
    return frame.reformat(format="rgb24", **size)


def upright(image: Image.Image, rotation: int) -> Image.Image:
    """The image turned by the stream's display rotation (degrees counterclockwise, as FFmpeg reports it)."""
    turns = {90: Image.Transpose.ROTATE_90, -90: Image.Transpose.ROTATE_270, 270: Image.Transpose.ROTATE_270,
             180: Image.Transpose.ROTATE_180, -180: Image.Transpose.ROTATE_180}
    return image.transpose(turns[rotation]) if rotation in turns else image


def _header_duration(container, stream) -> float | None:
    """The clip's duration in seconds as its header states it (stream, else container), None when unstated."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _index_duration(index: FrameIndex, stream) -> float:
    """The duration the packet timestamps span (one frame's length added)."""
    span = (index.pts[-1] - index.pts[0]) * index.time_base
    step = span / (len(index.pts) - 1) if len(index.pts) > 1 else 0.0
    return float(span + step)


def _fps(stream, index: FrameIndex, duration: float) -> float:
    """Frames per second: the stream's average rate, else frames over duration."""
    rate = stream.average_rate
    if rate and math.isfinite(float(rate)) and float(rate) > 0:
        return float(rate)
    return len(index.pts) / duration if duration > 0 else 0.0
