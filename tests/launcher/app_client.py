"""Test helpers for driving the real app through the launcher and the edge proxy."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from devstack.dev import DEV_CRON_SECRET, app_env
from tests.conftest import REPO_ROOT, Devstack
from tests.launcher.edge import EdgeProxy, edge_proxy
from tests.launcher.harness import VercelLauncher

T = TypeVar("T")
_ips = itertools.count(1)


def fresh_ip() -> str:
    """A client address no other test used (TEST-NET-2 range), for rate-limit isolation."""
    n = next(_ips)
    return f"198.51.{100 + n // 250}.{n % 250 + 1}"


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Polls `probe` until it returns something truthy, with a bounded deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.3)


@dataclass
class Api:
    edge: EdgeProxy
    launcher: VercelLauncher
    stack: Devstack
    env: dict[str, str]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

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
        all_headers = {"x-test-client-ip": ip or fresh_ip(), **(headers or {})}
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
def running_api(stack: Devstack, **overrides: str) -> Iterator[Api]:
    """The Vercel function under the real launcher, behind the edge proxy, on the devstack."""
    with edge_proxy() as edge:
        env = {**app_env(stack.raw, edge.url), "RATE_LIMIT": "5/10s", **overrides}
        with VercelLauncher(REPO_ROOT, module="vercel_api.index", env=env) as launcher:
            edge.target = launcher.base_url
            api = Api(edge, launcher, stack, env)
            try:
                yield api
            finally:
                api.http.close()
