# Two entry points, each doing its own set-up on a fresh machine:
#   make run   - create .venv, install gpugrad, run the main job (train an MLP on digits)
#   make test  - create .venv, install gpugrad with its test extras, run the tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench clean

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

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
