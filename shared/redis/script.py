"""Lua scripts run by SHA: EVALSHA first, EVAL once when the server answers NOSCRIPT."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.errors import RedisNoScriptError
from shared.redis.protocol import Arg

if TYPE_CHECKING:
    from shared.redis.client import Redis


class Script:
    """A script whose SHA-1 is computed once, when the module defining it is imported.

        INCR_CAPPED = Script("local n = redis.call('INCR', KEYS[1]) ...")
        value = await INCR_CAPPED.run(redis, keys=["k"], args=[10])

    Steady state is one round trip (EVALSHA); after a server restart or a script
    flush, the NOSCRIPT error (detected by its parsed code) triggers one EVAL,
    which also loads the script for the next calls.
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def run(
        self, redis: Redis[Any], keys: Sequence[str] = (), args: Sequence[Arg] = ()
    ) -> Any:
        try:
            return await redis.evalsha(self.sha, keys, args)
        except RedisNoScriptError:
            return await redis.eval(self.source, keys, args)

    def __repr__(self) -> str:
        return f"Script(sha={self.sha[:12]})"
