"""The Cloudflare bundle: what `wrangler deploy --dry-run` uploads after the `[build]` step
stages worker/ + shared/ into `.build/worker` (the bundle's base_dir)."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.bundle

# Directories that must never reach the upload (they were swept in with base_dir = ".").
FORBIDDEN = ("tests/", ".venv/", "node_modules/", "devstack/", "bench/", "vercel_api/", ".build/")
SHARED_SAMPLES = (
    "shared/__init__.py",
    "shared/web/app.py",
    "shared/app/assembly.py",
    "shared/redis/client.py",
    "shared/http/fetch.py",
    "shared/orders/read_api.py",
    "shared/orders/confirmation.py",
    "shared/jobs/outbox.py",
    "shared/settings.py",
)


def test_build_step_ran(worker_bundle: Any) -> None:
    """wrangler ran the `[build]` command, which staged the modules into `.build/worker`."""
    output = worker_bundle.stdout + worker_bundle.stderr
    assert "python3 tools/stage_worker.py" in output
    assert re.search(r"staged \d+ Python modules into \S*\.build/worker", output), output


def test_output_holds_entry_adapter_and_shared(worker_bundle: Any) -> None:
    """The output has the main module `entry.py` at the root, the adapter and shared/ modules."""
    modules = worker_bundle.modules()
    assert "entry.py" in modules
    assert "worker_adapter.py" in modules
    assert "js_fetch.py" in modules
    for name in SHARED_SAMPLES:
        assert name in modules, f"{name} missing from {modules}"
    python = [m for m in modules if m.endswith(".py")]
    root = ("entry.py", "worker_adapter.py", "js_fetch.py")
    assert all(m in root or m.startswith("shared/") for m in python)


def test_output_has_no_project_clutter(worker_bundle: Any) -> None:
    """No tests, venvs, node_modules, devstack, bench or caches ended up in the upload."""
    modules = worker_bundle.modules()
    leaked = [m for m in modules if m.startswith(FORBIDDEN) or "/." in f"/{m}"]
    leaked += [m for m in modules if "__pycache__" in m or m.endswith(".pyc")]
    assert not leaked, leaked
    # Everything is either a Python module or wrangler's own README.md about the dry run.
    assert {m.rsplit(".", 1)[-1] for m in modules if "." in m.split("/")[-1]} <= {"py", "md"}


def test_printed_module_table_lists_shared(worker_bundle: Any) -> None:
    """wrangler's printed module table lists shared/ modules and the adapter as python."""
    table = worker_bundle.stdout
    assert "Attaching additional modules" in table
    for name in ("shared/web/app.py", "shared/redis/client.py", "worker_adapter.py"):
        assert re.search(rf"│ {re.escape(name)}\s+│ python\s+│", table), f"{name} not in table"
    assert not re.search(r"│ (tests|devstack|bench|node_modules|\.venv)/", table)
    listed = len(re.findall(r"│ shared/\S+\.py\s+│ python", table))
    staged = sum(1 for m in worker_bundle.modules() if m.startswith("shared/"))
    assert listed == staged, (listed, staged)
