"""The typed result of checking one video clip: per face track, per sampled frame, and the clip's label under the
same label rules and uncertain band as a photo. Every front end (CLI JSON, page, bot, PDF) renders this one object."""
from __future__ import annotations

from dataclasses import dataclass, field

from clients.core.verdict import LABEL_WORDS, JsonResult, Label, QualityWarning, band_text, score_text


@dataclass
class FrameFace:
    """One face found on one sampled frame, with the model's score for its crop."""

    track_id: int
    box: tuple[int, int, int, int]
    """(x, y, w, h) in the frame's working image."""
    fake_probability: float

    @classmethod
    def from_dict(cls, d: dict) -> "FrameFace":
        """Rebuild from `asdict` output."""
        return cls(track_id=int(d["track_id"]), box=tuple(d["box"]), fake_probability=float(d["fake_probability"]))


@dataclass
class FrameResult:
    """One sampled frame: where it is in the clip and the faces scored on it (empty when none was found)."""

    index: int
    """Frame number in the stream (0-based, by presentation order)."""
    time_s: float
    keyframe: bool = False
    faces: list[FrameFace] = field(default_factory=list)

    @property
    def top_score(self) -> float | None:
        """The frame's most suspicious face score (None without faces)."""
        return max((f.fake_probability for f in self.faces), default=None)

    @classmethod
    def from_dict(cls, d: dict) -> "FrameResult":
        """Rebuild from `asdict` output."""
        return cls(index=int(d["index"]), time_s=float(d["time_s"]), keyframe=bool(d.get("keyframe", False)),
                   faces=[FrameFace.from_dict(f) for f in d.get("faces", [])])


@dataclass
class TrackResult:
    """One person across the sampled frames: the aggregated score and label, and the frames that drove it."""

    track_id: int
    fake_probability: float
    label: Label
    confidence: float
    frame_indices: list[int]
    """Stream frame numbers where this face was seen, in time order (parallel to frame_scores)."""
    frame_scores: list[float]
    driving_frames: list[int]
    """Stream frame numbers of the frames that decided the score, most suspicious first."""

    def __post_init__(self) -> None:
        """A label given as its word (from JSON) becomes the Label."""
        self.label = Label(self.label)

    @classmethod
    def from_dict(cls, d: dict) -> "TrackResult":
        """Rebuild from `asdict` output."""
        return cls(track_id=int(d["track_id"]), fake_probability=float(d["fake_probability"]), label=d["label"],
                   confidence=float(d["confidence"]), frame_indices=[int(i) for i in d["frame_indices"]],
                   frame_scores=[float(s) for s in d["frame_scores"]],
                   driving_frames=[int(i) for i in d["driving_frames"]])


@dataclass
class ClipVerdict(JsonResult):
    """The clip's label (its most suspicious face track decides), per-track and per-frame results, provenance."""

    label: Label
    fake_probability: float
    confidence: float
    threshold: float
    uncertain_band: tuple[float, float]
    tracks: list[TrackResult]
    frames: list[FrameResult]
    rule: str
    """The aggregation rule in words (clients.core.aggregate.rule_description)."""
    model_name: str
    model_version: int
    duration_s: float
    fps: float
    video_size: tuple[int, int]
    container: str = ""
    codec: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[QualityWarning] = field(default_factory=list)
    sha256: str = ""
    filename: str = ""
    kind: str = "video"

    def __post_init__(self) -> None:
        """A label given as its word (from JSON) becomes the Label."""
        self.label = Label(self.label)

    @property
    def no_face(self) -> bool:
        """True when no sampled frame showed a face: there is no real/fake verdict then."""
        return not self.tracks

    @property
    def shown_label(self) -> Label:
        """The label a front end shows: NO_FACE when no face was found in any sampled frame."""
        return Label.NO_FACE if self.no_face else self.label

    @property
    def headline(self) -> str:
        """The first line every front end shows, as for a photo."""
        if self.no_face:
            return "No face found in the sampled frames: no real/fake verdict"
        if self.label == Label.UNCERTAIN:
            return f"Uncertain: {self.detail}"
        return f"{LABEL_WORDS.get(self.label, self.label)} (confidence {self.confidence:.0%})"

    @property
    def detail(self) -> str:
        """The numbers beside the label word."""
        if self.no_face:
            return f"{len(self.frames)} frames checked, none showed a face"
        score = score_text(self.fake_probability)
        people = f"{len(self.tracks)} face track{'s' if len(self.tracks) != 1 else ''}"
        if self.label == Label.UNCERTAIN:
            return (f"the clip's fake score is {score}, inside the band {band_text(self.uncertain_band)} "
                    f"where it is not reliable ({people}, {len(self.frames)} frames)")
        return f"confidence {self.confidence:.0%} · fake score {score} · {people} in {len(self.frames)} frames"

    @property
    def summary(self) -> str:
        """One line for people (the headline)."""
        return self.headline

    @classmethod
    def from_dict(cls, d: dict) -> "ClipVerdict":
        """Rebuild a ClipVerdict from `to_dict()` output."""
        return cls(
            label=d["label"], fake_probability=float(d["fake_probability"]), confidence=float(d["confidence"]),
            threshold=float(d["threshold"]), uncertain_band=tuple(d["uncertain_band"]),
            tracks=[TrackResult.from_dict(t) for t in d["tracks"]],
            frames=[FrameResult.from_dict(f) for f in d["frames"]], rule=d["rule"],
            model_name=d["model_name"], model_version=int(d["model_version"]), duration_s=float(d["duration_s"]),
            fps=float(d["fps"]), video_size=tuple(d["video_size"]), container=d.get("container", ""),
            codec=d.get("codec", ""), timings_ms=dict(d.get("timings_ms", {})),
            warnings=[QualityWarning(**w) for w in d.get("warnings", [])], sha256=d.get("sha256", ""),
            filename=d.get("filename", ""), kind=d.get("kind", "video"),
        )
