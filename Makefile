# The two commands that matter: `make run` and `make test`.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8500
WEB_PORT ?= 8501

.PHONY: run test test-fast test-integration reliability bench train clean

$(VPY):
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

## run: the local model server on the shipped model, plus the web page
run: $(STAMP)
	$(VPY) -m serving.run_all --port $(PORT) --web-port $(WEB_PORT)

## test: the default suite (fast unit tests and the loopback integration tests)
test: $(STAMP)
	$(VPY) -m pytest

test-fast: $(STAMP)
	$(VPY) -m pytest -m 'not integration and not slow'

test-integration: $(STAMP)
	$(VPY) -m pytest -m integration

## reliability: every test of tests/reliability including the long (slow) runs: ~15 minutes, figures in build/reliability
reliability: $(STAMP)
	$(VPY) -m pytest -m "slow or not slow" tests/reliability -p no:cacheprovider -s

## bench: the benchmark suite, writes bench/RESULTS.md
bench: $(STAMP)
	$(VPY) -m bench.run

## train: reproduce the shipped model (see saved_model/deepfake_detector/MODEL_CARD.md)
train: $(STAMP)
	$(VPY) -m training.train --config training/configs/shipped.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

.PHONY: protos
## protos: regenerate clients/core/protos/tfs_pb2.py from our own TF Serving proto subset (needs grpcio-tools)
protos:
	$(VPY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. clients/core/protos/tfs.proto
