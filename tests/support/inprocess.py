"""The real app in this process: `build_app` behind `AsgiAdapter`, called through
`httpx.ASGITransport`, on whatever the environment points at (usually the devstack).

Each call returns when the ASGI call does, background work included (what Vercel waits
for). The app's outbound transport is closed when the block ends, whoever made it.

    async with app_client(app_test_env(devstack)) as client:
        response = await client.post("/api/orders", json=order)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx

from devstack.dev import app_env
from shared.app.assembly import AppBundle, build_app
from shared.http.httpx_transport import HttpxTransport
from shared.http.transport import Transport
from shared.web.asgi import AsgiAdapter
from shared.web.reporting import ErrorReporter
from tests.conftest import Devstack

BASE_URL = "http://testserver"
PEER_PORT = 40000


def app_test_env(devstack: Devstack, app_url: str = BASE_URL, **overrides: str) -> dict[str, str]:
    """The app's environment on the devstack, with a rate limit no test reaches."""
    return {**app_env(devstack.raw, app_url), "RATE_LIMIT": "100000/10s", **overrides}


class AppClient(httpx.AsyncClient):
    """An httpx client whose every call is an ASGI call of `adapter`, from `client_ip`."""

    def __init__(self, adapter: AsgiAdapter, *, client_ip: str) -> None:
        # No timeout: httpx.ASGITransport ignores it (a test bounds its own waits).
        super().__init__(
            transport=httpx.ASGITransport(app=adapter, client=(client_ip, PEER_PORT)),
            base_url=BASE_URL,
        )
        self.adapter = adapter  # its bundle() has the app's other entries (`scheduled`)


@asynccontextmanager
async def app_client(
    env: Mapping[str, str],
    *,
    transport: Transport | None = None,
    error_reporter: ErrorReporter | None = None,
    build: Callable[[Transport], AppBundle] | None = None,
    client_ip: str = "127.0.0.1",
) -> AsyncIterator[AppClient]:
    """A client for the app built from `env` (or by `build(transport)`), in this process.

    `transport` (default: a new `HttpxTransport`) carries the app's outbound calls; it is
    closed on the way out, as is the client."""
    outbound: Transport = transport if transport is not None else HttpxTransport()

    def assemble() -> AppBundle:
        if build is not None:
            return build(outbound)
        return build_app(env, transport=outbound, error_reporter=error_reporter)

    try:
        async with AppClient(AsgiAdapter(assemble), client_ip=client_ip) as client:
            yield client
    finally:
        aclose = getattr(outbound, "aclose", None)
        if aclose is not None:
            await aclose()
