# radseg developer commands. `make demo` and `make test` work from a bare clone:
# `setup` creates .venv at the repo root and installs everything the project needs.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.radseg-installed
PYTEST_ARGS ?=

.PHONY: setup test test-all bench demo clean

setup: $(STAMP)

# torch is pinned and installed first: with torch==2.13.0 present, monai's own torch
# requirement is already satisfied and pip never pulls the multi-GB CUDA build.
# compileall: an editable install leaves radseg's own modules uncompiled (pip compiles a normal
# install), and with PYTHONDONTWRITEBYTECODE set Python never caches them, so every command would
# compile ~25 modules again (~40 ms of each start, benchmarks/fixed_costs.py). Compiled once here.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[dev,train,web,scale]"
	$(BIN)/python -m compileall -q src
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Includes the slow checks.
test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow" $(PYTEST_ARGS)

# Side-by-side benchmarks (results and commands land in benchmarks/results/); about 40 minutes.
# The FracAtlas baseline trains for two hours: run benchmarks/fracatlas_baseline.py on its own.
bench: setup
	$(BIN)/python benchmarks/dicom_to_nifti.py
	$(BIN)/python benchmarks/surface_metrics.py
	$(BIN)/python benchmarks/features_accuracy.py --cases 20 --ct-cases 5
	$(BIN)/python benchmarks/annotate_speed.py --repeat 2
	$(BIN)/python benchmarks/annotate_hip_ct.py -n 24 --seed 7 --workers 2
	$(BIN)/python benchmarks/train_hip_xray.py --budget 300 --threads 2
	$(BIN)/python benchmarks/onnx_inference.py --model /tmp/radseg-bench/hip-xray-run/model --threads 2
	$(BIN)/python benchmarks/train_hip_ct.py --budget 300 --threads 2

# The main job (issue 11): synthesize, annotate, train, rank, evaluate, measure, export, report.
demo: setup
	$(BIN)/radseg demo -o runs/demo

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
