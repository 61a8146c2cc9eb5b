# Two commands: `make tutorial` (run notebooks 01->07 on the tiny profile) and `make test`.
# Both create .venv when it is missing, from requirements.lock: the exact versions CI tested.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
PROFILE ?= tiny
# Offline by default for the profiles that need nothing from the Hub (tiny, smoke); the GPU profiles (t4-16gb,
# 24gb) download Qwen2.5 and GSM8K, so they are left online.
ifneq ($(filter tiny smoke,$(PROFILE)),)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
endif
export TOKENIZERS_PARALLELISM ?= false
# The CPU build of torch this project is tested with. Not in the lock: an existing torch (Colab, a CUDA box) is kept.
TORCH_CPU := torch==2.13.0
# Where pip looks for it: empty, pip's own configuration (the machines this project is tested on have the CPU build
# on local disk); elsewhere PyPI's Linux build pulls CUDA libraries, so name the CPU build's index, e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
TORCH_PIP := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_CPU)"

.PHONY: tutorial test benchmarks benchmarks-gpu clean-runs lock floor

# The Python the lock was made with (its first line): an older one lacks some of its versions (numpy 2.4 needs 3.11),
# and pip would only say that it finds no numpy==2.4.6
LOCK_PYTHON := $(shell head -1 $(LOCK) | grep -o 'Python [0-9]*\.[0-9]*' | cut -d' ' -f2)

$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -c 'import sys; sys.version_info[:2] >= tuple(map(int, "$(LOCK_PYTHON)".split("."))) \
	  or sys.exit(f"{sys.executable} is Python {sys.version.split()[0]}; the versions of requirements.lock need \
	Python $(LOCK_PYTHON) or later: name one (make test PYTHON=python$(LOCK_PYTHON)), \
	or install without the lock (pip install -e .)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep '^pip==' $(LOCK))"
	# Keep a torch that is already in the venv (one made with --system-site-packages sees a CUDA box's); else take
	# the CPU build (see TORCH_INDEX).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIP)
	# The lock is a constraints file: every package gets the version CI tested, whatever PyPI has today.
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
	touch $@

tutorial: $(VENV)/.installed
	$(PY) -m stepdpo_lite.tutorial --profile $(PROFILE)

# The tests never reach the Hub, whatever PROFILE is. Two pytest workers (pytest-xdist), each test file on one worker,
# in order: the tiny and the smoke profile's notebook runs are two files, side by side, and the cores are split
# between the workers (tests/conftest.py). Alone, a test of tiny models leaves a second core mostly idle; more workers
# would not shorten the tiny run, the longest file. `make test TEST_WORKERS=0` runs the suite in one process.
TEST_WORKERS ?= 2
test: export HF_HUB_OFFLINE := 1
test: export HF_DATASETS_OFFLINE := 1
test: $(VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

benchmarks: $(VENV)/.installed
	$(PY) benchmarks/prm_scoring.py
	$(PY) benchmarks/step_time.py

# Peak GPU memory and tokens/s of the t4-16gb and 24gb profiles (needs a CUDA GPU; docs/benchmarks.md).
benchmarks-gpu: $(VENV)/.installed
	PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True $(PY) benchmarks/gpu_profiles.py

# A fresh venv at $(1) with the current pip and the torch this project is tested with (TORCH_PIP), for `lock` and
# `floor`; then the whole test suite, as `make test` runs it, in such a venv.
define fresh_venv_with_torch
rm -rf $(1)
$(PYTHON) -m venv $(1)
$(1)/bin/python -m pip install -q --upgrade pip
$(1)/bin/python -m pip install -q $(TORCH_PIP)
endef
SUITE := -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# Refresh the lock: a fresh venv with the newest releases pyproject.toml allows, the whole test suite in it,
# and only if that passes, its exact versions written to requirements.lock. Then commit the lock.
LOCK_VENV := .venv-lock
lock:
	$(call fresh_venv_with_torch,$(LOCK_VENV))
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade -e ".[dev]"
	$(LOCK_VENV)/bin/python $(SUITE)
	{ echo "# Exact versions of every dependency; \`make lock\` ran the tests with them on $$(date -u +%F) (Python $$($(LOCK_VENV)/bin/python -c 'import platform; print(platform.python_version())'), $(TORCH_CPU) CPU)."; \
	  echo "# make installs with \`pip install -c requirements.lock -e .[dev]\`; torch is left out on purpose (see Makefile)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v -i -E '^(torch|stepdpo[-_]lite)[=@ ]'; \
	} > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	rm -rf $(LOCK_VENV)

# Test pyproject.toml's lower bounds, which the lock never installs: a fresh venv with the oldest release each
# direct dependency allows (uv's lowest-direct resolution; theirs at the newest), torch as `lock` installs it and
# held there, the whole test suite in it, then the venv removed. Run it after raising a floor or before a release.
FLOOR_VENV := .venv-floor
floor:
	$(call fresh_venv_with_torch,$(FLOOR_VENV))
	$(FLOOR_VENV)/bin/python -m pip install -q uv
	echo "$(TORCH_CPU)" > $(FLOOR_VENV)/torch.txt
	$(FLOOR_VENV)/bin/uv pip install -q --python $(FLOOR_VENV)/bin/python --resolution lowest-direct \
	  --overrides $(FLOOR_VENV)/torch.txt -e ".[dev]"
	$(FLOOR_VENV)/bin/python $(SUITE)
	rm -rf $(FLOOR_VENV)

clean-runs:
	rm -rf runs/
