"""Waiting, with a deadline, for something another thread, process or server does.

Both helpers poll a probe until it returns something truthy and hand that value back, or
fail with an `AssertionError` naming what was awaited. They wait for an outside event (a
delivery, an email, a server's start), never for time itself to pass: code under test
takes its clock as an input.

    mails = wait_for(lambda: api.emails_to(address), "the confirmation email")
    entry = await eventually(dead_letter, "the dead message", timeout=10)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

FIRST_PAUSE_S = 0.02
MAX_PAUSE_S = 0.25


def _pauses(timeout: float) -> Iterator[float]:
    """0, then growing pauses between probes; ends once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = 0.0
    while True:
        yield pause
        if time.monotonic() > deadline:
            return
        pause = min(max(pause * 1.5, FIRST_PAUSE_S), MAX_PAUSE_S)


def wait_for(probe: Callable[[], T | None], what: str, *, timeout: float = 30.0) -> T:
    """Calls `probe` until it returns something truthy (returned), within `timeout` seconds."""
    for pause in _pauses(timeout):
        time.sleep(pause)
        if value := probe():
            return value
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, *, timeout: float = 30.0
) -> T:
    """Awaits `probe` until it returns something truthy (returned), within `timeout` seconds."""
    for pause in _pauses(timeout):
        await asyncio.sleep(pause)
        if value := await probe():
            return value
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
