"""The QStash publisher and receiver inside real Pyodide, against the devstack's local QStash."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from runner import SCRIPTS, assert_checks_passed, run_in_pyodide

from shared.qstash import QStash, Receiver
from tests.conftest import qstash_env_of
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.pyodide, pytest.mark.integration]


@dataclass
class ThreadSink:
    """A destination on 127.0.0.1 in its own thread (the Pyodide run blocks the test)."""

    url: str = ""
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Any]:
        """Waits (bounded) until `path` received `count` requests; all it received."""

        def received() -> list[Any] | None:
            hits = [r for r in self.received if r[0] == path]
            return hits if len(hits) >= count else None

        return wait_for(received, f"{count} deliveries to {path}", timeout=timeout)


@pytest.fixture(scope="module")
def thread_sink() -> Iterator[ThreadSink]:
    """Records every delivery (path, headers, raw body) and answers 200."""
    sink = ThreadSink()

    async def record(request: web.Request) -> web.Response:
        sink.received.append((request.path, dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        sink.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="qstash-pyodide-sink", daemon=True)
    thread.start()
    assert ready.wait(10), "sink did not start"
    try:
        yield sink
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


async def _publish(env: dict[str, str], url: str) -> None:
    client = QStash.from_env(env)
    try:
        await client.publish_json(url, {"from": "cpython"})
    finally:
        await client.aclose()


def test_qstash_in_pyodide(pyodide_version: str, devstack: Any, thread_sink: ThreadSink) -> None:
    """Pyodide verifies a real server signature, publishes through pyfetch (deduplicated) and
    drives the management API (URL group, schedule, message cancel, logs, DLQ)."""
    env = qstash_env_of(devstack.raw)
    from_cpython = f"/from-cpython-{pyodide_version}"
    asyncio.run(_publish(env, thread_sink.url + from_cpython))
    [(_, headers, body)] = thread_sink.wait_for(from_cpython, 1)
    from_pyodide = f"/from-pyodide-{pyodide_version}"
    script_env = {
        **env,
        "SINK_URL": thread_sink.url + from_pyodide,
        "GROUP_SINK_URL": thread_sink.url + from_pyodide + "-group",
        "RUN_ID": uuid.uuid4().hex[:12],
        "DEDUP_ID": f"pyodide-{uuid.uuid4().hex}",
        "CAPTURED_SIGNATURE": headers["Upstash-Signature"],
        "CAPTURED_BODY_B64": base64.b64encode(body).decode(),
        "CAPTURED_URL": thread_sink.url + from_cpython,
    }
    result = run_in_pyodide(pyodide_version, SCRIPTS / "qstash_checks.py", script_env)
    assert_checks_passed(result)
    [(_, headers, body)] = thread_sink.wait_for(from_pyodide, 1)
    assert headers["Upstash-Message-Id"] == result["data"]["message_id"]
    Receiver.from_env(env).verify(
        headers["Upstash-Signature"], body, url=thread_sink.url + from_pyodide
    )
    # Once QStash is done with the message (404), no further delivery can follow.
    message_url = f"{env['QSTASH_URL']}/v2/messages/{result['data']['message_id']}"
    auth = {"Authorization": f"Bearer {env['QSTASH_TOKEN']}"}
    wait_for(
        lambda: httpx.get(message_url, headers=auth).status_code == 404,
        "QStash to finish the message",
        timeout=10,
    )
    assert len(thread_sink.wait_for(from_pyodide, 1)) == 1  # the deduplicated resend never left
    # the URL-group publish Pyodide made reached its one endpoint, signed
    [(_, headers, body)] = thread_sink.wait_for(from_pyodide + "-group", 1)
    assert headers["Upstash-Message-Id"] == result["data"]["group_message_id"]
    Receiver.from_env(env).verify(
        headers["Upstash-Signature"], body, url=thread_sink.url + from_pyodide + "-group"
    )
