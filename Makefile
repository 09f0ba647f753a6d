# hptune: `make demo` runs the study notes' MNIST search locally; `make test` installs and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Offline machines: a directory holding mnist.npz. Defaults to the shared data directory when one
# sits beside the repository; elsewhere Keras downloads MNIST.
HPTUNE_DATA_DIR ?= $(wildcard $(abspath $(CURDIR)/../shared/data))
export HPTUNE_DATA_DIR
WORKERS ?= 2

.PHONY: demo test test-containers check lint install install-test tools bench flaky clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[s3,gcs]"
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt --group test
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## demo: the MNIST search of examples/mnist.yaml, a chief and $(WORKERS) workers on this machine
demo: install
	$(BIN)/hptune local examples/mnist.yaml --workers $(WORKERS)
	$(BIN)/hptune show hptune-output/mnist-mlp --top 5

## tools: the Prometheus server and Pushgateway the metrics tests scrape, Docker and mmdebstrap (Debian packages)
tools:
	bash scripts/install-test-tools.sh

## lint: ruff (style and errors), mypy (types, with the pydantic plugin) and import-linter (layers)
lint: install-test
	$(BIN)/ruff check job tests benchmarks scripts
	$(BIN)/ruff format --check job tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## check: the fast tier for the edit-test loop: lint, types and the unit tests (no processes started)
check: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

## test: install everything, lint, and run the whole suite (unit and integration, then containers)
test: install-test tools lint
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=12 --ignore=tests/containers
	$(MAKE) --no-print-directory test-containers

## test-containers: the image (Dockerfile on a stand-in base) and the chart's pods as Docker containers
## (docs/containers.md); starts dockerd when none answers, and fails here if it cannot
test-containers: install-test tools
	HPTUNE_REQUIRE_DOCKER=1 $(BIN)/python -m pytest -q -p no:cacheprovider -rs --durations=12 tests/containers

## flaky: run one tier N times (LOAD=1: every core kept busy beside it) and count each test's failures
TIER ?= tests/integration
N ?= 5
LOAD ?= 0
flaky: install-test tools
	HPTUNE_REQUIRE_DOCKER=1 $(BIN)/python scripts/flaky.py $(TIER) --runs $(N) $(if $(filter 1,$(LOAD)),--load)

bench: install-test
	$(BIN)/python -m benchmarks.trial_throughput

clean:
	rm -rf $(VENV) hptune-output .pytest_cache
