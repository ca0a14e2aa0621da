"""Lua scripts run by SHA: EVALSHA first, EVAL once when the server answers NOSCRIPT."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.errors import RedisNoScriptError, TransportTimeout
from shared.redis.protocol import Arg

if TYPE_CHECKING:
    from shared.redis.client import Redis


class Script:
    """A script whose SHA-1 is computed once, when the module defining it is imported.

        INCR_CAPPED = Script("local n = redis.call('INCR', KEYS[1]) ...")
        value = await INCR_CAPPED.run(redis, keys=["k"], args=[10])

    Steady state is one round trip (EVALSHA); after a server restart or a script
    flush, the NOSCRIPT error (detected by its parsed code) triggers one EVAL,
    which also loads the script for the next calls. Through a view whose timeout bounds
    the whole call (`total_timeout`), the EVAL gets what the EVALSHA left of it.
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def run(
        self, redis: Redis[Any], keys: Sequence[str] = (), args: Sequence[Arg] = ()
    ) -> Any:
        whole = getattr(redis, "total_timeout", False)  # pipelines and test doubles: False
        started = asyncio.get_running_loop().time() if whole else None
        try:
            return await redis.evalsha(self.sha, keys, args)
        except RedisNoScriptError:
            if started is not None:
                left = redis.timeout - (asyncio.get_running_loop().time() - started)
                if left <= 0:
                    raise TransportTimeout(
                        f"EVAL request timed out after {redis.timeout:g}s"
                    ) from None
                redis = redis.with_options(timeout=left)
            return await redis.eval(self.source, keys, args)

    def __repr__(self) -> str:
        return f"Script(sha={self.sha[:12]})"


# Deletes a key only while it still holds the caller's token: the release of a lock or
# lease that may have expired and been taken by someone else meanwhile.
# KEYS[1] the lock key; ARGV[1] the caller's token. Returns 1 when deleted, else 0.
COMPARE_AND_DELETE = Script(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""".strip()
)


async def delete_if_equals(redis: Redis[Any], key: str, token: str) -> bool:
    """Releases `key` if it still holds `token` (one command); True when it was deleted.

    if await redis.set(lease, token, px=30_000, nx=True):
        try: ...
        finally: await delete_if_equals(redis, lease, token)
    """
    return bool(await COMPARE_AND_DELETE.run(redis, [key], [token]) == 1)
