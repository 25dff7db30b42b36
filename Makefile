# duanka front door. `make run` trains and scores; `make test` runs every test, notebooks included.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: run test lint bench bench-spark ui train score-samples clean help

help:
	@echo "make run    - create .venv, install, train the default model, score sample posts"
	@echo "make test   - install the dev extra and run the whole test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmark duanka against rules, a naive baseline and fastText"
	@echo "make bench-spark - duanka score (one process) against duanka.adapters.spark on local[2], 200,000 rows"
	@echo "make ui     - open the MLflow UI on the local store (http://127.0.0.1:5000)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

TRAIN_STAMP := $(VENV)/.train-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

# `make run` needs training and scoring only; `make test` installs every extra.
$(TRAIN_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[train]"
	@rm -f $(VENV)/.train-* && touch $(TRAIN_STAMP)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,spark,serve]"
	@rm -f $(VENV)/.installed-* $(VENV)/.train-* && touch $(STAMP) $(TRAIN_STAMP)

install: $(STAMP)

train: $(TRAIN_STAMP)
	$(BIN)/duanka train

score-samples: $(TRAIN_STAMP)
	@$(BIN)/python scripts/score_samples.py

run: train score-samples

# Label Studio's own validators (label-studio-sdk) pin numpy < 2.3 through opencv: they get a venv of their own, which
# tests/test_labelstudio.py runs the exported tasks and label config through ($$DUANKA_LABEL_STUDIO_PYTHON).
LS_VENV := .venv-labelstudio
LS_SDK := label-studio-sdk==2.1.2
LS_STAMP := $(LS_VENV)/.installed-$(LS_SDK)

$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet "$(LS_SDK)"
	@touch $(LS_STAMP)

test: $(STAMP) $(LS_STAMP)
	DUANKA_LABEL_STUDIO_PYTHON=$(abspath $(LS_VENV))/bin/python $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-spark: $(STAMP)
	$(BIN)/python -m benchmarks.spark_bench

ui: $(TRAIN_STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf $(VENV) $(LS_VENV) models/duanka mlruns/mlflow.db mlruns/artifacts .pytest_cache
