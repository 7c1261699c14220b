"""The server reads TF Serving's own config formats, and the repo's config files are valid in them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from google.protobuf import text_format

from serving import contract
from serving.local.config import (
    BatchingParameters,
    VersionPolicy,
    parse_batching_parameters,
    parse_model_config,
    parse_monitoring_config,
)
from serving.local.runtime import lean_requested, session_config
from serving.local.server import parse_args

SERVING = Path(__file__).resolve().parents[2] / "serving"


def test_repo_batching_parameters_parse():
    params = parse_batching_parameters((SERVING / "batching_parameters.txt").read_text())
    assert params.max_batch_size >= 1 and params.num_batch_threads >= 1
    assert 0 < params.batch_timeout_micros <= 100_000


def test_batching_parameters_text_format():
    text = "max_batch_size { value: 8 }\nbatch_timeout_micros { value: 500 }\nnum_batch_threads { value: 1 }"
    assert parse_batching_parameters(text) == BatchingParameters(8, 500, 1, BatchingParameters().max_enqueued_batches)
    assert parse_batching_parameters("") == BatchingParameters()
    with pytest.raises(text_format.ParseError):
        parse_batching_parameters("max_batch_sise { value: 8 }")
    with pytest.raises(ValueError):
        parse_batching_parameters("max_batch_size { value: 0 }")


def test_repo_models_config_serves_the_contract_model():
    (entry,) = parse_model_config((SERVING / "models.config").read_text())
    assert entry.name == contract.MODEL_NAME
    assert entry.base_path == Path("/models") / contract.MODEL_NAME
    assert entry.policy.kind == "specific" and len(entry.policy.versions) == 1, "the deployed version, pinned"
    (version,) = entry.policy.versions
    assert contract.is_complete_version(SERVING.parent / "saved_model" / contract.MODEL_NAME / str(version))


def test_version_policies():
    text = ('model_config_list { config { name: "m" base_path: "/m" model_platform: "tensorflow" '
            'model_version_policy { specific { versions: 2 versions: 5 } } version_labels { key: "stable" value: 2 } } }')
    (entry,) = parse_model_config(text)
    assert entry.policy.aspired([1, 2, 3, 5, 7]) == [2, 5]
    assert entry.labels == {"stable": 2}
    assert VersionPolicy("latest", 2).aspired([3, 1, 9]) == [3, 9]
    assert VersionPolicy("all").aspired([3, 1]) == [1, 3]


def test_repo_monitoring_config_turns_prometheus_on():
    assert parse_monitoring_config((SERVING / "monitoring.config").read_text()) == "/monitoring/prometheus/metrics"
    assert parse_monitoring_config("prometheus_config { enable: false }") is None


def test_flags_use_tensorflow_model_server_names(tmp_path):
    cfg = parse_args([
        "--port=9000", "--rest_api_port=9001", "--model_name=m", f"--model_base_path={tmp_path}",
        "--enable_batching", f"--batching_parameters_file={SERVING / 'batching_parameters.txt'}",
        "--file_system_poll_wait_seconds=2",
    ])
    assert (cfg.port, cfg.rest_api_port, cfg.enable_batching, cfg.file_system_poll_wait_seconds) == (9000, 9001, True, 2.0)
    assert cfg.models[0].name == "m" and cfg.models[0].base_path == tmp_path
    assert cfg.batch_limit == cfg.batching.max_batch_size
    off = parse_args([f"--model_base_path={tmp_path}", "--enable_batching=false"])
    assert not off.enable_batching and off.batch_limit == off.max_request_batch_size
    assert off.bind_address == "127.0.0.1"


def test_thread_flags_default_to_one_thread_per_op_and_zero_means_tensorflows_choice(tmp_path):
    """One thread per op unless told (measured faster here); 0 hands the choice back to TensorFlow: a thread per core."""
    default = session_config(parse_args([f"--model_base_path={tmp_path}"]))
    assert default.intra_op_parallelism_threads == 1
    assert default.graph_options.rewrite_options.disable_meta_optimizer
    auto = session_config(parse_args([f"--model_base_path={tmp_path}", "--tensorflow_intra_op_parallelism=0",
                                      "--tensorflow_inter_op_parallelism=3"]))
    assert auto.intra_op_parallelism_threads == (os.cpu_count() or 2)
    assert auto.inter_op_parallelism_threads == 3


def test_lean_process_is_off_unless_asked_and_read_alike_by_both_parsers(tmp_path):
    """One flag, off by default: the early reader (before TensorFlow is imported) and the full flags agree."""
    base = f"--model_base_path={tmp_path}"
    for argv, lean in (([base], False), ([base, "--lean_process"], True), ([base, "--lean_process=true"], True),
                       ([base, "--lean_process=false"], False), (["--lean_process", base, "--port=9"], True)):
        assert parse_args(argv).lean_process is lean, argv
        assert lean_requested(argv) is lean, argv
