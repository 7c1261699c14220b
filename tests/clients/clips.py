"""Tiny video clips made in memory with PyAV for the video tests of every front end: moving faces, no faces, every
container we accept, and the bad inputs (audio only, a "10-hour" clip of three frames, a huge frame, truncations).

Each clip is a few KB and made in milliseconds (160x120, 2 s at 10 fps by default), so tests stay fast. Faces come
from the shared data (the test skips with the reason when it is absent) or are drawn (tests.clients.synthetic), so
a test that only needs *a* face never skips."""
from __future__ import annotations

import io
from fractions import Fraction
from functools import lru_cache

import av
import numpy as np
from PIL import Image

from clients.core.facecrop import Box
from tests.clients.images import FACE_CROP_SOURCES, noise_photo, shared_faces
from tests.clients.synthetic import clean_face

SIZE = (160, 120)
FPS = 10
SECONDS = 2.0

CONTAINERS = {"mp4": ("mp4", "libx264"), "mov": ("mov", "libx264"), "mkv": ("matroska", "libx264"),
              "webm": ("webm", "libvpx-vp9")}
"""Our short names -> (PyAV/FFmpeg muxer, video encoder)."""


def face_images(n: int, source: str = "shared", seed: int = 0) -> list[Image.Image]:
    """n face pictures: crops from the shared data (skips without it) or drawn synthetic portraits."""
    if source == "shared":
        return shared_faces(n, seed=seed, sources=FACE_CROP_SOURCES)
    return [clean_face((200, 240), Box(40, 40, 120, 160), seed=seed + i)[0] for i in range(n)]


