"""Test helpers for driving the real app through the launcher and the edge proxy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from devstack.dev import DEV_CRON_SECRET, app_env
from tests.conftest import REPO_ROOT, Devstack
from tests.launcher.edge import EdgeProxy, edge_proxy
from tests.launcher.harness import VercelLauncher
from tests.support.identities import fresh_address

BYPASS_HEADER = "x-vercel-protection-bypass"


class ProtectedEdgeProxy(EdgeProxy):
    """The edge with Vercel's Deployment Protection: 401 unless the request carries
    `x-vercel-protection-bypass: <secret>` (what QStash must forward to reach a preview)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.refused: list[str] = []  # paths answered 401 by the protection

    async def _forward(self, request: web.Request) -> web.Response:
        if request.headers.get(BYPASS_HEADER) != self.secret:
            self.refused.append(request.path)
            return web.Response(status=401, text="Authentication Required")
        return await super()._forward(request)


@contextmanager
def protected_edge_proxy(secret: str) -> Iterator[EdgeProxy]:
    proxy = ProtectedEdgeProxy(secret)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@dataclass
class Api:
    edge: EdgeProxy
    launcher: VercelLauncher
    stack: Devstack
    env: dict[str, str]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    protection_bypass: str | None = None

    @property
    def url(self) -> str:
        return self.edge.url

    def request(
        self,
        method: str,
        path: str,
        *,
        ip: str | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
    ) -> httpx.Response:
        all_headers = {"x-test-client-ip": ip or fresh_address(), **(headers or {})}
        if self.protection_bypass is not None:
            all_headers.setdefault(BYPASS_HEADER, self.protection_bypass)
        return self.http.request(
            method, self.url + path, headers=all_headers, json=json, content=content
        )

    def create_order(self, email: str, *, ip: str | None = None, **headers: str) -> httpx.Response:
        body = {
            "customer_email": email,
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
        }
        return self.request("POST", "/api/orders", ip=ip, json=body, headers=headers)

    def emails_to(self, address: str) -> list[dict[str, Any]]:
        response = self.http.get(
            f"{self.stack.raw['email_api_url']}/emails", params={"to": address}
        )
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def redis_requests(self) -> int:
        response = self.http.get(
            self.stack.redis_rest_url + "/_devstack/stats",
            headers={"Authorization": f"Bearer {self.stack.redis_rest_token}"},
        )
        count: int = response.json()["http_requests"]
        return count

    def cron(self) -> httpx.Response:
        return self.request(
            "GET", "/api/cron/flush-outbox", headers={"Authorization": f"Bearer {DEV_CRON_SECRET}"}
        )


@contextmanager
def running_api(
    stack: Devstack, *, protection_bypass: str | None = None, **overrides: str
) -> Iterator[Api]:
    """The Vercel function under the real launcher, behind the edge proxy, on the devstack.

    With `protection_bypass`, the edge enforces Deployment Protection with that secret
    (the test client sends it; QStash deliveries must carry it too)."""
    proxy = edge_proxy() if protection_bypass is None else protected_edge_proxy(protection_bypass)
    with proxy as edge:
        env = {
            **app_env(stack.raw, edge.url),
            "RATE_LIMIT": "5/10s",
            "VERCEL": "1",  # as Vercel's runtime sets it: the client address is the edge's
            **overrides,
        }
        with VercelLauncher(REPO_ROOT, module="vercel_api.index", env=env) as launcher:
            edge.target = launcher.base_url
            api = Api(edge, launcher, stack, env, protection_bypass=protection_bypass)
            try:
                yield api
            finally:
                api.http.close()
