"""Client configuration: one typed dataclass filled from env vars (and flags by each front end)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from clients.core.facecrop import DEFAULT_MARGIN
from serving.contract import DEFAULT_TARGET, MODEL_NAME, TARGET_ENV

_ENV = {
    "target": TARGET_ENV,
    "timeout_s": "DEEPFAKE_TIMEOUT_S",
    "retries": "DEEPFAKE_RETRIES",
    "max_bytes": "DEEPFAKE_MAX_BYTES",
    "max_pixels": "DEEPFAKE_MAX_PIXELS",
    "min_side": "DEEPFAKE_MIN_SIDE",
    "max_faces": "DEEPFAKE_MAX_FACES",
    "video_frames": "DEEPFAKE_VIDEO_FRAMES",
    "video_max_duration_s": "DEEPFAKE_VIDEO_MAX_DURATION_S",
    "video_max_pixels": "DEEPFAKE_VIDEO_MAX_PIXELS",
    "video_max_decoded_frames": "DEEPFAKE_VIDEO_MAX_DECODED_FRAMES",
}


@dataclass(frozen=True)
class ClientConfig:
    """Everything the client core needs to know, with safe defaults."""

    target: str = DEFAULT_TARGET
    timeout_s: float = 10.0
    retries: int = 3
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    min_side: int = 64
    work_long_side: int = 2048
    first_decode_long_side: int = 768
    """A large JPEG is first decoded at the smallest DCT scale whose long side reaches this (a 12 MP photo:
    1/4, 1000 px); it is decoded again at a larger scale only when a face's crop would be under the
    model's input size there."""
    detect_long_side: int = 512
    max_faces: int = 20
    min_face_px: int = 24
    crop_margin: float = DEFAULT_MARGIN
    model_name: str = MODEL_NAME
    video_frames: int = 32
    """Frames of a clip sampled evenly across it (keyframes met on the way may be added, see clients.core.video)."""
    video_max_duration_s: float = 300.0
    """Longest clip accepted, read from the container before anything is decoded."""
    video_max_pixels: int = 3840 * 2160
    """Largest frame accepted (4K UHD), read from the stream's header."""
    video_max_decoded_frames: int = 1500
    """Most frames decoded for one clip (targets and the frames between each keyframe and its target); the
    sampling falls back to keyframes where reaching a target would cost more."""
    video_max_packets: int = 100_000
    """Most packets read while indexing a clip's video stream (5 min at 300 fps): a stuffed file is refused."""
    video_work_long_side: int = 1280
    """Long side of a sampled frame's working image (boxes and crops refer to it)."""
    video_batch: int = 16
    """Face crops per Predict call for a clip (16 lossless 224 px PNGs are ~2.4 MB: under gRPC's default 4 MB
    message limit, which a server may keep)."""

    @property
    def draft_long_side(self) -> int:
        """The long side a large JPEG is usually decoded to (3/4 of work_long_side: a 12 MP photo at 1/2 scale)."""
        return self.work_long_side * 3 // 4

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "ClientConfig":
        """Defaults, then env vars (TF_SERVING_TARGET, DEEPFAKE_*), then explicit overrides."""
        env = os.environ if env is None else env
        types = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for name, var in _ENV.items():
            raw = env.get(var)
            if raw not in (None, ""):
                values[name] = _cast(types[name], raw, var)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


def _cast(type_name: str | type, raw: str, var: str):
    """Turn an env var string into the field's type, with a clear error naming the variable."""
    name = type_name if isinstance(type_name, str) else type_name.__name__
    try:
        if name == "int":
            return int(raw)
        if name == "float":
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{var}={raw!r} is not a valid {name}") from exc
    return raw
