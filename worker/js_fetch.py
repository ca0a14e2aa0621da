"""`Transport` over the runtime's own `fetch`, for Workers: the deadline is the request's.

`shared.http.FetchTransport` over `pyfetch` bounds each exchange with a Python timer
(`asyncio.wait_for`); in Pyodide every timer is a JS `setTimeout` calling back into Python,
even after it is cancelled. Here the deadline is the request's own abort signal, fired by a
JS timer that calls no Python and is cleared once the exchange is over (`AbortSignal.timeout`
would fire later all the same): it bounds the whole exchange, body included. The JS headers
object for a header set is built once and reused (every Redis call sends the same one).

    transport = JsFetchTransport()          # js.fetch, js.AbortController, js.setTimeout
    response = await transport.send(HttpRequest("POST", url, headers, body, timeout=2.0))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import js
from pyodide.ffi import JsException, to_js

from shared.errors import TransportError, TransportTimeout
from shared.http.transport import HttpRequest, HttpResponse

# What a fetch rejects with when its signal fires: only the deadline's timer aborts it.
TIMEOUT_ERROR = "AbortError"
HEADER_SETS_KEPT = 32


class JsFetchTransport:
    """Sends each request with one JS `fetch`, bounded by `request.timeout` as a whole."""

    total_deadline = True  # the abort signal bounds the whole exchange: no caller timer

    def __init__(self) -> None:
        self._js_headers: dict[tuple[tuple[str, str], ...], Any] = {}

    def _headers(self, headers: Mapping[str, str]) -> Any:
        key = tuple(headers.items())
        found = self._js_headers.get(key)
        if found is None:
            if len(self._js_headers) >= HEADER_SETS_KEPT:
                self._js_headers.clear()
            found = to_js(dict(headers), dict_converter=js.Object.fromEntries)
            self._js_headers[key] = found
        return found

    def _init(self, request: HttpRequest, signal: Any) -> Any:
        init: dict[str, Any] = {
            "method": request.method,
            "headers": self._headers(request.headers),
            "signal": signal,
        }
        if request.body:
            init["body"] = to_js(request.body)  # a Uint8Array: every byte as is
        return to_js(init, dict_converter=js.Object.fromEntries)

    async def send(self, request: HttpRequest) -> HttpResponse:
        controller = js.AbortController.new()
        timer = js.setTimeout(
            controller.abort.bind(controller),
            max(1, math.ceil(request.timeout * 1000)),
        )
        finished = False
        try:
            response = await js.fetch(request.url, self._init(request, controller.signal))
            buffer = await response.arrayBuffer()  # the same signal bounds the body
            finished = True
        except JsException as exc:
            name = str(getattr(exc, "name", "") or type(exc).__name__)
            if name == TIMEOUT_ERROR:
                raise TransportTimeout(
                    f"{request.method} request timed out after {request.timeout:g}s"
                ) from None
            # The error's name only (a refused connection is a `TypeError`): its message may
            # quote the URL, and a URL may carry a secret.
            raise TransportError(f"{request.method} request failed: {name}") from None
        finally:
            js.clearTimeout(timer)
            if not finished:  # cancelled, say: the exchange must not outlive its caller
                controller.abort()
        headers: dict[str, str] = js.Object.fromEntries(response.headers).to_py()
        return HttpResponse(
            status=int(response.status),
            headers={name.lower(): value for name, value in headers.items()},
            body=buffer.to_bytes(),
        )
