"""Rate limiting for `/api/*`, issued concurrently with the handler's first Redis read.

The middleware starts `limit(client)` and runs the handler at once, so the
limiter's EVALSHA and, say, the cache GET of `GET /api/orders/{id}` leave in ONE
auto-pipelined HTTP request. Handlers that would do expensive or irreversible
work (load from the origin, write) first `await rate_gate()`: a denied request
answers 429 and never reaches that work. A handler that finished without the gate
(a cache hit) is still replaced by the 429 when the decision is a denial.

With protection (`DENY_COUNTRIES`, `IP_DENY_LIST_URL`, `RATE_LIMIT_PROTECTION`), the
client's address, user agent and country go along with the decision, and a request
found in a deny list answers 403 `{"error": "Request denied", "detail": <reason>}`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from shared.ratelimit import Ratelimit, RateLimitResult
from shared.ratelimit.result import DENY_REASONS
from shared.scope import ScopeKey, current_scope
from shared.web.app import Middleware
from shared.web.errors import HttpError, error_response, response_for
from shared.web.http import Request, Response
from shared.web.router import Handler

TOO_MANY = "Too many requests"
DENIED = "Request denied"
Identify = Callable[[Request], str]


def client_identifier(request: Request) -> str:
    """The client's address; IPv6 grouped by /64 (one subscriber usually owns a /64)."""
    raw = (request.client_ip or "").strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return "ip:unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        network = ipaddress.IPv6Network(f"{address}/64", strict=False)
        return f"ip:{network.network_address}/64"
    return f"ip:{address}"


@dataclass(slots=True)
class _Gate:
    decision: asyncio.Future[RateLimitResult] | None = None


_GATE_OWNER = ScopeKey("ratelimiting")


def _gate() -> _Gate:
    return current_scope().state(_GATE_OWNER, _Gate)


async def rate_gate() -> None:
    """Waits for this request's rate-limit decision; raises the 429 when denied."""
    decision = _gate().decision
    if decision is None:
        return
    result = await asyncio.shield(decision)
    if not result.success:
        raise refusal(result)


def refusal(result: RateLimitResult) -> HttpError:
    """429 for a spent budget; 403 naming the list for a deny-list match."""
    if result.reason in DENY_REASONS:
        return HttpError(403, DENIED, result.reason)
    return HttpError(429, TOO_MANY)


def rate_limit_middleware(
    limiter: Ratelimit,
    *,
    exempt: Collection[str] = (),
    prefix: str = "/api/",
    identify: Identify = client_identifier,
) -> Middleware:
    """Limits paths under `prefix` except the `exempt` ones; headers on every answer."""

    async def middleware(request: Request, call_next: Handler) -> Response:
        if not request.path.startswith(prefix) or request.path in exempt:
            return await call_next(request)
        gate = _gate()
        # Started eagerly: the decision runs at once up to its Redis call (queued in this
        # turn's batch), then the handler's first command joins that batch. No loop turn
        # is spent starting the task, and the decision, first in the batch, is done before
        # the handler resumes (in Pyodide every turn is a JS `setTimeout`).
        decision = asyncio.Task(
            limiter.limit(
                identify(request),
                ip=request.client_ip,
                user_agent=request.headers.get("user-agent"),
                country=request.country,
            ),
            loop=asyncio.get_running_loop(),
            eager_start=True,
        )
        gate.decision = decision
        try:
            response = await call_next(request)
        except Exception as exc:  # mapped here so that errors carry the limit headers too
            response = response_for(exc, request.request_id)
        try:
            result = await decision
        finally:
            # The handler is done with it; dropped so that no cycle (scope -> gate -> task ->
            # its context -> scope) is left for the garbage collector to find.
            gate.decision = None
        if not result.success:
            denial = refusal(result)
            response = error_response(denial.status, denial.message, denial.detail)
        return add_limit_headers(response, limiter.headers(result))

    return middleware


_POLICY_LISTS = ("ratelimit-policy", "ratelimit")


def add_limit_headers(response: Response, headers: Mapping[str, str]) -> Response:
    """This limiter's headers on `response`, unless an inner limiter answered already (the
    order concurrency cap's 429): then its answer stands (`X-RateLimit-*`, `Retry-After`)
    and the structured fields list both policies, ours first (IETF draft-09 lists)."""
    present = response.headers
    if "ratelimit-policy" not in present:
        return response.with_headers(headers)
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in _POLICY_LISTS and key in present:
            merged[key] = f"{value}, {present[key]}"
        elif key not in present:
            merged[key] = value
    return response.with_headers(merged)
