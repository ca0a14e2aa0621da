"""Drives the official @upstash/ratelimit from the interop tests: `upstream.mjs` (commands)
and `interop.mjs` (one identifier a line) as Node subprocesses."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent


class NodeScript:
    """A running Node script: one line per request on stdin, one JSON answer per line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def exchange(self, request: str) -> Any:
        """Sends `request` (one line) and returns the decoded answer, never an error."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(request.encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        answer = json.loads(line)
        assert not (isinstance(answer, dict) and "error" in answer), answer
        return answer

    async def close(self) -> None:
        """Closes its stdin (the script exits), killing it if it has not within 10 s."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class UpstreamNode(NodeScript):
    """A running `upstream.mjs`: one JSON command per stdin line, one JSON answer per line."""

    async def call(self, **command: Any) -> Any:
        return await self.exchange(json.dumps(command))

    async def limit(self, identifier: str, **request: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.call(op="limit", id=identifier, **request)
        return answer


async def start_script(script: str, config: dict[str, Any]) -> asyncio.subprocess.Process:
    """Starts the Node `script` next to this file with `config` and waits for its "ready"."""
    if shutil.which("node") is None or not (REPO_ROOT / "node_modules/@upstash/ratelimit").is_dir():
        pytest.fail("node and `npm ci` (node_modules/@upstash/ratelimit) are required")
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(HERE / script),
        json.dumps(config),
        cwd=REPO_ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
    return proc


async def start_upstream(config: dict[str, Any]) -> UpstreamNode:
    """Starts `upstream.mjs` with `config` (see its header) and waits for "ready"."""
    return UpstreamNode(await start_script("upstream.mjs", config))


@asynccontextmanager
async def single_region_upstream(
    devstack: Any, prefix: str, *, limit: int, **config: Any
) -> AsyncIterator[UpstreamNode]:
    """@upstash/ratelimit's single-region fixed window of `limit` a day on the devstack's
    Redis under `prefix` (plus `config`: "protection", "analytics", ...), closed after."""
    node = await start_upstream(
        {
            "urls": [devstack.redis_rest_url],
            "token": devstack.redis_rest_token,
            "prefix": prefix,
            "algorithm": "fixed",
            "limit": limit,
            "window": "1 d",
            "multi": False,
            **config,
        }
    )
    try:
        yield node
    finally:
        await node.close()
