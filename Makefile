# Quick start (see README):   make run    # dvc repro on the real data
#                             make test   # the test suite
# Both create .venv and install the pinned stack on first use.
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: setup run params test test-fast bench clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

params: setup          ## compose conf/ into params.yaml
	python -m pipeline.config

run: params            ## the whole pipeline: prepare -> train -> evaluate -> tune
	dvc repro

test: setup            ## every test, the real-data ones included
	python -m pytest

test-fast: setup       ## unit tests only (no real data)
	python -m pytest -m "not slow"

bench: setup           ## plain fit vs the pipeline's fit loop
	python bench/train_speed.py
