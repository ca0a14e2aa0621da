"""What every QStash client shares: token, base URL, transport, and one bounded exchange.

`QStash` (publishing) and `QStashAdmin` (management) are built the same way, read the
same variables, redact the same way and send under the same rules:

- a TOTAL deadline per call (10 s unless configured), retries and their waits
  included, not httpx's per-phase timeouts; past it, `TransportTimeout`;
- a transport failure is retried (bounded by attempts and by the deadline) only
  when the caller says the request is safe to repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Self

from shared.config import check_deadline, check_token, check_url
from shared.errors import ConfigError, TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse, Transport, send_within

DEFAULT_URL = "https://qstash.upstash.io"
TOKEN_VAR = "QSTASH_TOKEN"  # noqa: S105 (a variable name, not a secret)
URL_VAR = "QSTASH_URL"
DEFAULT_DEADLINE = 10.0
RETRY_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.2


def _default_transport() -> Transport:
    from shared.http.httpx_transport import HttpxTransport  # CPython only

    return HttpxTransport()


class QStashConnection:
    """The base of the QStash clients; holds no per-request state and never shows the token."""

    def __init__(
        self,
        token: str,
        *,
        url: str = DEFAULT_URL,
        transport: Transport | None = None,
        deadline: float = DEFAULT_DEADLINE,
        retry_attempts: int = RETRY_ATTEMPTS,
    ) -> None:
        check_deadline(deadline)
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1 (1 means no retry)")
        self._token = check_token("token", token)
        self._url = check_url("url", url)
        self._transport = transport if transport is not None else _default_transport()
        self._owns_transport = transport is None
        self._deadline = deadline
        self._attempts = retry_attempts

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        transport: Transport | None = None,
        deadline: float = DEFAULT_DEADLINE,
    ) -> Self:
        """Reads `QSTASH_TOKEN` (required) and `QSTASH_URL`; `ConfigError` names a bad one."""
        token = env.get(TOKEN_VAR)
        if token is None or not str(token).strip():
            raise ConfigError(TOKEN_VAR, "is not set")
        raw_url = env.get(URL_VAR)
        url = check_url(URL_VAR, str(raw_url)) if raw_url and str(raw_url).strip() else DEFAULT_URL
        return cls(
            check_token(TOKEN_VAR, str(token)), url=url, transport=transport, deadline=deadline
        )

    @property
    def url(self) -> str:
        return self._url

    @property
    def deadline(self) -> float:
        """Seconds one call may take in total (retries included) unless it passes its own."""
        return self._deadline

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(url={self._url!r}, deadline={self._deadline:g})"

    async def aclose(self) -> None:
        """Closes the transport if this client created it."""
        close = getattr(self._transport, "aclose", None)
        if self._owns_transport and close is not None:
            await close()

    def _deadline_for(self, deadline: float | None) -> float:
        return self._deadline if deadline is None else check_deadline(deadline)

    async def _send(
        self, request: HttpRequest, *, retryable: bool = False, deadline: float | None = None
    ) -> HttpResponse:
        """One exchange under a total deadline; a transport failure is retried (bounded by
        attempts and by the deadline) only when `retryable`. Each attempt gets what is left
        of the deadline as its own timeout, which the transport enforces (`send_within`):
        no timer of our own."""
        limit = self._deadline_for(deadline)
        loop = asyncio.get_running_loop()
        ends = loop.time() + limit
        attempt = 1
        while True:
            left = ends - loop.time()
            if left <= 0:
                raise TransportTimeout(f"QStash request timed out after {limit:g}s")
            try:
                return await send_within(self._transport, replace(request, timeout=left), "QStash")
            except TransportTimeout:
                raise TransportTimeout(f"QStash request timed out after {limit:g}s") from None
            except TransportError:
                if not retryable or attempt >= self._attempts:
                    raise
                delay = RETRY_BASE_DELAY * 2 ** (attempt - 1)
                if loop.time() + delay >= ends:
                    raise TransportTimeout(f"QStash request timed out after {limit:g}s") from None
                await asyncio.sleep(delay)
                attempt += 1
