"""Runs commands on Redis and returns RAW replies (no redis-py response callbacks).

Commands go straight through pooled connections (``send_packed_command`` then one
``read_response`` per command), so a pipeline or a MULTI/EXEC is one round trip
and replies stay exactly what Redis sent (``SET`` gives ``b"OK"``, ``HGETALL`` a flat
list). Connection failures surface as :class:`RedisUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from devstack.rest.commands import CommandTable
from devstack.rest.scripts import PreparedCommand


class RedisUnavailable(Exception):
    """Redis could not be reached or the connection broke mid-request."""


class TransactionAborted(Exception):
    """EXEC answered EXECABORT (or another top-level error): nothing ran."""

    def __init__(self, error: ResponseError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Stats:
    """Counters exposed by ``GET /_devstack/stats`` (devstack-only)."""

    http_requests: int = 0
    commands: int = 0
    redis_round_trips: int = 0

    def reset(self) -> None:
        self.http_requests = self.commands = self.redis_round_trips = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "http_requests": self.http_requests,
            "commands": self.commands,
            "redis_round_trips": self.redis_round_trips,
        }


class RedisExecutor:
    """Owns the connection pool (created once) and the request counters."""

    def __init__(self, redis_url: str, max_connections: int = 50) -> None:
        self.pool = BlockingConnectionPool.from_url(
            redis_url,
            max_connections=max_connections,
            timeout=20,
            socket_connect_timeout=2,
            socket_timeout=60,
            protocol=2,
        )
        self.stats = Stats()
        self._table: CommandTable | None = None

    async def close(self) -> None:
        await self.pool.aclose()

    async def command_table(self) -> CommandTable:
        if self._table is None:
            (reply,) = await self._round_trip([[b"COMMAND"]], count=False)
            if isinstance(reply, ResponseError) or not isinstance(reply, list):
                raise RedisUnavailable(f"COMMAND failed: {reply!r}")
            self._table = CommandTable.from_command_reply(reply)
        return self._table

    async def run(self, commands: Sequence[PreparedCommand]) -> list[object]:
        """Pipeline ``commands`` in one round trip; errors come back as ResponseError."""
        replies = await self._round_trip([c.args for c in commands])
        return [_fix(c, r) for c, r in zip(commands, replies, strict=True)]

    async def run_transaction(self, commands: Sequence[PreparedCommand]) -> list[object]:
        """MULTI, the commands, EXEC in one round trip; the EXEC array's items, fixed."""
        wrapped = [[b"MULTI"], *(c.args for c in commands), [b"EXEC"]]
        replies = await self._round_trip(wrapped, counted=len(commands))
        exec_reply = replies[-1]
        if isinstance(exec_reply, ResponseError):
            raise TransactionAborted(exec_reply)
        if not isinstance(exec_reply, list):
            raise TransactionAborted(ResponseError(f"EXECABORT unexpected reply {exec_reply!r}"))
        return [_fix(c, r) for c, r in zip(commands, exec_reply, strict=True)]

    async def _round_trip(
        self, commands: list[list[bytes]], *, count: bool = True, counted: int | None = None
    ) -> list[object]:
        if count:
            self.stats.commands += len(commands) if counted is None else counted
            self.stats.redis_round_trips += 1
        try:
            conn: AbstractConnection = await self.pool.get_connection()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise RedisUnavailable(str(exc) or type(exc).__name__) from exc
        try:
            await conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            replies: list[object] = []
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
            return replies
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await conn.disconnect()
            raise RedisUnavailable(str(exc) or type(exc).__name__) from exc
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await self.pool.release(conn)


def _fix(command: PreparedCommand, reply: object) -> object:
    if command.fix_reply is None or isinstance(reply, ResponseError):
        return reply
    return command.fix_reply(reply)
