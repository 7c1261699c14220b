"""The seam between the front ends and the model: what a detector does (`Detector`, `AsyncDetector`) and the one
place that makes one (`make_detector`, `make_async_detector`), so no front end builds a gRPC client itself and a
test or another transport can stand in for the model server."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from clients.core.config import ClientConfig

if TYPE_CHECKING:
    from clients.core.grpc_client import ModelInfo, Prediction


@runtime_checkable
class Detector(Protocol):
    """A model behind some transport: scores for face crops, whether it can answer, and what is answering."""

    target: str

    def predict(self, crops: list[bytes]) -> Prediction:
        """Fake probabilities (with the version's threshold, band and heatmaps) for encoded face crops."""

    def health(self) -> bool:
        """Whether a version of the model is ready to answer; never raises."""

    def model_info(self) -> ModelInfo:
        """Name, version, threshold and band of the version that answers now."""

    def close(self) -> None:
        """Release the connection."""


@runtime_checkable
class AsyncDetector(Protocol):
    """The asyncio form of Detector, for front ends that run on an event loop (the bot)."""

    target: str

    async def predict(self, crops: list[bytes]) -> Prediction:
        """Fake probabilities (with the version's threshold, band and heatmaps) for encoded face crops."""

    async def health(self) -> bool:
        """Whether a version of the model is ready to answer; never raises."""

    async def model_info(self) -> ModelInfo:
        """Name, version, threshold and band of the version that answers now."""

    async def close(self) -> None:
        """Release the connection."""


def make_detector(config: ClientConfig) -> Detector:
    """The detector every blocking front end uses: the gRPC client for the config's target, deadline, retries and
    model name (imported here, so importing this module opens nothing and loads no gRPC stubs)."""
    from clients.core.grpc_client import DetectorClient

    return DetectorClient.from_config(config)


def make_async_detector(config: ClientConfig) -> AsyncDetector:
    """The asyncio detector (grpc.aio), made like make_detector; call it on the loop that will use it."""
    from clients.core.grpc_client import AsyncDetectorClient

    return AsyncDetectorClient.from_config(config)
