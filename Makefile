# Quick start (see README):   make run    # dvc repro on the real data
#                             make test   # the test suite
# Both create .venv and install the pinned stack on first use.
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: setup run params test test-fast bench dashboard push pull exp-show clean-outputs

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

# The suite runs in one pytest-xdist worker per core (TEST_WORKERS=0: in this process). Most
# tests wait on a subprocess, a server or a one-threaded fit, so one worker leaves a core idle.
# --dist loadfile keeps a file's tests on one worker: its module fixtures (a prepared dataset,
# a trained model) are built once. --durations names the slowest tests of every run.
TEST_WORKERS ?= auto
PYTEST := python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

test: setup            ## lint, then every test, the real-data ones included
	ruff check src tests bench scripts
	ruff format --check src tests bench scripts
	$(PYTEST)

test-fast: setup       ## unit tests only (no real data)
	$(PYTEST) -m "not slow"

bench: setup           ## plain fit vs the pipeline's fit loop
	python bench/train_speed.py

# A team's outputs through the DVC remote `team` (.dvc/config; README: For a team)
push: setup            ## send data, models, metrics, plots and studies to the remote
	dvc push
pull: setup            ## get them (all or nothing: the workspace is untouched if any is missing)
	python -m pipeline.remote pull

# One experiment's `dvc exp` runs side by side (its params that differ, its headline metrics),
# fitted to the terminal: make exp-show experiment=wide_deep
exp-show: setup        ## dvc exp show, one experiment's columns only
	$(if $(experiment),,$(error name the experiment: make exp-show experiment=<name>))
	python -m pipeline.compare experiment=$(experiment)

# The studies in Optuna's web UI, on loopback: make dashboard experiment=wide_deep
#   [DIR=studies|tuning]  the user's resumable studies (default) or the DVC tune stage's
#   [STORAGE=postgresql://...]  a shared study instead of a journal file; [PORT=8080]
DIR  ?= studies
PORT ?= 8080
dashboard: setup       ## optuna-dashboard on an experiment's study
	$(if $(experiment),,$(error name the study's experiment: make dashboard experiment=<name>))
	optuna-dashboard --host 127.0.0.1 --port $(PORT) $(or $(STORAGE),$(DIR)/$(experiment)/study.journal)
