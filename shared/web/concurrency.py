"""At most N concurrent requests per caller on expensive routes (`ORDER_CONCURRENCY`).

The rate limit bounds requests per window; this bounds how many of one caller's
requests run at the same time (per API key, or per client address without keys).
A slot is a lease in Redis (`shared.ratelimit.ConcurrencyLimit`): taken before the
handler runs, given back when it returns; a crashed instance's slot frees when the
lease ends. Over the bound: 429 `{"error": "Too many concurrent requests"}` with
`Retry-After`. Redis trouble lets the request through (fail open), as the rate limit.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from shared.background import defer
from shared.errors import UpstashError
from shared.ratelimit import ConcurrencyLimit, Lease
from shared.web.app import MethodScoped, Middleware
from shared.web.errors import HttpError
from shared.web.http import Request, Response
from shared.web.ratelimiting import Identify
from shared.web.router import Handler

log = logging.getLogger(__name__)

TOO_MANY_CONCURRENT = "Too many concurrent requests"


def concurrency_middleware(
    limit: ConcurrencyLimit, *, routes: Collection[tuple[str, str]], identify: Identify
) -> Middleware:
    """Holds a slot of `limit` around the `(method, path)` routes listed."""
    guarded = frozenset((m.upper(), p) for m, p in routes)

    async def middleware(request: Request, call_next: Handler) -> Response:
        if (request.method, request.path) not in guarded:
            return await call_next(request)
        lease = await limit.acquire(identify(request))
        if not lease.success:
            raise HttpError(429, TOO_MANY_CONCURRENT, headers=limit.headers(lease))
        try:
            return await call_next(request)
        finally:
            if lease.lease_id is not None:
                # Given back beside the response, not before it: no round trip on the answer.
                defer(_release(limit, lease))

    return MethodScoped(middleware, frozenset(method for method, _ in guarded))


async def _release(limit: ConcurrencyLimit, lease: Lease) -> None:
    try:
        await limit.release(lease)
    except UpstashError as exc:  # the lease ends on its own
        log.warning("concurrency slot release failed (%s)", type(exc).__name__)
