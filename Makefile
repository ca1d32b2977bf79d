# crossconv: `make crosscheck` (the main job) and `make test` work on a fresh clone.
# `setup` builds .venv from requirements.lock and installs crossconv into it (editable, every
# extra), again only when the pins or pyproject.toml change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pins-installed
EXTRAS := torch,jax,lua,onnx,figures,dev
PYTEST := $(PY) -m pytest -n 2

.PHONY: setup test test-reference test-harness crosscheck bench gpu-check figures lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock -e ".[$(EXTRAS)]"
	touch $@

# tests/triton runs in its own process: TRITON_INTERPRET is read when the kernels import.
test: setup
	$(PYTEST) tests --ignore=tests/triton
	TRITON_INTERPRET=1 $(PYTEST) tests/triton

test-reference: setup
	$(PYTEST) tests/reference

test-harness: setup
	$(PYTEST) tests --ignore=tests/reference

# The matrix on the terminal; the full report (every case) in build/crosscheck.{json,md}.
crosscheck: setup
	$(PY) -m crossconv crosscheck --json build/crosscheck.json --markdown build/crosscheck.md

# bench and figures refresh the docs (docs/benchmarks.md, docs/figures/); the crossconv
# commands alone write under build/.
bench: setup
	$(PY) -m crossconv bench --update-docs

# On a machine with one NVIDIA GPU: crosscheck --device cuda, every Triton and Pallas
# kernel against its anchor and its roofline, determinism of the backwards; the table in
# build/gpu-check.md. Exits 2 (one line) without a GPU.
gpu-check: setup
	$(PY) -m crossconv.gpu_check

# docs/figures/*.png; the heatmap reads build/crosscheck.json (a crosscheck runs first if
# it is missing: its exit status does not stop the figures).
figures: setup
	test -f build/crosscheck.json || $(PY) -m crossconv crosscheck --json build/crosscheck.json \
		--markdown build/crosscheck.md || true
	$(PY) -m crossconv figures --update-docs --report build/crosscheck.json

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV)
