"""The Worker in real Pyodide with the loopback fault proxy in front of Redis REST.

The Worker's transport (worker/js_fetch.py) bounds each exchange with an abort signal on a JS
timer, body included, instead of a Python timer: a Redis that hangs, or
answers its head and then drips the body, still gets a JSON 503 within the route's bound.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from devstack.dev import app_env
from devstack.ports import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faults"))
from proxy import FaultProxy
from runner import serve_worker

# The limiter's budget is 1 s and the health route's own Redis view 2 s (whole calls): the
# answer is due by then; the rest is slack for a loaded machine.
HEALTH_BOUND_S = 2.0
SLACK_S = 2.5


@pytest.fixture(scope="module")
def redis_proxy(devstack: Any) -> Iterator[FaultProxy]:
    target = urlsplit(str(devstack.raw["redis_rest_url"]))
    proxy = FaultProxy((target.hostname or "127.0.0.1", target.port or 80)).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def faulty_worker(worker_bundle: Any, devstack: Any, redis_proxy: FaultProxy) -> Iterator[str]:
    """The dry-run output served in Pyodide 314, its Redis REST URL through the proxy."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**app_env(devstack.raw, url), "UPSTASH_REDIS_REST_URL": redis_proxy.url}
    env["RATE_LIMIT"] = "1000/10s"
    with serve_worker("314", worker_bundle.outdir, env, port=port) as served:
        yield served


@pytest.mark.parametrize("mode", ["hang", "drip", "reset", "refuse"])
def test_health_answers_503_in_time_when_redis_fails(
    faulty_worker: str, redis_proxy: FaultProxy, mode: str
) -> None:
    """A hanging, dripping, resetting or refusing Redis gives a JSON 503 within the bound."""
    redis_proxy.set_mode("pass")
    with httpx.Client(timeout=30) as http:
        ok = http.get(f"{faulty_worker}/api/health", headers={"CF-Connecting-IP": "192.0.2.7"})
        assert ok.status_code == 200, ok.text  # the proxy passes: the Worker is healthy
        redis_proxy.set_mode(mode, delay=0.4)  # type: ignore[arg-type]
        try:
            started = time.monotonic()
            response = http.get(
                f"{faulty_worker}/api/health", headers={"CF-Connecting-IP": "192.0.2.7"}
            )
            elapsed = time.monotonic() - started
        finally:
            redis_proxy.set_mode("pass")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json() or response.json().get("status") == "degraded"
    assert elapsed < HEALTH_BOUND_S + SLACK_S, f"{mode}: answered after {elapsed:.1f} s"
