"""The HTTP transport port: every byte the core sends goes through a `Transport`.

`HttpxTransport` serves CPython (Vercel, scripts, tests); `FetchTransport` wraps
a runtime's fetch function (Pyodide's `pyfetch`, `workers.fetch`) handed in by its
caller. The Worker entrypoint hands in its own `JsFetchTransport` (worker/js_fetch.py:
the JS fetch with an abort-signal deadline), so `shared/` never imports a runtime module.
"""

from shared.http.fetch import FetchTransport
from shared.http.transport import HttpRequest, HttpResponse, Transport

__all__ = ["FetchTransport", "HttpRequest", "HttpResponse", "HttpxTransport", "Transport"]


def __getattr__(name: str) -> object:
    # httpx does not import in plain Pyodide (no ssl): load it only when asked for.
    if name == "HttpxTransport":
        from shared.http.httpx_transport import HttpxTransport

        return HttpxTransport
    raise AttributeError(name)
