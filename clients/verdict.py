"""The typed result of checking one image, shared by every front end and serialisable to JSON."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

LABEL_WORDS = {"fake": "Likely fake", "real": "Likely real", "uncertain": "Uncertain"}


@dataclass(frozen=True)
class QualityWarning:
    """Something about the input that limits how far the verdict can be trusted."""

    code: str
    message: str


@dataclass
class FaceResult:
    """The model's answer for one face crop."""

    box: tuple[int, int, int, int]
    fake_probability: float
    label: str
    confidence: float
    heatmap: list[list[float]] = field(default_factory=list)
    crop_box: tuple[int, int, int, int] = (0, 0, 0, 0)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceResult":
        """Rebuild from `to_dict()` output (tuples restored)."""
        return cls(box=tuple(d["box"]), fake_probability=float(d["fake_probability"]), label=d["label"],
                   confidence=float(d["confidence"]), heatmap=[list(r) for r in d.get("heatmap", [])],
                   crop_box=tuple(d.get("crop_box", (0, 0, 0, 0))))


@dataclass
class Verdict:
    """The image's label (its most suspicious face decides), per-face results and provenance."""

    label: str
    fake_probability: float
    confidence: float
    threshold: float
    uncertain_band: tuple[float, float]
    faces: list[FaceResult]
    whole_image: bool
    model_name: str
    model_version: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[QualityWarning] = field(default_factory=list)
    sha256: str = ""
    filename: str = ""
    image_size: tuple[int, int] = (0, 0)
    original_size: tuple[int, int] = (0, 0)

    @property
    def summary(self) -> str:
        """One line for people: the label in words and the confidence in percent."""
        return f"{LABEL_WORDS.get(self.label, self.label)} (confidence {self.confidence:.0%})"

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return asdict(self)

    def to_json(self, **kwargs) -> str:
        """JSON text; kwargs go to json.dumps (e.g. indent=2)."""
        kwargs.setdefault("ensure_ascii", False)
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        """Rebuild a Verdict from `to_dict()` output."""
        return cls(
            label=d["label"], fake_probability=float(d["fake_probability"]), confidence=float(d["confidence"]),
            threshold=float(d["threshold"]), uncertain_band=tuple(d["uncertain_band"]),
            faces=[FaceResult.from_dict(f) for f in d["faces"]], whole_image=bool(d["whole_image"]),
            model_name=d["model_name"], model_version=int(d["model_version"]),
            timings_ms=dict(d.get("timings_ms", {})),
            warnings=[QualityWarning(**w) for w in d.get("warnings", [])],
            sha256=d.get("sha256", ""), filename=d.get("filename", ""),
            image_size=tuple(d.get("image_size", (0, 0))), original_size=tuple(d.get("original_size", (0, 0))),
        )
