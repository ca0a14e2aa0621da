"""The real app in process (ASGI adapter + httpx.ASGITransport) on the devstack, and signed
QStash deliveries for its job route: what QStash would send, without waiting for QStash."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from devstack.dev import app_env
from shared.app.assembly import build_app
from shared.http import HttpxTransport
from shared.qstash.signing import delivery_claims, sign_jwt
from shared.web.asgi import AsgiAdapter
from tests.conftest import Devstack

BASE_URL = "http://testserver"
JOB_PATH = "/api/jobs/send-confirmation"


def app_test_env(devstack: Devstack, **overrides: str) -> dict[str, str]:
    """The app's environment on the devstack, with a rate limit no test reaches."""
    return {**app_env(devstack.raw, BASE_URL), "RATE_LIMIT": "100000/10s", **overrides}


@asynccontextmanager
async def app_client(env: Mapping[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app built from `env`, in this process."""
    transport = HttpxTransport()
    adapter = AsgiAdapter(lambda: build_app(env, transport=transport))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=adapter), base_url=BASE_URL, timeout=60.0
        ) as client:
            yield client
    finally:
        await transport.aclose()


def signed_job(devstack: Devstack, order_id: str, path: str = JOB_PATH) -> dict[str, Any]:
    """Keyword arguments for `client.post(path, **...)`: the body and a valid signature."""
    body = json.dumps({"orderId": order_id, "requestId": "test"}).encode()
    claims = delivery_claims(BASE_URL + path, body, now=time.time(), jwt_id=uuid.uuid4().hex)
    token = sign_jwt(claims, str(devstack.raw["qstash_current_signing_key"]))
    return {
        "content": body,
        "headers": {"upstash-signature": token, "content-type": "application/json"},
    }


def unique_email(tag: str = "job") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"
