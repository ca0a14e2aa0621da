# Two commands: `make dev` (run the stack) and `make test` (everything CI runs).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY_FILE := .venv/.python-path
VENV_PY := .venv/bin/python

.PHONY: help setup setup-python setup-node setup-browser dev dev-worker test test-fast lint bench clean

help:
	@echo "make dev    - start the local stack, the console and the API (PORT=8000 by default)"
	@echo "make test   - install what is missing, lint, type-check and run every test layer"
	@echo "make bench  - side-by-side benchmarks against the official Upstash SDKs"
	@echo "make smoke  - opt-in check against REAL Upstash (credentials from the environment)"

# Idempotent. setup-python finds Python >= 3.12, installs uv if missing and syncs .venv
# from uv.lock (the dev group: all `make dev` needs). setup-node runs `npm ci` (the Worker
# in Pyodide, wrangler and the JS tests). setup-browser adds the browser test group
# (Playwright, no browsers downloaded) and Chromium from the distribution's packages.
setup: setup-python setup-node

setup-python:
	@set -e; PY=$$(tools/find-python); \
	if ! "$$PY" -m uv --version >/dev/null 2>&1; then \
	    echo "installing uv for $$PY"; "$$PY" -m pip install --quiet uv; fi; \
	"$$PY" -m uv sync --locked --inexact --python "$$PY" --quiet; \
	echo "$$PY" > $(PY_FILE)

setup-node:
	@if [ -f package.json ]; then \
	    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	        npm ci --no-audit --no-fund --loglevel=error; fi; fi

setup-browser: setup-python
	@"$$(cat $(PY_FILE))" -m uv sync --locked --inexact --group browser --quiet
	@tools/ensure-chromium

# Only what the uvicorn path needs (no npm). `make dev PORT=8001` serves the API elsewhere.
dev: setup-python
	@$(VENV_PY) -m devstack dev $(if $(PORT),--port $(PORT))

dev-worker: setup
	@$(VENV_PY) -m devstack dev --worker $(if $(PORT),--port $(PORT))

lint: setup
	$(VENV_PY) -m ruff check .
	$(VENV_PY) -m ruff format --check .
	$(VENV_PY) -m mypy

test: setup setup-browser lint
	$(VENV_PY) -m pytest

test-fast: setup
	$(VENV_PY) -m pytest -m "not pyodide and not launcher and not bundle and not browser and not newcomer"

bench: setup
	$(VENV_PY) -m bench

clean:
	rm -rf .venv node_modules .build .pytest_cache .mypy_cache .ruff_cache .state

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
