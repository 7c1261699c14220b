"""Server-side batching (concurrent requests merged, answers split back) and TF Serving's REST API."""
from __future__ import annotations

import base64
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving import contract
from tests.helpers import ServerProcess, free_port
from tests.serving.grpc_util import Stubs, bytes_request, outputs, pixels, png, request

pytestmark = pytest.mark.integration
MAX_BATCH = 8
MONITORING = Path(__file__).resolve().parents[2] / "serving" / "monitoring.config"


@pytest.fixture(scope="module")
def batching_server(exported_model, tmp_path_factory):
    """A local server with batching on (long timeout so merging is certain), REST and Prometheus."""
    root = tmp_path_factory.mktemp("batching")
    params = root / "batching.txt"
    params.write_text(f"max_batch_size {{ value: {MAX_BATCH} }}\nbatch_timeout_micros {{ value: 150000 }}\n"
                      "num_batch_threads { value: 1 }\n")
    rest = free_port()
    proc = ServerProcess(base_path=exported_model, log_path=root / "server.log", extra_args=(
        "--enable_batching", f"--batching_parameters_file={params}", f"--rest_api_port={rest}",
        f"--monitoring_config_file={MONITORING}", "--log_batches",
    )).start()
    try:
        proc.wait_available()
        stubs = Stubs(proc.target)
        yield proc, stubs, f"http://127.0.0.1:{rest}"
        stubs.close()
    finally:
        proc.terminate()


def _metric(base_url: str, name: str) -> float:
    """One value from the server's Prometheus page."""
    text = urllib.request.urlopen(base_url + "/monitoring/prometheus/metrics", timeout=10).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, text
    return float(m.group(1))


def _concurrently(fns):
    """Run callables at the same moment; return their results or exceptions in order."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)

    def run(i, fn):
        barrier.wait()
        try:
            results[i] = fn()
        except grpc.RpcError as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_are_merged_and_split_back(batching_server):
    proc, stubs, url = batching_server
    images = pixels(6, seed=11)
    alone = [outputs(stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: images[i:i + 1]}), timeout=30))
             for i in range(6)]
    before = _metric(url, ":tensorflow:serving:batching:max_requests_per_batch")
    assert before == 1  # sequential requests were never merged
    together = _concurrently([
        (lambda i=i: outputs(stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: images[i:i + 1]}), timeout=30)))
        for i in range(6)
    ])
    assert _metric(url, ":tensorflow:serving:batching:max_requests_per_batch") >= 2
    assert re.search(r"batch signature=\S+ requests=([2-9]|\d\d)", proc.logs())
    for got, ref in zip(together, alone):
        np.testing.assert_allclose(got[contract.OUTPUT_PROBABILITY], ref[contract.OUTPUT_PROBABILITY], atol=1e-5)
        np.testing.assert_allclose(got[contract.OUTPUT_HEATMAP], ref[contract.OUTPUT_HEATMAP], atol=1e-4)


def test_a_bad_request_in_a_merged_batch_fails_alone(batching_server):
    _, stubs, _ = batching_server
    good = [png(img) for img in pixels(3, seed=12)]
    calls = [(lambda b=b: stubs.predict.Predict(bytes_request([b]), timeout=30)) for b in good]
    calls.append(lambda: stubs.predict.Predict(bytes_request([b"\x89PNG but broken"]), timeout=30))
    results = _concurrently(calls)
    assert all(not isinstance(r, grpc.RpcError) for r in results[:3]), results
    assert isinstance(results[3], grpc.RpcError) and results[3].code() == grpc.StatusCode.INVALID_ARGUMENT


def test_batch_over_max_batch_size_invalid_argument(batching_server):
    _, stubs, _ = batching_server
    with pytest.raises(grpc.RpcError) as err:
        stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: pixels(MAX_BATCH + 1)}), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and str(MAX_BATCH) in err.value.details()
    ok = stubs.predict.Predict(request(inputs={contract.INPUT_PIXELS: pixels(MAX_BATCH)}), timeout=30)
    assert outputs(ok)[contract.OUTPUT_PROBABILITY].shape == (MAX_BATCH,)


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    """GET (or POST JSON) and return status and parsed JSON."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rest_status_and_metadata(batching_server):
    _, _, url = batching_server
    status, body = _http(f"{url}/v1/models/{contract.MODEL_NAME}")
    assert status == 200
    assert body["model_version_status"][0] == {"version": "1", "state": "AVAILABLE",
                                               "status": {"error_code": "OK", "error_message": ""}}
    status, body = _http(f"{url}/v1/models/{contract.MODEL_NAME}/metadata")
    assert status == 200
    assert {contract.SIGNATURE_PIXELS, contract.SIGNATURE_BYTES} <= set(body["metadata"]["signature_def"]["signatureDef"])
    assert _http(f"{url}/v1/models/nope")[0] == 404


