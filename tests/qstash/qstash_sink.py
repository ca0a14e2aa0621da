"""A destination server for the local QStash tests: records requests, answers by script."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

TIME_SCALE = 0.001


@dataclass(frozen=True)
class Delivery:
    """One request the sink received."""

    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float


Responder = Callable[[int], tuple[int, dict[str, str]]]


@dataclass
class Sink:
    """A destination server on 127.0.0.1: records requests, answers per path with a script."""

    base_url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    scripts: dict[str, Responder] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)  # answer only once set

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Waits (bounded) until `path` received `count` requests."""
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{path}: {len(self.at(path))} of {count} deliveries")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.2))
        return self.at(path)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries.append(
            Delivery(request.path, request.method, dict(request.headers), body, time.monotonic())
        )
        self.changed.set()
        hold = self.holds.get(request.path)
        if hold is not None:
            await asyncio.wait_for(hold.wait(), 30)
        script = self.scripts.get(request.path)
        status, headers = script(len(self.at(request.path))) if script else (200, {})
        return web.Response(status=status, headers=headers, text="sink says " + str(status))


def message_finished(env: dict[str, str], message_id: str, timeout: float = 10.0) -> None:
    """Waits (bounded) until QStash is done with a message: `GET /v2/messages/{id}` answers
    404 once it was delivered or moved to the DLQ, and no attempt can follow after that
    (the devstack removes it from the schedule in the same transaction)."""
    import httpx

    deadline = time.monotonic() + timeout
    url = f"{env['QSTASH_URL']}/v2/messages/{message_id}"
    headers = {"Authorization": f"Bearer {env['QSTASH_TOKEN']}"}
    while httpx.get(url, headers=headers).status_code != 404:
        if time.monotonic() > deadline:
            raise AssertionError(f"QStash still holds message {message_id} after {timeout}s")
        time.sleep(0.02)


async def message_finished_async(env: dict[str, str], message_id: str) -> None:
    await asyncio.to_thread(message_finished, env, message_id)
