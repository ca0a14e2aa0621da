"""Starting the app imports no pydantic: the order-creation and OpenAPI routes load it on
their first request, and answer 503 when it cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devstack.dev import app_env
from tests.conftest import Devstack

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, json, os, sys
if os.environ.get("BLOCK_PYDANTIC"):
    sys.modules["pydantic"] = None  # as in offline Pyodide: the import fails
import httpx
from shared.web.asgi import AsgiAdapter
from shared.app.assembly import build_app
from shared.http import HttpxTransport

env = json.loads(os.environ["APP_ENV"])
seen = {}
loaded = lambda: sys.modules.get("pydantic") is not None

async def main():
    transport = HttpxTransport()
    adapter = AsgiAdapter(lambda: build_app(env, transport=transport))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=adapter), base_url="http://testserver"
    ) as client:
        health = await client.get("/api/health")
        order = await client.get("/api/orders/ord_0000000000000000000000")
        seen["before"] = [health.status_code, order.status_code, loaded()]
        created = await client.post("/api/orders", json={
            "customer_email": "lazy@example.com", "currency": "EUR",
            "items": [{"sku": "A1", "quantity": 1, "unit_price_cents": 100}]})
        spec = await client.get("/api/openapi.json")
        seen["after"] = [created.status_code, spec.status_code, loaded()]
        seen["error"] = created.json().get("error")
    seen["management"] = sorted(
        m for m in ("shared.qstash.admin", "shared.qstash.manage") if m in sys.modules
    )
    await transport.aclose()

asyncio.run(main())
print(json.dumps(seen))
"""


def _run(devstack: Devstack, *, block: bool) -> dict[str, list[object]]:
    env = {**app_env(devstack.raw, "http://testserver"), "RATE_LIMIT": "100000/10s"}
    child_env = {**os.environ, "APP_ENV": json.dumps(env), "PYTHONPATH": str(REPO)}
    if block:
        child_env["BLOCK_PYDANTIC"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, list[object]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_pydantic_is_imported_by_the_first_order_creation_only(devstack: Devstack) -> None:
    """Building the app and serving health and order reads leave pydantic unimported;
    the first POST /api/orders imports it and creates the order."""
    seen = _run(devstack, block=False)
    assert seen["before"] == [200, 404, False]
    assert seen["after"] == [201, 200, True]


def test_serving_requests_never_loads_the_qstash_management_client(devstack: Devstack) -> None:
    """The app (health, orders, OpenAPI) never imports `QStashAdmin` and its request builders:
    they serve the operator's tools, not requests, and would cost every cold start."""
    assert _run(devstack, block=False)["management"] == []


def test_without_pydantic_creation_and_openapi_answer_503(devstack: Devstack) -> None:
    """Where pydantic cannot be imported, both routes that need it answer 503, the rest 200."""
    seen = _run(devstack, block=True)
    assert seen["before"] == [200, 404, False]
    assert seen["after"] == [503, 503, False]
    assert seen["error"] == "Order creation is unavailable: pydantic could not be imported"
