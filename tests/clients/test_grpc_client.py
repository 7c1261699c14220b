"""The gRPC clients: a real request to the local model server, then a server that is down, slow or failing."""
from __future__ import annotations

import asyncio
import io
import time

import grpc
import pytest
from PIL import Image

from clients.core.errors import DetectorUnavailable, ModelError
from clients.core.grpc_client import AsyncDetectorClient, DetectorClient
from tests.clients.fake_servers import ok_response, predict_server, sleeper
from tests.helpers import free_port


def _png(colour, size=(224, 224)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.integration
def test_batched_request_to_the_real_server(model_server):
    crops = [_png((200, 150, 120)), _png((20, 30, 40), (100, 80)), _png((128, 128, 128), (600, 600))]
    with DetectorClient(model_server, timeout_s=30) as client:
        assert client.health() is True
        pred = client.predict(crops)
        info = client.model_info()
        sigs = client.signatures()
    assert len(pred.fake_probability) == 3 and all(0.0 <= p <= 1.0 for p in pred.fake_probability)
    assert pred.model_name == "deepfake_detector" and pred.model_version >= 1
    assert 0.0 <= pred.uncertain_band[0] <= pred.threshold <= pred.uncertain_band[1] <= 1.0
    assert [len(h) for h in pred.heatmaps] == [7, 7, 7] and all(len(r) == 7 for h in pred.heatmaps for r in h)
    assert all(0.0 <= v <= 1.0 for h in pred.heatmaps for r in h for v in r)
    assert (info.version, info.threshold, info.uncertain_band) == (pred.model_version, pred.threshold,
                                                                  pred.uncertain_band)
    assert {"from_bytes", "serving_default"} <= set(sigs)
    assert "image_bytes" in sigs["from_bytes"].inputs


@pytest.mark.integration
def test_async_client_against_the_real_server(model_server):
    async def go():
        async with AsyncDetectorClient(model_server, timeout_s=30) as client:
            healthy = await client.health()
            preds = await asyncio.gather(*(client.predict([_png((i * 40, 90, 60))]) for i in range(4)))
            return healthy, preds, await client.model_info()
    healthy, preds, info = asyncio.run(go())
    assert healthy is True
    assert all(len(p.fake_probability) == 1 and p.model_version == info.version for p in preds)


@pytest.mark.integration
def test_garbage_crop_is_a_model_error_not_a_crash(model_server):
    with DetectorClient(model_server, timeout_s=30) as client:
        with pytest.raises(ModelError) as info:
            client.predict([b"definitely not an image"])
    assert "image" in info.value.user_message.lower()


@pytest.mark.integration
def test_server_down_raises_detector_unavailable_after_bounded_retries():
    target = f"127.0.0.1:{free_port()}"  # nothing listens here
    with DetectorClient(target, timeout_s=2, retries=3) as client:
        assert client.health() is False
        t0 = time.perf_counter()
        with pytest.raises(DetectorUnavailable) as info:
            client.predict([_png((1, 2, 3))])
        elapsed = time.perf_counter() - t0
    # two backoffs (0.2 s + 0.4 s, each with gRPC's +-20% jitter, so at least 0.48 s), then give up
    assert 0.45 <= elapsed < 10
    assert "not reachable" in info.value.user_message and "Traceback" not in info.value.user_message


@pytest.mark.integration
def test_async_server_down_raises_detector_unavailable():
    async def go():
        async with AsyncDetectorClient(f"127.0.0.1:{free_port()}", timeout_s=2, retries=2) as client:
            assert await client.health() is False
            await client.predict([_png((1, 2, 3))])
    with pytest.raises(DetectorUnavailable):
        asyncio.run(go())


@pytest.mark.integration
def test_slow_server_hits_the_deadline_and_is_not_retried():
    with predict_server(sleeper(3.0)) as (target, rec):
        with DetectorClient(target, timeout_s=0.5, retries=3) as client:
            t0 = time.perf_counter()
            with pytest.raises(DetectorUnavailable) as info:
                client.predict([_png((1, 2, 3))])
            elapsed = time.perf_counter() - t0
    assert elapsed < 2.5 and rec.calls == 1
    assert "too long" in info.value.user_message


@pytest.mark.integration
def test_async_slow_server_hits_the_deadline():
    async def go(target):
        async with AsyncDetectorClient(target, timeout_s=0.5) as client:
            await client.predict([_png((1, 2, 3))])
    with predict_server(sleeper(3.0)) as (target, _):
        with pytest.raises(DetectorUnavailable):
            asyncio.run(go(target))


@pytest.mark.integration
def test_unavailable_is_retried_with_backoff_then_succeeds():
    def flaky(call, request, context):
        if call < 3:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return ok_response(len(request.inputs["image_bytes"].string_val), p=0.9, version=9, threshold=0.7)
    with predict_server(flaky) as (target, rec):
        with DetectorClient(target, timeout_s=5, retries=3) as client:
            pred = client.predict([_png((1, 2, 3)), _png((4, 5, 6))])
    assert rec.calls == 3
    assert pred.fake_probability == pytest.approx([0.9, 0.9]) and pred.model_version == 9
    assert pred.threshold == pytest.approx(0.7) and pred.uncertain_band == pytest.approx((0.6, 0.8))


@pytest.mark.integration
def test_other_errors_are_not_retried():
    def refuse(call, request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot decode image")
    with predict_server(refuse) as (target, rec):
        with DetectorClient(target, timeout_s=5, retries=3) as client:
            with pytest.raises(ModelError):
                client.predict([_png((1, 2, 3))])
    assert rec.calls == 1


@pytest.mark.integration
def test_request_asks_only_for_the_outputs_used():
    seen = {}

    def record(call, request, context):
        seen["filter"] = list(request.output_filter)
        seen["signature"] = request.model_spec.signature_name
        return ok_response(1)
    with predict_server(record) as (target, _):
        with DetectorClient(target, timeout_s=5) as client:
            client.predict([_png((1, 2, 3))])
    assert seen == {"filter": ["fake_probability", "threshold", "uncertain_band", "heatmap"],
                    "signature": "from_bytes"}


def test_target_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TF_SERVING_TARGET", "127.0.0.1:1")
    client = DetectorClient()
    assert client.target == "127.0.0.1:1"
    client.close()
    monkeypatch.delenv("TF_SERVING_TARGET")
    client = DetectorClient()
    assert client.target == "localhost:8500"
    client.close()


OUTAGE_S = 30.0
"""Long enough that gRPC's default reconnect backoff (1 s growing 1.6x) would wait ~10-17 s between tries."""
RECOVERY_LIMIT_S = 5.0


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_clients_recover_within_seconds_once_the_server_returns(exported_model, tmp_path):
    """Kill the model server, keep asking through the outage as users would, restart it on the same port:
    both clients' next requests succeed within 5 s of the server being AVAILABLE again."""
    from tests.helpers import ServerProcess

    port, crop = free_port(), [_png((120, 90, 60))]
    first = ServerProcess(base_path=exported_model, log_path=tmp_path / "first.log", port=port).start()
    loop = asyncio.new_event_loop()
    second = None
    try:
        first.wait_available()

        async def open_async() -> AsyncDetectorClient:
            return AsyncDetectorClient(first.target, timeout_s=5, retries=2)
        sync_client = DetectorClient(first.target, timeout_s=5, retries=2)
        async_client = loop.run_until_complete(open_async())
        asks = {"sync": lambda: sync_client.predict(crop),
                "async": lambda: loop.run_until_complete(async_client.predict(crop))}
        for ask in asks.values():
            assert len(ask().fake_probability) == 1
        first.proc.kill()
        first.proc.wait()
        outage_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_end:
            for ask in asks.values():
                with pytest.raises(DetectorUnavailable):
                    ask()
            time.sleep(1.0)
        second = ServerProcess(base_path=exported_model, log_path=tmp_path / "second.log", port=port).start()
        second.wait_available()
        back = time.monotonic()
        recovered = {}
        while len(recovered) < len(asks) and time.monotonic() - back < 60:
            for name, ask in asks.items():
                if name not in recovered:
                    try:
                        ask()
                        recovered[name] = time.monotonic() - back
                    except DetectorUnavailable:
                        pass
            time.sleep(0.1)
        print(f"recovered after the restart: {recovered}")
        assert set(recovered) == set(asks), f"still failing 60 s after the restart: {recovered}"
        assert max(recovered.values()) <= RECOVERY_LIMIT_S, recovered
        sync_client.close()
        loop.run_until_complete(async_client.close())
    finally:
        loop.close()
        for server in (first, second):
            if server is not None:
                server.terminate()


def test_both_clients_share_grpcs_own_retry_policy_on_unavailable_only():
    import json

    from clients.core.grpc_client import channel_options, retry_service_config

    policy = json.loads(retry_service_config(3))["methodConfig"][0]["retryPolicy"]
    assert policy["maxAttempts"] == 3 and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert policy["initialBackoff"] == "0.2s" and policy["backoffMultiplier"] == 2
    assert json.loads(retry_service_config(9))["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 5  # gRPC's cap
    assert ("grpc.enable_retries", 0) in channel_options(1)
    assert dict(channel_options(3))["grpc.enable_retries"] == 1


@pytest.mark.integration
def test_async_unavailable_is_retried_then_succeeds():
    def flaky(call, request, context):
        if call < 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return ok_response(len(request.inputs["image_bytes"].string_val), p=0.2)

    async def go(target):
        async with AsyncDetectorClient(target, timeout_s=5, retries=3) as client:
            return await client.predict([_png((1, 2, 3))])
    with predict_server(flaky) as (target, rec):
        pred = asyncio.run(go(target))
    assert rec.calls == 2 and pred.fake_probability == pytest.approx([0.2])
