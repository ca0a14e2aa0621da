"""Helpers for the local QStash tests: a destination server that records requests and answers
by script, and bounded waits on QStash's own state (a message finished, its log states)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from devstack import launch
from shared.qstash import QStashAdmin
from tests.conftest import QSTASH_TIME_SCALE
from tests.support.waiting import eventually

TIME_SCALE = QSTASH_TIME_SCALE  # the fast stack's (`running_devstack`)


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
    holds: dict[str, asyncio.Event] = field(default_factory=dict)  # answer only once set

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def at(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Delivery]:
        """Waits (bounded) until `path` received `count` requests; all it received."""

        async def received() -> list[Delivery] | None:
            return hits if len(hits := self.at(path)) >= count else None

        return await eventually(received, f"{count} deliveries to {path}", timeout=timeout)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries.append(
            Delivery(request.path, request.method, dict(request.headers), body, time.monotonic())
        )
        hold = self.holds.get(request.path)
        if hold is not None:
            await asyncio.wait_for(hold.wait(), 30)
        script = self.scripts.get(request.path)
        status, headers = script(len(self.at(request.path))) if script else (200, {})
        return web.Response(status=status, headers=headers, text="sink says " + str(status))


@dataclass
class InFlight:
    """How many requests a destination holds at once, and the most it ever held."""

    now: int = 0
    most: int = 0

    async def hold(self, seconds: float) -> None:
        """One request in flight for `seconds` (the destination's own processing time)."""
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.now -= 1


async def message_finished_async(env: dict[str, str], message_id: str) -> None:
    """Waits (bounded) until QStash is done with a message: `GET /v2/messages/{id}` answers
    404 once it was delivered or moved to the DLQ, and no attempt can follow after that
    (the devstack removes it from the schedule in the same transaction)."""
    url = f"{env['QSTASH_URL']}/v2/messages/{message_id}"
    headers = {"Authorization": f"Bearer {env['QSTASH_TOKEN']}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as http:

        async def gone() -> bool:
            return (await http.get(url)).status_code == 404

        await eventually(gone, f"QStash to finish message {message_id}", timeout=10)


async def logged_states(admin: QStashAdmin, message_id: str, until: str) -> list[str]:
    """The message's log states, oldest first, once (bounded wait) `until` is among them."""

    async def recorded() -> list[str] | None:
        states = [e.state for e in reversed((await admin.logs(message_id)).events)]
        return states if until in states else None

    return await eventually(recorded, f"{message_id} to log {until}", timeout=10)


@asynccontextmanager
async def stack_on(data_dir: Path) -> AsyncIterator[dict[str, Any]]:
    """A devstack keeping its state in `data_dir` (QStash at TIME_SCALE): what it announced.
    Stopped when the block ends; another one on the same `data_dir` finds that state."""
    handle = await asyncio.to_thread(
        launch.start_devstack, "--data-dir", str(data_dir), "--qstash-time-scale", str(TIME_SCALE)
    )
    try:
        yield handle.info
    finally:
        await asyncio.to_thread(handle.stop)
        handle.stderr_path.unlink(missing_ok=True)
