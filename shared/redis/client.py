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

from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar, overload

from shared.config import check_token, check_url
from shared.errors import TransportError, TransportTimeout
from shared.http.transport import Transport
from shared.redis.autopipeline import AutoPipeliner
from shared.redis.command import Command, Decoder
from shared.redis.commands import CommandMethods, V
from shared.redis.config import RestEndpoint, endpoint_from_env
from shared.redis.exchange import SYNC_HEADER, CallOptions, Exchange
from shared.redis.pipeline import Pipeline
from shared.redis.retry import RetryPolicy

T = TypeVar("T")
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every view of one client shares: the exchange and the auto-pipeliner."""

    exchange: Exchange
    pipeliner: AutoPipeliner


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
        exchange = Exchange(
            endpoint,
            transport if transport is not None else _default_transport(),
            owns_transport=transport is None,
            read_your_writes=read_your_writes,
        )
        self._shared = _Shared(exchange, AutoPipeliner(exchange))
        self._options = CallOptions(
            timeout=timeout,
            retry=retry if retry is not None else RetryPolicy(),
            retry_writes=False,
            decoder=Decoder(decode_responses),
        )
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
        total_timeout: bool | None = None,
    ) -> Redis[V]:
        """A view of this client with other per-call options; it shares the transport,
        the sync token and the auto-pipelining batch.

            await redis.with_options(timeout=0.5).get("k")
            await redis.with_options(retry_writes=True).incr("k")  # you accept double counts
            await redis.with_options(timeout=1, total_timeout=True).get("k")

        `total_timeout`: `timeout` bounds each call as a whole (retries, their waits and a
        script's NOSCRIPT fallback included) instead of each attempt, so a caller needs no
        timer of its own (in Pyodide every timer is a JS `setTimeout`).
        """
        current = self._options
        options = CallOptions(
            timeout=current.timeout if timeout is None else timeout,
            retry=current.retry if retry is None else retry,
            retry_writes=current.retry_writes if retry_writes is None else retry_writes,
            decoder=current.decoder,
            total=current.total if total_timeout is None else total_timeout,
        )
        if options.timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        view: Redis[V] = object.__new__(type(self))
        view._shared = self._shared
        view._options = options
        view._max_batch = self._max_batch
        view._auto_pipeline = self._auto_pipeline if auto_pipeline is None else auto_pipeline
        return view

    # -- state ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._shared.exchange.endpoint.url

    @property
    def timeout(self) -> float:
        return self._options.timeout

    @property
    def total_timeout(self) -> bool:
        """True when `timeout` bounds each call as a whole (see `with_options`)."""
        return self._options.total

    @property
    def decode_responses(self) -> bool:
        return self._options.decoder.decode_responses

    @property
    def sync_token(self) -> str | None:
        """The newest `upstash-sync-token` seen; hand it to another client for read-your-writes."""
        return self._shared.exchange.sync_token

    @sync_token.setter
    def sync_token(self, token: str | None) -> None:
        self._shared.exchange.sync_token = token

    def __repr__(self) -> str:
        return f"Redis(url={self.url!r}, timeout={self._options.timeout:g})"

    async def aclose(self) -> None:
        """Closes the transport if this client created it."""
        exchange = self._shared.exchange
        close = getattr(exchange.transport, "aclose", None)
        if exchange.owns_transport and close is not None:
            await close()

    # -- sending -------------------------------------------------------------------------

    async def _send_alone(self, command: Command[T]) -> T:
        options = self._options
        [reply] = await self._shared.exchange.send([command], "single", options)
        return options.resolve(command, reply)

    def _run(self, command: Command[T]) -> Awaitable[T]:
        if self._auto_pipeline:
            return self._shared.pipeliner.submit(command, self._options, max_batch=self._max_batch)
        return self._send_alone(command)

    # -- pipelines -----------------------------------------------------------------------

    def pipeline(self) -> Pipeline[V]:
        """Commands queued and sent together in one `/pipeline` request (not atomic)."""
        return Pipeline(self._shared.exchange, self._options, transaction=False)

    def multi(self) -> Pipeline[V]:
        """Commands queued and run as one MULTI/EXEC transaction (`/multi-exec`)."""
        return Pipeline(self._shared.exchange, self._options, transaction=True)

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


__all__ = ["DEFAULT_TIMEOUT", "SYNC_HEADER", "Redis", "TransportError", "TransportTimeout"]
