"""gRPC clients (sync and asyncio) for the served model, built from our own protos: no TensorFlow import."""
from __future__ import annotations

from dataclasses import dataclass

from clients.config import ClientConfig


@dataclass(frozen=True)
class ModelInfo:
    """Which model version the server serves and its decision rule."""

    name: str
    version: int
    threshold: float
    uncertain_band: tuple[float, float]


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one batch of crops, with the version and threshold that produced it."""

    fake_probability: list[float]
    heatmaps: list[list[list[float]]]
    threshold: float
    uncertain_band: tuple[float, float]
    model_name: str
    model_version: int


class DetectorClient:
    """Blocking client: one channel, a deadline on every call, bounded retries on UNAVAILABLE."""

    def __init__(self, target: str | None = None, timeout_s: float = 10.0, retries: int = 3,
                 model_name: str = "deepfake_detector") -> None:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: ClientConfig) -> "DetectorClient":
        """A client with the config's target, deadline and retries."""
        return cls(config.target, config.timeout_s, config.retries, config.model_name)

    def predict(self, crops: list[bytes]) -> Prediction:
        """Score encoded face crops in one batched `from_bytes` request."""
        raise NotImplementedError

    def model_info(self) -> ModelInfo:
        """Name, version, threshold and band of the model the server answers with."""
        raise NotImplementedError

    def health(self) -> bool:
        """True when the server says the model is serving; never raises."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the channel."""
        raise NotImplementedError


class AsyncDetectorClient:
    """asyncio (grpc.aio) twin of DetectorClient, for the bot and the web page."""

    def __init__(self, target: str | None = None, timeout_s: float = 10.0, retries: int = 3,
                 model_name: str = "deepfake_detector") -> None:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: ClientConfig) -> "AsyncDetectorClient":
        """A client with the config's target, deadline and retries."""
        return cls(config.target, config.timeout_s, config.retries, config.model_name)

    async def predict(self, crops: list[bytes]) -> Prediction:
        """Score encoded face crops in one batched `from_bytes` request."""
        raise NotImplementedError

    async def model_info(self) -> ModelInfo:
        """Name, version, threshold and band of the model the server answers with."""
        raise NotImplementedError

    async def health(self) -> bool:
        """True when the server says the model is serving; never raises."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the channel."""
        raise NotImplementedError
