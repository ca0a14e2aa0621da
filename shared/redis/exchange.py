"""One HTTP exchange with the Upstash Redis REST API, and the per-call options it obeys.

The client, explicit pipelines and the auto-pipeliner all send through this module:

    exchange = Exchange(endpoint, transport, owns_transport=False, read_your_writes=True)
    options = CallOptions(timeout=5.0, retry=RetryPolicy(), retry_writes=False,
                          decoder=Decoder(True))
    [reply] = await exchange.send([command], "single", options)
    value = options.resolve(command, reply)     # the value, or its typed error raised

`Exchange.send` encodes the body, puts the whole exchange (not each phase) under
`options.timeout`, retries transport failures as `options.retry` allows (only when
every command is read-only, unless `retry_writes`), parses the answer into one
`Reply` per command and remembers the newest `upstash-sync-token`. With
`options.total`, `timeout` bounds the call as a whole, retries and their waits included
(each attempt gets what is left): a caller needs no timer of its own on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.errors import TransportError, TransportTimeout
from shared.http.transport import HttpRequest, Transport, send_within
from shared.redis.command import Command, Decoder
from shared.redis.config import RestEndpoint
from shared.redis.protocol import PATHS, Mode, Reply, command_error, encode_body, parse_response
from shared.redis.retry import RetryPolicy

T = TypeVar("T")
SYNC_HEADER = "upstash-sync-token"


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How one call is sent and read: deadline (s) of each attempt (of the whole call,
    retries included, when `total`), retry policy, whether writes may be retried, and how
    string replies are decoded."""

    timeout: float
    retry: RetryPolicy
    retry_writes: bool
    decoder: Decoder
    total: bool = False

    def retryable(self, commands: Sequence[Command[Any]]) -> bool:
        """True when a lost request may be sent again: writes only with `retry_writes`."""
        return self.retry_writes or all(c.read_only for c in commands)

    def resolve(self, command: Command[T], reply: Reply) -> T:
        """A reply as the command's value, or its typed error raised."""
        if reply.error is not None:
            raise command_error(command.name, reply.error)
        return command.read(reply.result, self.decoder)


class Exchange:
    """What every view of one client shares: endpoint, transport, newest sync token.

    `send` is the only way a Redis command leaves the process.
    """

    __slots__ = (
        "_base_headers",
        "endpoint",
        "owns_transport",
        "read_your_writes",
        "sync_token",
        "transport",
    )

    def __init__(
        self,
        endpoint: RestEndpoint,
        transport: Transport,
        *,
        owns_transport: bool,
        read_your_writes: bool,
    ) -> None:
        self.endpoint = endpoint
        self.transport = transport
        self.owns_transport = owns_transport
        self.read_your_writes = read_your_writes
        self.sync_token: str | None = None
        # Built once: every request sends the same three headers (plus the sync token).
        self._base_headers = {
            "Authorization": f"Bearer {endpoint.token}",
            "Content-Type": "application/json",
            "Upstash-Encoding": "base64",
        }

    def __repr__(self) -> str:
        return f"Exchange(url={self.endpoint.url!r})"

    def remember(self, token: str | None) -> None:
        """Keeps the newest sync token seen (an older reply arriving late is ignored)."""
        if not token or not self.read_your_writes:
            return
        current = self.sync_token
        stale = current is not None and current.isdigit() and token.isdigit()
        if stale and int(token) < int(current or 0):
            return
        self.sync_token = token

    def headers(self) -> dict[str, str]:
        """The request headers: token, JSON, base64 replies and the newest sync token."""
        token = self.sync_token
        if token and self.read_your_writes:
            headers = dict(self._base_headers)
            headers[SYNC_HEADER] = token
            return headers
        return self._base_headers

    async def send(
        self, commands: Sequence[Command[Any]], mode: Mode, options: CallOptions
    ) -> list[Reply]:
        """One HTTP request for `commands`; one `Reply` per command, in order.

        Raises `TransportTimeout` when `options.timeout` runs out, `TransportError` when
        no answer came (after the retries `options` allows), and `RedisError`s for an
        answer refused as a whole (auth, 5xx, unreadable body, aborted transaction).
        With `options.total`, a retry that could not start before the deadline raises
        `TransportTimeout`, and each attempt's timeout is what is left of it.
        """
        body = encode_body([c.wire for c in commands], mode)
        url = self.endpoint.url + PATHS[mode]
        timeout = options.timeout
        retry = options.retry
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempt = 1
        while True:
            left = timeout
            if options.total and attempt > 1:  # a retry gets what is left of the deadline
                left = timeout - (loop.time() - started)
                if left <= 0:
                    raise TransportTimeout(
                        f"{commands[0].name} request timed out after {timeout:g}s"
                    )
            request = HttpRequest("POST", url, self.headers(), body, left)
            try:
                response = await send_within(self.transport, request, commands[0].name)
                break
            except TransportError:
                if attempt >= retry.attempts or not options.retryable(commands):
                    raise
                delay = retry.backoff(attempt)
                elapsed = loop.time() - started
                if elapsed + delay + timeout > retry.deadline:
                    raise
                if options.total and elapsed + delay >= timeout:
                    raise TransportTimeout(
                        f"{commands[0].name} request timed out after {timeout:g}s"
                    ) from None
                attempt += 1
                await asyncio.sleep(delay)
        self.remember(response.header(SYNC_HEADER))
        return parse_response(response.status, response.body, mode, len(commands))


__all__ = ["SYNC_HEADER", "CallOptions", "Exchange"]
