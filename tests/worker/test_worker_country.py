"""The Worker passes the client's country from `request.cf` (what workerd sets) to the deny
lists: DENY_COUNTRIES answers 403 on Workers, and Vercel's header is not trusted there."""

from __future__ import annotations

from typing import Any

import pytest
from runner import run_worker_requests

from devstack.dev import app_env

pytestmark = pytest.mark.pyodide


def test_deny_countries_blocks_the_cf_country(
    pyodide_version: str, worker_bundle: Any, devstack: Any
) -> None:
    """`cf.country` XX (listed) answers 403 naming the list; FR passes; without `cf`, an
    `x-vercel-ip-country: XX` header a client sent is ignored."""
    env = {**app_env(devstack.raw, "http://127.0.0.1:9"), "DENY_COUNTRIES": "XX,T1"}
    ip = {"cf-connecting-ip": "10.77.0.1"}
    requests = [
        {"path": "/api/health", "headers": ip, "cf": {"country": "XX"}},
        {"path": "/api/health", "headers": ip, "cf": {"country": "FR"}},
        {"path": "/api/health", "headers": {**ip, "x-vercel-ip-country": "XX"}},
    ]
    result = run_worker_requests(pyodide_version, worker_bundle.outdir, requests, env)
    denied, allowed, spoofed = result["responses"]
    assert denied.get("status") == 403, (denied, result.get("stderr", "")[-2000:])
    assert '"detail": "deny_country"' in denied["body"].replace('":"', '": "'), denied
    assert allowed.get("status") == 200, allowed
    assert spoofed.get("status") == 200, spoofed
