"""A rate-limit decision awaited to the end: what a test reads after the limiter's
background work (synchronising regions, analytics, deny-list refresh) has finished."""

from __future__ import annotations

from shared.ratelimit import Ratelimit, RateLimitResult


async def settled(
    limiter: Ratelimit, identifier: str, rate: int = 1, **request: str
) -> RateLimitResult:
    """`limiter.limit(identifier, rate, **request)`, returned once its pending work is done."""
    result = await limiter.limit(identifier, rate, **request)
    assert result.pending is not None, result
    await result.pending
    return result
