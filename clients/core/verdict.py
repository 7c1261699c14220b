"""The typed result of checking one image, shared by every front end and serialisable to JSON."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Label(StrEnum):
    """What a face or an image is called; each value is the word the JSON has always carried, so output is unchanged."""

    REAL = "real"
    FAKE = "fake"
    UNCERTAIN = "uncertain"
    NO_FACE = "no_face"


NO_FACE = Label.NO_FACE
"""What the headline shows instead of a label when no face was found: the model judges faces, so a score of the
whole image is shown as a labelled check, never as a real/fake verdict."""
LABEL_WORDS = {Label.FAKE: "Likely fake", Label.REAL: "Likely real", Label.UNCERTAIN: "Uncertain",
               Label.NO_FACE: "No face found"}


def format_score(value: float) -> str:
    """A threshold or band edge on the 0-1 scale with the decimals it needs (2 to 4), so 0.385 is never '0.39'."""
    whole, _, decimals = f"{value:.4f}".rstrip("0").partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def score_text(probability: float) -> str:
    """A fake score on the 0-1 scale, as every front end shows it: 0.873."""
    return f"{probability:.3f}"


def band_text(band: tuple[float, float]) -> str:
    """The uncertain band as 'low–high' with exact edges ('' when empty): the one way every front end shows it."""
    low, high = band
    return f"{format_score(low)}–{format_score(high)}" if low < high else ""


def rule_text(threshold: float, band: tuple[float, float]) -> str:
    """A version's decision rule in words: 'threshold 0.42, uncertain band 0.385–0.455'."""
    band_part = f", uncertain band {band_text(band)}" if band_text(band) else ""
    return f"threshold {format_score(threshold)}{band_part}"


def confidence_text(label: Label | str, confidence: float) -> str:
    """What a face's confidence means, in words: a percentage only where it is the reported label's probability."""
    if label == Label.UNCERTAIN:
        return "no confidence: inside the uncertain band"
    return f"{confidence:.0%} confidence"


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
    label: Label
    confidence: float
    heatmap: list[list[float]] = field(default_factory=list)
    crop_box: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        """A label given as its word (from JSON, from serving.contract.label_for) becomes the Label."""
        self.label = Label(self.label)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceResult":
        """Rebuild from `to_dict()` output (tuples restored)."""
        return cls(box=tuple(d["box"]), fake_probability=float(d["fake_probability"]), label=d["label"],
                   confidence=float(d["confidence"]), heatmap=[list(r) for r in d.get("heatmap", [])],
                   crop_box=tuple(d.get("crop_box", (0, 0, 0, 0))))


class JsonResult:
    """What every result dataclass offers its front ends: a plain dict and JSON text, the same way."""

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return asdict(self)

    def to_json(self, **kwargs) -> str:
        """JSON text; kwargs go to json.dumps (e.g. indent=2)."""
        kwargs.setdefault("ensure_ascii", False)
        return json.dumps(self.to_dict(), **kwargs)


@dataclass
class Verdict(JsonResult):
    """The image's label (its most suspicious face decides), per-face results and provenance."""

    label: Label
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

    def __post_init__(self) -> None:
        """A label given as its word (from JSON, from serving.contract.label_for) becomes the Label."""
        self.label = Label(self.label)

    @property
    def shown_label(self) -> Label:
        """The label a front end shows: NO_FACE when no face was found (the model's whole-image label is no verdict)."""
        return NO_FACE if self.whole_image else self.label

    @property
    def headline(self) -> str:
        """The first line every front end shows: the verdict, and what its number is, in words a person reads."""
        if self.whole_image:
            return "No face found: no real/fake verdict"
        if self.label == Label.UNCERTAIN:
            return f"Uncertain: {self.detail}"
        return f"{LABEL_WORDS.get(self.label, self.label)} (confidence {self.confidence:.0%})"

    @property
    def detail(self) -> str:
        """The numbers beside the label word, for front ends that show the word large (the page's banner)."""
        score = score_text(self.fake_probability)
        if self.whole_image:
            return f"whole-image check, not a verdict: fake score {score}"
        if self.label == Label.UNCERTAIN:
            return (f"the model's fake score is {score}, inside the band {band_text(self.uncertain_band)} "
                    "where it is not reliable")
        return f"confidence {self.confidence:.0%} · fake score {score}"

    @property
    def summary(self) -> str:
        """One line for people (the headline), kept under its old name for callers."""
        return self.headline

    @property
    def whole_image_check(self) -> str:
        """The labelled whole-image score shown when no face was found ('' when faces were found)."""
        if not self.whole_image:
            return ""
        return (f"Whole-image check, not a verdict: with no face to judge, the whole picture got a fake score of "
                f"{score_text(self.fake_probability)} ({rule_text(self.threshold, self.uncertain_band)}). "
                "The detector is trained on faces, so this number says little about the picture.")

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