def test_rest_predict_row_and_columnar_formats_match_grpc(batching_server):
    _, stubs, url = batching_server
    images = pixels(2, seed=13).round()
    blobs = [png(i) for i in images]
    ref = outputs(stubs.predict.Predict(bytes_request(blobs), timeout=30))[contract.OUTPUT_PROBABILITY]
    status, body = _http(f"{url}/v1/models/{contract.MODEL_NAME}:predict", {
        "signature_name": contract.SIGNATURE_BYTES,
        "instances": [{"b64": base64.b64encode(b).decode()} for b in blobs],
    })
    assert status == 200, body
    got = [p[contract.OUTPUT_PROBABILITY] for p in body["predictions"]]
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert set(body["predictions"][0]) == set(contract.OUTPUTS)
    status, body = _http(f"{url}/v1/models/{contract.MODEL_NAME}/versions/1:predict",
                         {"inputs": {contract.INPUT_PIXELS: images.tolist()}})
    assert status == 200, body
    np.testing.assert_allclose(body["outputs"][contract.OUTPUT_PROBABILITY], ref, atol=1e-4)


def test_rest_errors(batching_server):
    _, _, url = batching_server
    status, body = _http(f"{url}/v1/models/{contract.MODEL_NAME}:predict", {"instances": [[1.0, 2.0]]})
    assert status == 400 and contract.INPUT_PIXELS in body["error"]
    status, body = _http(f"{url}/v1/models/{contract.MODEL_NAME}:predict",
                         {"signature_name": "nope", "instances": [[1.0]]})
    assert status == 400 and "nope" in body["error"]
    assert _http(f"{url}/v1/models/nope:predict", {"instances": [[1.0]]})[0] == 404
    assert _metric(url, ':tensorflow:serving:request_count{model_name="deepfake_detector",status="OK"}') >= 1


def test_client_chosen_model_names_neither_grow_the_metrics_nor_reach_the_log_raw(batching_server):
    """Names are the client's choice: unknown ones share one metrics series, and logs show them tamed."""
    proc, stubs, url = batching_server
    hostile = 'evil"} 1\n:tensorflow:serving:request_count{model_name="forged' + "x" * 5000
    before = _metric(url, ':tensorflow:serving:request_count{model_name="<unknown>",status="NOT_FOUND"}') \
        if "<unknown>" in urllib.request.urlopen(url + "/monitoring/prometheus/metrics", timeout=10).read().decode() \
        else 0.0
    for i in range(3):
        with pytest.raises(grpc.RpcError) as err:
            stubs.predict.Predict(request(name=f"{hostile}{i}"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert len(err.value.details()) < 300 and "\n" not in err.value.details()
    text = urllib.request.urlopen(url + "/monitoring/prometheus/metrics", timeout=10).read().decode()
    assert "forged" not in text and "evil" not in text
    assert _metric(url, ':tensorflow:serving:request_count{model_name="<unknown>",status="NOT_FOUND"}') == before + 3
    logs = proc.logs()
    assert "x" * 100 not in logs  # capped
    assert not any(line.startswith(":tensorflow") for line in logs.splitlines())  # no line forged by a newline
