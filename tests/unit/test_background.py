"""Background work bookkeeping: what `defer` keeps, and for how long."""

from __future__ import annotations

import asyncio
import gc
import weakref

from shared.background import background, defer
from shared.scope import current_scope, request_scope


async def _nothing() -> None:
    return None


async def test_finished_work_outside_a_scope_is_released() -> None:
    """10,000 defers outside any request scope retain no future once their work is done."""
    assert current_scope().name == "process"
    refs = [weakref.ref(defer(_nothing())) for _ in range(10_000)]
    alive = len(refs)
    for _ in range(20):  # nobody drains outside a scope: the work just finishes, turn by turn
        await asyncio.sleep(0)
        gc.collect()
        alive = sum(ref() is not None for ref in refs)
        if alive == 0:
            break
    assert alive == 0
    assert background().pending() == []


async def test_unfinished_work_is_kept_until_done() -> None:
    """Work still running stays pending (what waitUntil and drain see) until it finishes."""
    gate = asyncio.Event()
    async with request_scope():
        work = defer(gate.wait())
        defer(_nothing())
        await asyncio.sleep(0)  # one turn: the finished one completes
        assert background().pending() == [work]
        gate.set()
        await background().drain()
        assert background().pending() == []