def face_path(index: int, n_frames: int, size: tuple[int, int], side: int, lane: int = 0,
              lanes: int = 1) -> tuple[int, int]:
    """Where a face of `side` px is on frame `index`: it drifts left to right across its lane (top left corner)."""
    w, h = size
    span = max(0, w // lanes - side)
    x = lane * (w // lanes) + (span * index // max(1, n_frames - 1))
    y = max(0, (h - side) // 2 + (index % 3) - 1)
    return x, y


def face_frames(n_frames: int, size: tuple[int, int] = SIZE, faces: int = 1, source: str = "shared",
                seed: int = 0, side: int | None = None) -> list[Image.Image]:
    """n_frames scenes with `faces` faces moving slowly across them (faces=0: the background only)."""
    pics = face_images(faces, source, seed) if faces else []
    side = side or int(min(size[0] / max(1, faces), size[1]) * 0.7)
    background = noise_photo(size, seed)
    scaled = [p.resize((side, side), Image.Resampling.LANCZOS) for p in pics]
    frames = []
    for i in range(n_frames):
        scene = background.copy()
        for lane, pic in enumerate(scaled):
            scene.paste(pic, face_path(i, n_frames, size, side, lane, faces))
        frames.append(scene)
    return frames


def encode_frames(frames: list[Image.Image], fps: float = FPS, kind: str = "mp4", **options: str) -> bytes:
    """Frames encoded as a clip in memory (kind: mp4, mov, mkv, webm or gif); options go to the encoder."""
    if kind == "gif":
        return animated_gif(frames, fps)
    fmt, codec = CONTAINERS[kind]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", **options} if codec == "libx264" else dict(options)
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_image(frame)))
        out.mux(stream.encode())
    return buf.getvalue()


def animated_gif(frames: list[Image.Image], fps: float = FPS) -> bytes:
    """An animated GIF of the frames (Pillow), as a messenger's 'animation' arrives."""
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()


@lru_cache(maxsize=32)
def face_clip(kind: str = "mp4", seconds: float = SECONDS, fps: float = FPS, size: tuple[int, int] = SIZE,
              faces: int = 1, source: str = "shared", seed: int = 0, keyint: int | None = None) -> bytes:
    """A tiny clip of moving faces (kind: mp4, mov, mkv, webm, gif); keyint sets H.264's keyframe interval."""
    frames = face_frames(max(1, round(seconds * fps)), size, faces, source, seed)
    options = {"g": str(keyint)} if keyint else {}
    return encode_frames(frames, fps, kind, **options)


@lru_cache(maxsize=4)
def faceless_clip(kind: str = "mp4", seconds: float = SECONDS, fps: float = FPS, size: tuple[int, int] = SIZE) -> bytes:
    """A tiny clip of a face-less scene (no verdict must come of it)."""
    return encode_frames(face_frames(max(1, round(seconds * fps)), size, faces=0), fps, kind)


def filling_face_frames(face: Image.Image, n_frames: int, side: int = 256, lead: int = 0, trim: float = 0.15,
                        seed: int = 0) -> list[Image.Image]:
    """`lead` face-less frames, then n_frames of one face crop trimmed by `trim` a side so the face fills the frame
    (a selfie clip, a clip of face crops), drifting by a pixel or two from frame to frame."""
    w, h = face.size
    frames = [noise_photo((side, side), seed + i) for i in range(lead)]
    for i in range(n_frames):
        dx, dy = i % 5 - 2, (i // 2) % 3 - 1
        box = (int(w * trim) + dx, int(h * trim) + dy, int(w * (1 - trim)) + dx, int(h * (1 - trim)) + dy)
        frames.append(face.crop(box).resize((side, side), Image.Resampling.LANCZOS))
    return frames


def numbered_clip(n_frames: int = 60, fps: float = 30, keyint: int = 12, size: tuple[int, int] = (64, 48),
                  kind: str = "mp4", bframes: int = 0) -> bytes:
    """A clip whose frame i shows grey level (i * 4) % 256 in its top-left block (which frame was decoded is read
    back from the pixels), keyframes every `keyint` frames (H.264: exactly, and `bframes` B-frames; VP9: at most)."""
    frames = []
    for i in range(n_frames):
        arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        arr[:16, :16] = (i * 4) % 256
        frames.append(Image.fromarray(arr))
    if CONTAINERS[kind][1] != "libx264":
        return encode_frames(frames, fps, kind, g=str(keyint))
    return encode_frames(frames, fps, kind, g=str(keyint), keyint_min=str(keyint), sc_threshold="0", bf=str(bframes))


def frame_number(image: Image.Image) -> int:
    """Which numbered_clip frame an image shows (from its top-left block's grey level, up to 64 frames apart)."""
    level = float(np.asarray(image.convert("L"))[2:14, 2:14].mean())
    return int(round(level / 4))


def audio_only(kind: str = "mp4") -> bytes:
    """A container holding one short audio stream and no video (AAC in MP4, Opus in WebM/MKV)."""
    fmt, codec = {"mp4": ("mp4", "aac"), "mov": ("mov", "aac"), "webm": ("webm", "libopus"),
                  "mkv": ("matroska", "libopus")}[kind]
    rate = 48000
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        samples = 960 if codec == "libopus" else 1024
        t = np.arange(rate // 2) / rate
        wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        fmt_name = "flt" if codec == "libopus" else "fltp"
        for start in range(0, len(wave) - samples + 1, samples):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + samples], format=fmt_name, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def long_clip(hours: float = 10.0, kind: str = "mp4") -> bytes:
    """A clip whose container says it lasts `hours` hours, made of three tiny frames far apart in time: a cap on
    duration must refuse it from the header, without decoding."""
    fmt, _ = CONTAINERS[kind]
    end = int(hours * 3600)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height = 64, 48
        stream.pix_fmt = "yuv420p"
        for i, t in enumerate((0, end // 2, end - 1)):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 48), (80 * i, 90, 100)))
            frame.pts, frame.time_base = t, Fraction(1, 1)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


@lru_cache(maxsize=1)
def huge_clip(size: tuple[int, int] = (4096, 2304)) -> bytes:
    """One flat frame over 4K UHD's pixel count (9.4 MP against 8.3), H.264 in MP4 (~0.5 s to make)."""
    return encode_frames([Image.new("RGB", size, (120, 110, 100))], 1, "mp4")


def truncated(data: bytes, fraction: float = 0.5) -> bytes:
    """The first `fraction` of a file, as a cut-off upload arrives."""
    return data[: max(1, int(len(data) * fraction))]
