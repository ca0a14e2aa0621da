"""The client address the rate limit keys on comes from the platform, never from a header
anyone can send: in process (ASGI adapter + httpx.ASGITransport) on the devstack."""

from __future__ import annotations

import os
import socket
import subprocess
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from devstack.dev import app_env, vercel_server_command
from shared.errors import ConfigError
from shared.settings import Settings
from shared.web.asgi import client_ip_from
from shared.web.http import Headers
from tests.conftest import MINIMAL_ENV, Devstack
from tests.support.identities import fresh_address
from tests.support.inprocess import AppClient, app_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"  # nothing listens: no job is ever delivered from here
LIMIT = 3


def client_for(
    devstack: Devstack, peer: str, **overrides: str
) -> AbstractAsyncContextManager[AppClient]:
    """The app in process (LIMIT requests a minute), called from the socket peer `peer`."""
    env = {**app_env(devstack.raw, APP_URL), "RATE_LIMIT": f"{LIMIT}/60s", **overrides}
    return app_client(env, client_ip=peer)


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


def test_make_dev_server_ignores_a_client_forwarded_for(devstack: Devstack) -> None:
    """The uvicorn server `make dev` runs does not let a local client choose its address:
    rotating X-Forwarded-For still hits the one client's limit (uvicorn's default proxy
    headers trust 127.0.0.1, i.e. every local client)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        **app_env(devstack.raw, APP_URL),
        "RATE_LIMIT": f"{LIMIT}/60s",
    }
    env.pop("DEVSTACK_CONSOLE_URL", None)
    server = subprocess.Popen(
        vercel_server_command(port),
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:

            def started() -> bool:
                try:
                    http.get("/api/openapi.json")  # spends one token of 127.0.0.1's budget
                except httpx.TransportError:
                    return False
                return True

            wait_for(started, "uvicorn to start")
            answered = [
                http.get("/api/health", headers={"x-forwarded-for": fresh_address()}).status_code
                for _ in range(LIMIT + 2)
            ]
    finally:
        server.terminate()
        server.wait(10)
    assert answered.count(429) >= 3, answered  # at most LIMIT - 1 tokens were left
