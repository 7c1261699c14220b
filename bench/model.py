"""Which model is measured: the shipped one when it exists, else an untrained export of the same architecture."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from serving import contract

REPO = Path(__file__).resolve().parents[1]
SHIPPED_BASE = REPO / "saved_model" / contract.MODEL_NAME
IMAGENET_WEIGHTS = REPO / ".." / "shared" / "weights" / "mobilenet_v2_0.35_224_imagenet_notop.weights.h5"


@dataclass(frozen=True)
class ModelUnderTest:
    """A base path with a complete version, and what it is."""

    base: Path
    version: int
    shipped: bool
    description: str


def complete_versions(base: Path) -> list[int]:
    """Complete versions under a base path (empty when there is none)."""
    if not base.is_dir():
        return []
    return [v for v in contract.version_dirs(base) if contract.is_complete_version(base / str(v))]


def export_stand_in(workdir: Path) -> Path:
    """Export an UNTRAINED alpha-0.35 model (shared ImageNet backbone, random head) under workdir: for timing only."""
    from training.export import ExportInfo, export
    from training.model import ModelConfig, build_model

    weights = str(IMAGENET_WEIGHTS) if IMAGENET_WEIGHTS.is_file() else None
    model = build_model(ModelConfig(alpha=0.35, weights=weights))
    base = workdir / contract.MODEL_NAME
    export(model, base, ExportInfo(training_data="none: untrained benchmark stand-in"), version=1)
    return base


def resolve(model_base: Path | None, workdir: Path | None = None) -> ModelUnderTest:
    """The model to measure: --model-base if given, the shipped model if present, else a stand-in export."""
    if model_base is not None:
        versions = complete_versions(model_base)
        if not versions:
            raise SystemExit(f"--model-base {model_base}: no complete version there")
        shipped = model_base.resolve() == SHIPPED_BASE.resolve()
        return ModelUnderTest(model_base, versions[-1], shipped,
                              f"{'shipped model' if shipped else 'model'} {model_base} version {versions[-1]}")
    versions = complete_versions(SHIPPED_BASE)
    if versions:
        return ModelUnderTest(SHIPPED_BASE, versions[-1], True,
                              f"shipped model saved_model/{contract.MODEL_NAME} version {versions[-1]}")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="bench-model-"))
    base = export_stand_in(workdir)
    return ModelUnderTest(base, 1, False, "UNTRAINED stand-in of the same architecture (MobileNetV2 alpha 0.35, "
                                          "ImageNet backbone, random head), exported to a temp dir: "
                                          "the shipped model was not there yet")
