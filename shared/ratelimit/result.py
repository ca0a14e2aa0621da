"""What a rate-limit decision returns."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

Reason = Literal[
    "timeout",
    "error",
    "cache_block",
    "deny_list",
    "deny_identifier",
    "deny_ip",
    "deny_ip_list",
    "deny_user_agent",
    "deny_country",
]
"""Why a result was not decided by the limit (`None` on the result means Redis decided).

`deny_list` is the limiter's in-process `deny_list`; the other `deny_*` reasons come from
protection (`shared.ratelimit.protection`) and name the list that matched: the
identifier, the IP, the automatic IP list, the user agent or the country.
"""

DENY_REASONS: frozenset[str] = frozenset(
    {"deny_list", "deny_identifier", "deny_ip", "deny_ip_list", "deny_user_agent", "deny_country"}
)

OnError = Literal["allow", "deny"]


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """One `limit()` decision.

    `reset` is a Unix timestamp in milliseconds (as @upstash/ratelimit): the end of
    the window, the next refill, or for a denial the earliest time a request of the
    same weight can pass. `pending` is background work (analytics) to hand to the
    platform (`ctx.waitUntil`), or `None`.
    """

    success: bool
    limit: int
    remaining: int
    reset: int
    reason: Reason | None = None
    pending: Awaitable[Any] | None = None
    denied_value: str | None = None
    """The value found in a deny list (upstream's `deniedValue`), when one matched."""


@dataclass(frozen=True, slots=True)
class Decision:
    """An algorithm's answer before the limiter adds cache, analytics and reasons.

    `blocked_until` is set when no request of weight 1 can pass before that time
    (what the block cache remembers).
    """

    success: bool
    limit: int
    remaining: int
    reset: int
    blocked_until: int | None = None
    reason: Reason | None = None
    pending: Awaitable[Any] | None = None
    denied_value: str | None = None
