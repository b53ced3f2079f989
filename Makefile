# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
PIPELINE ?= pipelines/train.yaml

export MLFLOW_DISABLE_TELEMETRY = true

.PHONY: venv run test bench format ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv            ## the default job on the bundled real sample
	$(BIN)/mlalgo run $(PIPELINE)

test: venv           ## the whole suite, lint included
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/pytest

bench: venv          ## speed against peer libraries, measured in the same run
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks.bench_kernels
	$(BIN)/python -m benchmarks.bench_online
	$(BIN)/python -m benchmarks.bench_spec
	$(BIN)/python -m benchmarks.bench_tune
	$(BIN)/python -m benchmarks.bench_backtest
	$(BIN)/python -m benchmarks.bench_inference
	$(BIN)/python -m benchmarks.bench_serving
	$(BIN)/python -m benchmarks.bench_live

format: venv
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

ui: venv             ## MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlalgo ui --port 5000

clean:               ## remove local runs, bundles and scheduler state (keeps the environment)
	rm -rf mlruns.db mlartifacts models/*/ .mlalgo
