"""The async Upstash Redis REST client.

    redis = Redis.from_env(os.environ)           # or Workers' env, any mapping
    await redis.set("greeting", "hello", ex=60)
    greeting = await redis.get("greeting")       # "hello" (str; bytes with decode_responses=False)

Every request has a timeout (5 s unless configured, per client or through
`with_options`). Commands awaited concurrently in one event-loop turn leave as
ONE `/pipeline` request (auto-pipelining), within the current request scope
(`shared.scope`), each caller getting its own result or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, overload

from shared.config import check_token, check_url
from shared.errors import TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse, Transport
from shared.redis.autopipeline import AutoPipeliner
from shared.redis.command import Command, Decoder
from shared.redis.commands import CommandMethods, V
from shared.redis.config import RestEndpoint, endpoint_from_env
from shared.redis.pipeline import Pipeline
from shared.redis.protocol import PATHS, Mode, Reply, command_error, encode_body, parse_response
from shared.redis.retry import RetryPolicy

T = TypeVar("T")
SYNC_HEADER = "upstash-sync-token"
DEFAULT_TIMEOUT = 5.0


@dataclass(slots=True)
class _Connection:
    """What every view of one client shares: endpoint, transport, newest sync token."""

    endpoint: RestEndpoint
    transport: Transport
    owns_transport: bool
    read_your_writes: bool
    sync_token: str | None = None
    pipeliner: AutoPipeliner = field(default_factory=AutoPipeliner)

    def remember(self, token: str | None) -> None:
        if not token or not self.read_your_writes:
            return
        current = self.sync_token
        stale = current is not None and current.isdigit() and token.isdigit()
        if stale and int(token) < int(current or 0):
            return  # an older reply arriving late must not move us backwards
        self.sync_token = token


def _default_transport() -> Transport:
    from shared.http.httpx_transport import HttpxTransport  # CPython only

    return HttpxTransport()


class Redis(CommandMethods[V]):
    """Async client for the Upstash Redis REST API (typed commands: see `CommandMethods`)."""

    @overload
    def __init__(
        self: Redis[str],
        url: str,
        token: str,
        *,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        decode_responses: Literal[True] = True,
        retry: RetryPolicy | None = None,
        auto_pipeline: bool = True,
        max_batch: int = 1000,
        read_your_writes: bool = True,
    ) -> None: ...
    @overload
    def __init__(
        self: Redis[bytes],
        url: str,
        token: str,
        *,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        decode_responses: Literal[False],
        retry: RetryPolicy | None = None,
        auto_pipeline: bool = True,
        max_batch: int = 1000,
        read_your_writes: bool = True,
    ) -> None: ...
    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        decode_responses: bool = True,
        retry: RetryPolicy | None = None,
        auto_pipeline: bool = True,
        max_batch: int = 1000,
        read_your_writes: bool = True,
    ) -> None:
        endpoint = RestEndpoint(check_url("url", url), check_token("token", token))
        if timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        if not 1 <= max_batch <= 10_000:
            raise ValueError("max_batch must be between 1 and 10000")
        self._conn = _Connection(
            endpoint=endpoint,
            transport=transport if transport is not None else _default_transport(),
            owns_transport=transport is None,
            read_your_writes=read_your_writes,
        )
        self._timeout = timeout
        self._decoder = Decoder(decode_responses)
        self._retry = retry if retry is not None else RetryPolicy()
        self._retry_writes = False
        self._auto_pipeline = auto_pipeline
        self._max_batch = max_batch

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        transport: Transport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        auto_pipeline: bool = True,
    ) -> Redis[str]:
        """Reads `UPSTASH_REDIS_REST_URL`/`_TOKEN` (or `KV_REST_API_URL`/`_TOKEN`).

        Raises `ConfigError` naming the missing or malformed variable.
        """
        endpoint = endpoint_from_env(env)
        return Redis(
            endpoint.url,
            endpoint.token,
            transport=transport,
            timeout=timeout,
            retry=retry,
            auto_pipeline=auto_pipeline,
        )

    def with_options(
        self,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        retry_writes: bool | None = None,
        auto_pipeline: bool | None = None,
    ) -> Redis[V]:
        """A view of this client with other per-call options; it shares the transport,
        the sync token and the auto-pipelining batch.

            await redis.with_options(timeout=0.5).get("k")
            await redis.with_options(retry_writes=True).incr("k")  # you accept double counts
        """
        view: Redis[V] = object.__new__(type(self))
        view._conn = self._conn
        view._decoder = self._decoder
        view._max_batch = self._max_batch
        view._timeout = self._timeout if timeout is None else timeout
        if view._timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        view._retry = self._retry if retry is None else retry
        view._retry_writes = self._retry_writes if retry_writes is None else retry_writes
        view._auto_pipeline = self._auto_pipeline if auto_pipeline is None else auto_pipeline
        return view

    # -- state ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._conn.endpoint.url

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def decode_responses(self) -> bool:
        return self._decoder.decode_responses

    @property
    def sync_token(self) -> str | None:
        """The newest `upstash-sync-token` seen; hand it to another client for read-your-writes."""
        return self._conn.sync_token

    @sync_token.setter
    def sync_token(self, token: str | None) -> None:
        self._conn.sync_token = token

    def __repr__(self) -> str:
        return f"Redis(url={self.url!r}, timeout={self._timeout:g})"

    async def aclose(self) -> None:
        """Closes the transport if this client created it."""
        close = getattr(self._conn.transport, "aclose", None)
        if self._conn.owns_transport and close is not None:
            await close()

    # -- sending -------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._conn.endpoint.token}",
            "Content-Type": "application/json",
            "Upstash-Encoding": "base64",
        }
        token = self._conn.sync_token
        if token and self._conn.read_your_writes:
            headers[SYNC_HEADER] = token
        return headers

    async def _send(
        self,
        commands: Sequence[Command[Any]],
        mode: Mode,
        *,
        timeout: float,
        retry: RetryPolicy,
        retryable: bool,
    ) -> list[Reply]:
        """One HTTP request; retried on transport errors only when `retryable`."""
        body = encode_body([c.wire for c in commands], mode)
        url = self._conn.endpoint.url + PATHS[mode]
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 1
        while True:
            request = HttpRequest("POST", url, self._headers(), body, timeout)
            try:
                response = await self._exchange(request, commands[0].name)
                break
            except TransportError:
                if not retryable or attempt >= retry.attempts:
                    raise
                delay = retry.backoff(attempt)
                if loop.time() - started + delay + request.timeout > retry.deadline:
                    raise
                attempt += 1
                await asyncio.sleep(delay)
        self._conn.remember(response.header(SYNC_HEADER))
        return parse_response(response.status, response.body, mode, len(commands))

    async def _exchange(self, request: HttpRequest, name: str) -> HttpResponse:
        """The transport's send under a total deadline (httpx's timeouts are per phase)."""
        try:
            async with asyncio.timeout(request.timeout):
                return await self._conn.transport.send(request)
        except TimeoutError:
            raise TransportTimeout(f"{name} request timed out after {request.timeout:g}s") from None

    def _retryable(self, commands: Sequence[Command[Any]]) -> bool:
        return self._retry_writes or all(c.read_only for c in commands)

    def resolve(self, command: Command[T], reply: Reply) -> T:
        """A reply as the command's value, or its typed error raised."""
        if reply.error is not None:
            raise command_error(command.name, reply.error)
        return command.read(reply.result, self._decoder)

    async def _send_one(self, command: Command[T]) -> T:
        [reply] = await self._send(
            [command],
            "single",
            timeout=self._timeout,
            retry=self._retry,
            retryable=self._retryable([command]),
        )
        return self.resolve(command, reply)

    def _run(self, command: Command[T]) -> Awaitable[T]:
        if self._auto_pipeline:
            return self._conn.pipeliner.submit(self, command)
        return self._send_one(command)

    # -- pipelines -----------------------------------------------------------------------

    def pipeline(self) -> Pipeline[V]:
        """Commands queued and sent together in one `/pipeline` request (not atomic)."""
        return Pipeline(self, transaction=False)

    def multi(self) -> Pipeline[V]:
        """Commands queued and run as one MULTI/EXEC transaction (`/multi-exec`)."""
        return Pipeline(self, transaction=True)

    async def scan_iter(
        self, *, match: str | None = None, count: int | None = None, type: str | None = None
    ) -> AsyncIterator[V]:
        """Every key SCAN yields (a key may repeat if the keyspace changes meanwhile)."""
        cursor = 0
        while True:
            cursor, keys = await self.scan(cursor, match=match, count=count, type=type)
            for key in keys:
                yield key
            if cursor == 0:
                return


__all__ = ["DEFAULT_TIMEOUT", "Redis", "TransportError", "TransportTimeout"]
