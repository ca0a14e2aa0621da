"""A tiny check runner for scripts that run inside Pyodide (see harness.mjs).

    checks = Checks()

    @checks.case
    async def test_something() -> None:
        assert ...

    await checks.run()  # prints one `@@RESULT {...}` line

Cases run one after another, each under a timeout; a failure records its traceback and the
run goes on. `checks.data[...]` carries extra JSON-able values back to the CPython test.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

RESULT_PREFIX = "@@RESULT "

CaseFn = Callable[[], Awaitable[None] | None]


class Checks:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.cases: list[tuple[str, CaseFn, str | None]] = []
        self.data: dict[str, Any] = {}

    def case(self, fn: CaseFn) -> CaseFn:
        """Decorator: registers `fn` under its own name."""
        return self.add(fn.__name__, fn)

    def add(self, name: str, fn: CaseFn, *, xfail: str | None = None) -> CaseFn:
        """Registers `fn` under `name` (for cases generated in a loop).

        `xfail` documents a known bug: the case then passes when it fails (listed under
        `xfailed`) and fails when it passes, so the marker is removed once the bug is fixed.
        """
        self.cases.append((name, fn, xfail))
        return fn

    async def _run_one(self, fn: CaseFn) -> None:
        result = fn()
        if inspect.isawaitable(result):
            await asyncio.wait_for(result, self.timeout)

    async def run(self) -> dict[str, Any]:
        passed: list[str] = []
        failed: list[dict[str, str]] = []
        xfailed: list[dict[str, str]] = []
        timings: dict[str, float] = {}
        for name, fn, xfail in self.cases:
            started = time.perf_counter()
            try:
                await self._run_one(fn)
            except Exception:
                error = traceback.format_exc()
                if xfail:
                    xfailed.append({"name": name, "reason": xfail, "error": error})
                else:
                    failed.append({"name": name, "error": error})
            else:
                if xfail:
                    failed.append({"name": name, "error": f"XPASS (remove the xfail): {xfail}"})
                else:
                    passed.append(name)
            timings[name] = round((time.perf_counter() - started) * 1000, 1)
        result = {
            "passed": passed,
            "failed": failed,
            "xfailed": xfailed,
            "timings_ms": timings,
            "data": self.data,
        }
        print(RESULT_PREFIX + json.dumps(result, default=repr), flush=True)
        return result
