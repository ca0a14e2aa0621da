"""Fixtures for the Worker layer: the exact `wrangler deploy --dry-run` output, and that output
served in real Pyodide (one boot per Pyodide version) against the session devstack.

`worker_bundle` runs wrangler once per session (its `[build]` step stages worker/ + shared/).
`served_worker` starts, per Pyodide version, one `worker_harness.mjs --serve` process on a port
picked up front, so APP_URL is the Worker's own URL and the local QStash can call it back.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.dev import app_env
from devstack.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PYODIDE_TESTS = REPO_ROOT / "tests" / "pyodide"

# pytest runs with --import-mode=importlib: make tests/pyodide/runner.py and our worker_testkit.py
# importable, and reuse the Pyodide version matrix fixture from tests/pyodide/conftest.py (loaded
# under its own module name).
sys.path.insert(0, str(PYODIDE_TESTS))
sys.path.insert(0, str(Path(__file__).resolve().parent))
_spec = importlib.util.spec_from_file_location(
    "_pyodide_layer_conftest", PYODIDE_TESTS / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_pyodide_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_pyodide_conftest)
pyodide_version = _pyodide_conftest.pyodide_version

import redis as redis_py  # noqa: E402
from runner import PyodideRunError, serve_worker  # noqa: E402
from worker_testkit import (  # noqa: E402
    DELIVERY_TIMEOUT,
    emails_to,
    seed_order,
    seed_outbox_job,
)

from shared.jobs.outbox import OUTBOX_KEY  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402

WRANGLER_TIMEOUT = 120.0
RATE_LIMIT = "3/10s"


@dataclass(frozen=True)
class WorkerBundle:
    """What `wrangler deploy --dry-run --outdir DIR` produced."""

    outdir: Path
    stdout: str
    stderr: str
    seconds: float

    def modules(self) -> list[str]:
        """Every file in the output, relative and with forward slashes, sorted."""
        files = (p for p in self.outdir.rglob("*") if p.is_file())
        return sorted(p.relative_to(self.outdir).as_posix() for p in files)


@pytest.fixture(scope="session")
def worker_bundle(tmp_path_factory: pytest.TempPathFactory) -> WorkerBundle:
    """Runs `npx wrangler deploy --dry-run --outdir <tmp>` once (it runs the [build] step)."""
    outdir = tmp_path_factory.mktemp("wrangler-dry-run")
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "1", "NO_COLOR": "1"}
    started = time.perf_counter()
    proc = subprocess.run(
        ["npx", "--no-install", "wrangler", "deploy", "--dry-run", "--outdir", str(outdir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WRANGLER_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    seconds = round(time.perf_counter() - started, 2)
    assert proc.returncode == 0, (
        f"wrangler dry-run failed (rc={proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return WorkerBundle(outdir, proc.stdout, proc.stderr, seconds)


@dataclass
class ServedWorker:
    """One Pyodide process serving the dry-run output; `env` is what the Worker reads."""

    version: str
    url: str
    env: dict[str, str]
    boot_seconds: float
    warm_up: dict[str, Any] = field(default_factory=dict)

    @property
    def job_url(self) -> str:
        return f"{self.url}/api/jobs/send-confirmation"


class WorkerPool:
    """Serves the bundle once per Pyodide version, on first use; stops them all at teardown."""

    def __init__(self, bundle: WorkerBundle, devstack_info: dict[str, object]) -> None:
        self._bundle = bundle
        self._info = devstack_info
        self._stack = ExitStack()
        self._served: dict[str, ServedWorker] = {}

    def get(self, version: str) -> ServedWorker:
        if version not in self._served:
            self._served[version] = self._start(version)
        return self._served[version]

    def _start(self, version: str) -> ServedWorker:
        last: Exception | None = None
        for _ in range(3):  # the port is picked before the bind: retry if someone took it
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**app_env(self._info, url), "RATE_LIMIT": RATE_LIMIT}
            started = time.perf_counter()
            try:
                served_url = self._stack.enter_context(
                    serve_worker(version, self._bundle.outdir, env, port=port)
                )
            except PyodideRunError as exc:
                last = exc
                continue
            assert served_url == url, (served_url, url)
            worker = ServedWorker(version, url, env, round(time.perf_counter() - started, 2))
            worker.warm_up = _warm_up(worker, self._info)
            return worker
        raise AssertionError(f"could not serve the Worker (3 tries): {last}")

    def close(self) -> None:
        self._stack.close()


def _warm_up(worker: ServedWorker, info: dict[str, Any]) -> dict[str, Any]:
    """The isolate's first request, with a job waiting in the outbox: a fresh isolate assumes
    the outbox may hold jobs, so it flushes in the background after answering. Waiting here
    until that flush is done (job published, email sent) also means later requests no longer
    flush behind a test's back (the outbox is known empty). Returns what happened."""
    email_api_url = str(info["email_api_url"])
    with (
        redis_py.Redis.from_url(str(info["redis_url"]), decode_responses=True) as redis,
        httpx.Client(timeout=30) as http,
    ):
        record, _ = seed_order(redis)
        job = seed_outbox_job(redis, record, worker.job_url)
        response = http.get(f"{worker.url}/api/health", headers={"CF-Connecting-IP": "192.0.2.1"})
        wait_for(
            lambda: not redis.hexists(OUTBOX_KEY, job.id),
            "the background outbox flush",
            timeout=DELIVERY_TIMEOUT,
        )
        emails = wait_for(
            lambda: emails_to(http, email_api_url, record.customer_email),
            "the warm-up email",
            timeout=DELIVERY_TIMEOUT,
        )
        wait_for(
            lambda: redis.exists(f"email:sent:{record.id}"),
            "the warm-up sent marker",
            timeout=DELIVERY_TIMEOUT,
        )
        return {
            "status": response.status_code,
            "outbox_entry_removed": not redis.hexists(OUTBOX_KEY, job.id),
            "emails": len(emails),
        }


@pytest.fixture(scope="module")
def worker_pool(worker_bundle: WorkerBundle, devstack: object) -> Iterator[WorkerPool]:
    pool = WorkerPool(worker_bundle, devstack.raw)  # type: ignore[attr-defined]
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def served_worker(worker_pool: WorkerPool, pyodide_version: str) -> ServedWorker:
    """The dry-run output served in Pyodide `pyodide_version` (booted once per module)."""
    return worker_pool.get(pyodide_version)


_ADDRESSES = random.sample(range(1, 255), 254)


@pytest.fixture(scope="session")
def client_ips() -> Iterator[str]:
    """Unique client addresses 198.51.100.X for this session (rate limits are per IP)."""
    return iter(f"198.51.100.{n}" for n in _ADDRESSES)
