"""`Transport` over the runtime's fetch (Pyodide's `pyfetch`, Cloudflare's `workers.fetch`).

The entrypoint passes the fetch function in; nothing here imports `js` or
`pyodide`. Both functions take `(url, method=, headers=, body=)` and return a
response with `.status`, `.headers` and an awaitable `.bytes()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from shared.errors import TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse

FetchFn = Callable[..., Awaitable[Any]]


def _header_pairs(raw: Any) -> Iterable[tuple[str, str]]:
    """Reads a dict, a pyfetch header dict or a JS `Headers` proxy as (name, value) pairs."""
    if raw is None:
        return []
    if hasattr(raw, "items"):
        return [(str(k), str(v)) for k, v in raw.items()]
    pairs: list[tuple[str, str]] = []
    for entry in raw:  # a JS Headers object iterates as [name, value] arrays
        name, value = entry[0], entry[1]
        pairs.append((str(name), str(value)))
    return pairs


class FetchTransport:
    """Sends requests through a fetch function; the timeout wraps the whole exchange.

    `total_deadline` tells callers that `request.timeout` already bounds the whole exchange
    here, so they need not arm a second timer of their own (in Pyodide every timer is a JS
    `setTimeout`, paid per call).
    """

    total_deadline = True

    def __init__(self, fetch_fn: FetchFn) -> None:
        self._fetch = fetch_fn

    async def _exchange(self, request: HttpRequest) -> HttpResponse:
        kwargs: dict[str, Any] = {"method": request.method, "headers": dict(request.headers)}
        if request.body:
            kwargs["body"] = request.body  # bytes: Pyodide's to_js turns them into a Uint8Array
        response = await self._fetch(request.url, **kwargs)
        body = await response.bytes()
        headers = {k.lower(): v for k, v in _header_pairs(getattr(response, "headers", None))}
        return HttpResponse(status=int(response.status), headers=headers, body=bytes(body))

    async def send(self, request: HttpRequest) -> HttpResponse:
        try:
            return await asyncio.wait_for(self._exchange(request), request.timeout)
        except TimeoutError as exc:
            raise TransportTimeout(
                f"{request.method} request timed out after {request.timeout:g}s"
            ) from exc
        except (TransportError, asyncio.CancelledError):
            raise
        except Exception as exc:  # the JS side raises JsException / OSError subclasses
            raise TransportError(f"{request.method} request failed: {type(exc).__name__}") from exc
