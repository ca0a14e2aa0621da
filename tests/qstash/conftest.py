"""Fixtures for the local QStash: a private devstack with a fast clock, and a destination sink.

The shared `devstack` fixture runs QStash at real speed; ours passes
`--qstash-time-scale 0.001` so retry n waits e^(2.5n) milliseconds instead of seconds.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devstack import launch

# The helper module sits next to this file; no __init__.py here, since a package named
# `qstash` would shadow the official SDK the tests compare against.
sys.path.insert(0, str(Path(__file__).parent))
from qstash_sink import TIME_SCALE, Sink


@pytest.fixture(scope="session")
def fast_stack() -> Iterator[dict[str, Any]]:
    """A private devstack whose QStash waits are scaled by 0.001."""
    handle = launch.start_devstack("--qstash-time-scale", str(TIME_SCALE))
    try:
        yield handle.info
    finally:
        handle.stop()
        handle.stderr_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def qstash_env(fast_stack: dict[str, Any]) -> dict[str, str]:
    """The environment our QStash client and Receiver read."""
    return {
        "QSTASH_URL": fast_stack["qstash_url"],
        "QSTASH_TOKEN": fast_stack["qstash_token"],
        "QSTASH_CURRENT_SIGNING_KEY": fast_stack["qstash_current_signing_key"],
        "QSTASH_NEXT_SIGNING_KEY": fast_stack["qstash_next_signing_key"],
    }


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A fresh destination server on a free loopback port."""
    result = Sink()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", result.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    result.base_url = f"http://127.0.0.1:{port}"
    try:
        yield result
    finally:
        await runner.cleanup()
