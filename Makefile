# Two commands: `make dev` (run the stack) and `make test` (everything CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_FILE := .venv/.python-path
VENV_PY := .venv/bin/python

.PHONY: help setup dev dev-worker test test-fast lint bench clean

help:
	@echo "make dev    - start the local stack (Redis REST, QStash, email sink) and the API"
	@echo "make test   - install what is missing, lint, type-check and run every test layer"
	@echo "make bench  - side-by-side benchmarks against the official Upstash SDKs"
	@echo "make smoke  - opt-in check against REAL Upstash (credentials from the environment)"

# Idempotent: finds Python >= 3.12, installs uv if missing, syncs .venv from
# uv.lock, and runs `npm ci` when package.json exists.
setup:
	@set -e; PY=$$(tools/find-python); \
	if ! "$$PY" -m uv --version >/dev/null 2>&1; then \
	    echo "installing uv for $$PY"; "$$PY" -m pip install --quiet uv; fi; \
	"$$PY" -m uv sync --locked --python "$$PY" --quiet; \
	echo "$$PY" > $(PY_FILE)
	@if [ -f package.json ]; then \
	    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	        npm ci --no-audit --no-fund --loglevel=error; fi; fi

dev: setup
	$(VENV_PY) -m devstack dev

dev-worker: setup
	$(VENV_PY) -m devstack dev --worker

lint: setup
	$(VENV_PY) -m ruff check .
	$(VENV_PY) -m ruff format --check .
	$(VENV_PY) -m mypy

test: setup lint
	$(VENV_PY) -m pytest

test-fast: setup
	$(VENV_PY) -m pytest -m "not pyodide and not launcher and not bundle"

bench: setup
	$(VENV_PY) -m bench

clean:
	rm -rf .venv node_modules .build .pytest_cache .mypy_cache .ruff_cache

# Opt-in: checks our clients against REAL Upstash Redis/QStash with credentials from the
# environment (skips, exit 0, when they are absent). See tools/smoke.py.
.PHONY: smoke
smoke: setup
	$(VENV_PY) tools/smoke.py

# QStash operations for a deployment (schedule-flush, dlq, dlq-retry, log, ...): see
# tools/qstash.py. Example: make qstash ARGS="dlq" (credentials from the environment).
.PHONY: qstash
qstash: setup
	$(VENV_PY) -m tools.qstash $(ARGS)
