# crossconv: `make crosscheck` (the main job) and `make test` work on a fresh clone.
# `setup` builds .venv from requirements.lock, again only when the pins change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pins-installed
PYTEST := $(PY) -m pytest -n 2

.PHONY: setup test test-reference test-harness crosscheck bench lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $@

# tests/triton runs in its own process: TRITON_INTERPRET is read when the kernels import.
test: setup
	$(PYTEST) tests --ignore=tests/triton
	TRITON_INTERPRET=1 $(PYTEST) tests/triton

test-reference: setup
	$(PYTEST) tests/reference

test-harness: setup
	$(PYTEST) tests --ignore=tests/reference

crosscheck: setup
	$(PY) -m crossconv crosscheck

bench: setup
	$(PY) -m crossconv bench

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV)
