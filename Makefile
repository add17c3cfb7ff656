# DSPEx developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
PACKAGES := contracts libs/dspex_kernel libs/dspex_simlm libs/dspex_runtime services/kernel services/evaluator services/optimizer services/registry libs/dspex_client
LINT_PATHS := libs services contracts tests bench examples
TYPED_PATHS := contracts/src contracts/tools libs/dspex_kernel/src libs/dspex_simlm/src libs/dspex_runtime/src services/kernel/src services/evaluator/src services/optimizer/src services/registry/src libs/dspex_client/src
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: setup lint test test-fast soak demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements/bootstrap.txt requirements/dev.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bootstrap.txt
	# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set, every process would
	# otherwise compile litellm again on import (about 13 s of CPU per service start).
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --compile-bytecode --require-hashes requirements/dev.txt
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps --no-build-isolation $(addprefix -e ,$(PACKAGES))
	touch $@

lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(TYPED_PATHS)

test: lint
	$(VENV)/bin/pytest

test-fast: setup
	$(VENV)/bin/pytest -m unit

# The long runs of the reliability suite: ten minutes of load, 10,000 bad messages per
# subject. Not part of `make test`.
soak: setup
	DSPEX_SOAK=1 $(VENV)/bin/pytest -s tests/reliability/test_load.py tests/reliability/test_bad_input.py

demo: setup
	$(PY) -m dspex_client.demo

bench: setup
	$(PY) bench/evaluate_throughput.py
	$(PY) bench/kernel_overhead.py
	$(PY) bench/exec_roundtrip.py
	$(PY) bench/evaluator_scaling.py
	$(PY) bench/optimizers.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
