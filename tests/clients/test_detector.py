"""The Detector seam: one factory makes every front end's detector, and analyze works with any Detector."""
from __future__ import annotations

import ast
import asyncio

from clients.core.analyze import analyze, analyze_async
from clients.core.config import ClientConfig
from clients.core.detector import AsyncDetector, Detector, make_async_detector, make_detector
from clients.core.grpc_client import AsyncDetectorClient, DetectorClient, ModelInfo, Prediction
from clients.core.verdict import Label
from tests.clients.images import encode, noise_photo
from tests.helpers import REPO, free_port

BUILDERS = {"DetectorClient", "AsyncDetectorClient"}
"""The gRPC classes only clients/core/detector.py may construct (grpc_client.py defines them)."""


class _StubDetector:
    """A model that is no server at all: every crop scores 0.9 under threshold 0.5."""

    target = "stub"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, crops: list[bytes]) -> Prediction:
        self.calls += 1
        return Prediction([0.9] * len(crops), [], 0.5, (0.45, 0.55), "stub_model", 7)

    def health(self) -> bool:
        return True

    def model_info(self) -> ModelInfo:
        return ModelInfo("stub_model", 7, 0.5, (0.45, 0.55))

    def close(self) -> None:
        pass


def test_make_detector_builds_the_grpc_client_from_the_config():
    config = ClientConfig(target=f"127.0.0.1:{free_port()}", timeout_s=1.5, retries=2, model_name="m")
    detector = make_detector(config)
    try:
        assert isinstance(detector, DetectorClient) and isinstance(detector, Detector)
        assert (detector.target, detector.timeout_s, detector.retries, detector.model_name) == (
            config.target, 1.5, 2, "m")
        assert detector.health() is False  # nothing listens: an answer, not an exception
    finally:
        detector.close()


def test_make_async_detector_builds_the_asyncio_client_on_the_running_loop():
    async def made() -> tuple[bool, bool, str]:
        detector = make_async_detector(ClientConfig(target=f"127.0.0.1:{free_port()}", timeout_s=1.0))
        try:
            return isinstance(detector, AsyncDetectorClient), isinstance(detector, AsyncDetector), detector.target
        finally:
            await detector.close()
    is_client, is_detector, target = asyncio.run(made())
    assert is_client and is_detector and target.startswith("127.0.0.1:")


def test_analyze_takes_any_detector():
    stub = _StubDetector()
    assert isinstance(stub, Detector)
    verdict = analyze(encode(noise_photo((640, 480)), "PNG"), "plain.png", stub, ClientConfig()).verdict
    assert stub.calls == 1 and verdict.model_version == 7 and verdict.label is Label.FAKE
    assert verdict.shown_label is Label.NO_FACE


def test_analyze_async_takes_any_async_detector():
    class _AsyncStub:
        target = "stub"

        async def predict(self, crops):
            return _StubDetector().predict(crops)

        async def health(self):
            return True

        async def model_info(self):
            return _StubDetector().model_info()

        async def close(self):
            pass
    data = encode(noise_photo((640, 480)), "PNG")
    verdict = asyncio.run(analyze_async(data, "plain.png", _AsyncStub(), ClientConfig())).verdict
    assert verdict.model_name == "stub_model" and verdict.fake_probability == 0.9


def _constructs_a_grpc_client(path) -> list[str]:
    """Lines of a file that call DetectorClient(...) / AsyncDetectorClient(...) or their from_config."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            if name in BUILDERS or (name == "from_config" and owner in BUILDERS):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_every_front_end_gets_its_detector_from_make_detector():
    """No front end (page, bot, CLI, the images' health check) builds a gRPC client itself."""
    files = [p for p in (REPO / "clients").rglob("*.py") if p.name not in ("detector.py", "grpc_client.py")]
    files.append(REPO / "docker" / "healthcheck.py")
    assert [hit for p in files for hit in _constructs_a_grpc_client(p)] == []
