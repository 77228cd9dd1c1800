# `make repro`: run the pipeline on the embedded data.  `make test`: run the tests.
# Both create .venv when it is missing and install the project into it.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed

export PATH := $(BIN):$(PATH)
export MLFLOW_DISABLE_TELEMETRY ?= true
export DVC_NO_ANALYTICS ?= 1

.PHONY: install repro test lint bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

repro: install
	dvc repro

test: install
	python -m pytest

lint: install
	ruff check src tests benchmarks && ruff format --check src tests benchmarks

bench: install
	python benchmarks/overhead.py
