# Two commands: `make tutorial` (run notebooks 01->06 on the tiny profile) and `make test`.
# Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Offline by default: the tiny profile needs nothing from the Hub.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
PROFILE ?= tiny

.PHONY: tutorial test test-fast benchmarks benchmarks-gpu clean-runs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Keep a torch that is already there (Colab, a CUDA box); else take the CPU build 2.13.0,
	# which this kind of machine has on local disk (no multi-GB CUDA download).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

tutorial: $(VENV)/.installed
	$(PY) -m stepdpo_lite.tutorial --profile $(PROFILE)

test: $(VENV)/.installed
	$(PY) -m pytest -q

benchmarks: $(VENV)/.installed
	$(PY) benchmarks/prm_scoring.py
	$(PY) benchmarks/step_time.py

# Peak GPU memory and tokens/s of the t4-16gb and 24gb profiles (needs a CUDA GPU; docs/benchmarks.md).
benchmarks-gpu: $(VENV)/.installed
	PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True $(PY) benchmarks/gpu_profiles.py

clean-runs:
	rm -rf runs/
