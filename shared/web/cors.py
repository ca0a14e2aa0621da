"""CORS for browser clients, and `OPTIONS` answered instead of 405.

The middleware sits OUTERMOST, so every answer for an allowed origin carries the
CORS headers, 429s and 5xx included (a browser hides the body of an answer
without them, and the client sees a network error instead of "too many requests").

- `CORS_ALLOW_ORIGINS` lists exact origins (or `*`); none means no CORS headers.
- A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
  answered here, before rate limiting: 204 with the methods the path accepts, the
  request headers the API reads, `Max-Age` and `Vary: Origin`. A preflight from an
  origin that is not allowed answers 403 JSON without CORS headers (clearer in a
  browser's network tab and in curl than a bare 204).
- A plain `OPTIONS` on a known path answers 204 with `Allow`.
- Credentials (cookies) are off unless `CORS_ALLOW_CREDENTIALS=true`, never with `*`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from shared.web.app import Middleware
from shared.web.errors import error_response, response_for
from shared.web.http import Request, Response
from shared.web.router import Handler

ALLOW_HEADERS = "authorization, content-type, idempotency-key, x-api-key, x-request-id"
EXPOSE_HEADERS = (
    "x-request-id, x-cache, idempotent-replayed, retry-after, ratelimit, ratelimit-policy, "
    "x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset"
)
MAX_AGE_S = 600
VARY_PREFLIGHT = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
AllowedMethods = Callable[[str], list[str]]


def cors_middleware(
    origins: Collection[str],
    *,
    allowed_methods: AllowedMethods,
    allow_credentials: bool = False,
    max_age_s: int = MAX_AGE_S,
) -> Middleware:
    """`allowed_methods(path)` lists the methods routed for `path` (empty: unknown path)."""
    allowed = frozenset(o.lower().rstrip("/") for o in origins)
    wildcard = "*" in allowed
    if wildcard and allow_credentials:
        raise ValueError("credentials cannot be allowed for every origin ('*')")

    def origin_headers(origin: str | None) -> dict[str, str]:
        if not allowed:
            return {}
        headers = {} if wildcard else {"vary": "Origin"}
        if origin is None or not (wildcard or origin.lower() in allowed):
            return headers
        headers["access-control-allow-origin"] = "*" if wildcard else origin
        if allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        return headers

    def preflight(origin: str, methods: list[str]) -> Response:
        headers = origin_headers(origin)
        if "access-control-allow-origin" not in headers:
            return error_response(403, "Origin not allowed")
        headers.update(
            {
                "access-control-allow-methods": ", ".join([*methods, "OPTIONS"]),
                "access-control-allow-headers": ALLOW_HEADERS,
                "access-control-max-age": str(max_age_s),
            }
        )
        if not wildcard:
            headers["vary"] = VARY_PREFLIGHT
        return Response(204, b"", headers)

    async def middleware(request: Request, call_next: Handler) -> Response:
        origin = request.headers.get("origin")
        if request.method == "OPTIONS":
            methods = allowed_methods(request.path)
            if methods:
                if origin is not None and "access-control-request-method" in request.headers:
                    return preflight(origin, methods)
                allow = ", ".join([*methods, "OPTIONS"])
                return Response(204, b"", {"allow": allow}).with_headers(origin_headers(origin))
        try:
            response = await call_next(request)
        except Exception as exc:  # mapped here so that error answers carry CORS headers too
            response = response_for(exc, request.request_id)
        headers = origin_headers(origin)
        if "access-control-allow-origin" in headers:
            headers["access-control-expose-headers"] = EXPOSE_HEADERS
        _merge_vary(response, headers.pop("vary", None))
        return response.with_headers(headers)

    return middleware


def _merge_vary(response: Response, vary: str | None) -> None:
    if vary is None:
        return
    current = response.headers.get("vary")
    if not current:
        response.headers["vary"] = vary
    elif vary.lower() not in current.lower():
        response.headers["vary"] = f"{current}, {vary}"
