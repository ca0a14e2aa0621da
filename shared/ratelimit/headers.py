"""Rate-limit response headers from a `RateLimitResult`.

Two families: the de-facto `X-RateLimit-Limit/Remaining/Reset` (Reset in Unix
milliseconds, as @upstash/ratelimit's `reset`), and the IETF fields of
draft-ietf-httpapi-ratelimit-headers-09 (structured fields, delta seconds):

    RateLimit-Policy: "default";q=10;w=10
    RateLimit: "default";r=3;t=5

plus `Retry-After` (seconds) on a denial that has a reset time.

When Redis did not decide (`reason` "timeout" or "error": the limiter failed open
or closed), the current quota is unknown, so only the configured policy is stated
(`X-RateLimit-Limit`, `RateLimit-Policy`): no remaining count, reset or `RateLimit`
field is invented. A fail-closed denial adds `Retry-After: 1`, since the next
request asks Redis again.
"""

from __future__ import annotations

import math
import re
import time

from shared.ratelimit.result import RateLimitResult

_POLICY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def rate_limit_headers(
    result: RateLimitResult,
    policy_window_s: int,
    *,
    now_ms: int | None = None,
    policy: str = "default",
) -> dict[str, str]:
    """The headers for `result`; `policy_window_s` is the policy's window in seconds.

        headers = rate_limit_headers(result, 10)
        # {"X-RateLimit-Limit": "10", ..., "RateLimit": '"default";r=3;t=5'}

    Prefer `Ratelimit.headers(result)`, which knows the window and the clock.
    """
    if not _POLICY_NAME.fullmatch(policy):
        raise ValueError(f"policy name must match {_POLICY_NAME.pattern}, got {policy!r}")
    if isinstance(policy_window_s, bool) or policy_window_s < 1:
        raise ValueError(f"policy_window_s must be >= 1, got {policy_window_s!r}")
    policy_field = f'"{policy}";q={result.limit};w={policy_window_s}'
    if result.reason in ("timeout", "error"):
        unknown = {"X-RateLimit-Limit": str(result.limit), "RateLimit-Policy": policy_field}
        if not result.success:
            unknown["Retry-After"] = "1"
        return unknown
    now = int(time.time() * 1000) if now_ms is None else now_ms
    seconds_left = max(0, math.ceil((result.reset - now) / 1000)) if result.reset else 0
    remaining = max(0, result.remaining)
    headers = {
        "X-RateLimit-Limit": str(result.limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(result.reset),
        "RateLimit-Policy": policy_field,
        "RateLimit": f'"{policy}";r={remaining};t={seconds_left}',
    }
    if not result.success and result.reset:
        headers["Retry-After"] = str(max(1, seconds_left))
    return headers
