# Two entry points, each doing its own set-up on a fresh machine:
#   make run   - create .venv, install gpugrad, run the main job (train an MLP on digits)
#   make test  - create .venv, install gpugrad with its test extras, run the tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench gpu-check gpu-check-installed clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[datasets,plot]"
	touch $@

$(VENV)/.installed-dev: $(PY) pyproject.toml examples/gpugrad-swish-plugin/pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet -e examples/gpugrad-swish-plugin
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/gpugrad train

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(VENV)/bin/gpugrad bench

# On a machine with an NVIDIA GPU (CUDA 13): CuPy, then every gpu-marked test (fused
# kernels against their references, CPU against CUDA, compiled plans on CUDA, NCCL) and
# the benchmark suite on the GPU beside PyTorch CUDA, its records in bench-cuda.json.
gpu-check: $(VENV)/.installed-dev
	$(PY) -m pip install --quiet -e ".[cuda13]"
	$(PY) -m pytest -q -m gpu -rs
	$(VENV)/bin/gpugrad bench --device cuda --max-nodes 100000 --json bench-cuda.json

# The same on a machine whose python3 already has CuPy, PyTorch, networkx, pytest and
# hypothesis (no virtualenv, no network): the checkout runs from where it is.
gpu-check-installed:
	PYTHONPATH=$(CURDIR) python3 -m pytest -q -m gpu -rs -p no:cacheprovider tests
	PYTHONPATH=$(CURDIR) python3 -m gpugrad bench --device cuda --max-nodes 100000 \
		--json bench-cuda.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
