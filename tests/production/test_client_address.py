"""The client address the rate limit keys on comes from the platform, never from a header
anyone can send: in process (ASGI adapter + httpx.ASGITransport) on the devstack."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping

import httpx
import pytest

from devstack.dev import app_env
from shared.app.assembly import build_app
from shared.errors import ConfigError
from shared.http import HttpxTransport
from shared.settings import Settings
from shared.web.asgi import AsgiAdapter, client_ip_from
from shared.web.http import Headers
from tests.conftest import MINIMAL_ENV, Devstack

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"  # nothing listens: no job is ever delivered from here
LIMIT = 3
_hosts = itertools.count(1)


def fresh_address() -> str:
    """An address no other run used (a random /16 of 10/8), so budgets never carry over."""
    n = uuid.uuid4().int
    return f"10.{n % 256}.{(n >> 8) % 256}.{next(_hosts) % 250 + 1}"


def client_for(devstack: Devstack, peer: str, **overrides: str) -> httpx.AsyncClient:
    env: Mapping[str, str] = {
        **app_env(devstack.raw, APP_URL),
        "RATE_LIMIT": f"{LIMIT}/60s",
        **overrides,
    }
    adapter = AsgiAdapter(lambda: build_app(env, transport=HttpxTransport()))
    transport = httpx.ASGITransport(app=adapter, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def statuses(client: httpx.AsyncClient, headers: list[dict[str, str]]) -> list[int]:
    return [(await client.get("/api/health", headers=h)).status_code for h in headers]


async def test_rotating_forwarded_for_does_not_escape_the_limit(devstack: Devstack) -> None:
    """Without a trusted header, a new X-Forwarded-For per request still hits the peer's limit."""
    rotating = [
        {"x-forwarded-for": fresh_address(), "x-vercel-forwarded-for": fresh_address()}
        for _ in range(LIMIT + 2)
    ]
    async with client_for(devstack, fresh_address()) as client:
        answered = await statuses(client, rotating)
    assert answered[:LIMIT] == [200] * LIMIT
    assert answered[LIMIT:] == [429, 429], answered


async def test_trusted_proxy_header_takes_its_right_most_entry(devstack: Devstack) -> None:
    """With TRUSTED_PROXY_HEADER, the entry the proxy appended (right-most) is the client."""
    client_ip = fresh_address()
    spoofed = [{"x-forwarded-for": f"{fresh_address()}, {client_ip}"} for _ in range(LIMIT + 1)]
    distinct = [{"x-forwarded-for": f"{client_ip}, {fresh_address()}"} for _ in range(LIMIT + 1)]
    peer = fresh_address()
    async with client_for(devstack, peer, TRUSTED_PROXY_HEADER="X-Forwarded-For") as client:
        assert (await statuses(client, spoofed))[-1] == 429
        assert await statuses(client, distinct) == [200] * (LIMIT + 1)


async def test_vercel_uses_x_vercel_forwarded_for(devstack: Devstack) -> None:
    """On Vercel (VERCEL=1) the address is x-vercel-forwarded-for; X-Forwarded-For is ignored."""
    client_ip = fresh_address()
    same_client = [
        {"x-vercel-forwarded-for": client_ip, "x-forwarded-for": fresh_address()}
        for _ in range(LIMIT + 1)
    ]
    others = [{"x-vercel-forwarded-for": fresh_address()} for _ in range(LIMIT + 1)]
    async with client_for(devstack, "127.0.0.1", VERCEL="1") as client:
        assert (await statuses(client, same_client))[-1] == 429
        assert await statuses(client, others) == [200] * (LIMIT + 1)


def test_client_ip_rules() -> None:
    """The trusted header's right-most non-empty entry, else the socket peer; no header: peer."""
    scope = {"client": ("192.0.2.9", 1234)}
    xff = Headers([("x-forwarded-for", "198.51.100.1, 203.0.113.5")])
    assert client_ip_from(xff, scope) == "192.0.2.9"
    assert client_ip_from(xff, scope, "x-forwarded-for") == "203.0.113.5"
    assert client_ip_from(xff, scope, "x-real-ip") == "192.0.2.9"
    assert client_ip_from(Headers([("x-real-ip", " , ")]), scope, "x-real-ip") == "192.0.2.9"
    assert client_ip_from(Headers(), {}, "x-real-ip") is None


BASE = MINIMAL_ENV


def test_client_ip_header_setting() -> None:
    """TRUSTED_PROXY_HEADER wins (lower-cased), VERCEL=1 means x-vercel-forwarded-for, a bad
    name is a ConfigError naming the variable, and nothing set means the socket peer."""
    assert Settings.from_env(BASE).client_ip_header is None
    assert Settings.from_env({**BASE, "VERCEL": "1"}).client_ip_header == "x-vercel-forwarded-for"
    both = {**BASE, "VERCEL": "1", "TRUSTED_PROXY_HEADER": "X-Real-IP"}
    assert Settings.from_env(both).client_ip_header == "x-real-ip"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, "TRUSTED_PROXY_HEADER": "x-real-ip: 1.2.3.4"})
    assert info.value.variable == "TRUSTED_PROXY_HEADER"
    assert "1.2.3.4" not in str(info.value)
