"""Pure arithmetic of the window algorithms (no I/O, no clock): keys, resets, retry times."""

from __future__ import annotations

import math


def window_index(now_ms: int, window_ms: int) -> int:
    """The window a timestamp falls in: `floor(now_ms / window_ms)`, as upstream."""
    return now_ms // window_ms


def weighted_previous(previous: int, offset_ms: int, window_ms: int) -> int:
    """How much of the previous window still counts `offset_ms` into the current one.

    The same floating-point expression as the Lua script, so both agree exactly.
    """
    return math.floor((1 - offset_ms / window_ms) * previous)


def _first_offset(previous: int, lo: int, window_ms: int, budget: int) -> int | None:
    """The smallest offset in [lo, window_ms) where the weighted previous fits `budget`."""
    if lo >= window_ms or weighted_previous(previous, window_ms - 1, window_ms) > budget:
        return None
    hi = window_ms - 1
    while lo < hi:  # weighted_previous only decreases as the offset grows
        mid = (lo + hi) // 2
        if weighted_previous(previous, mid, window_ms) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return lo


def sliding_retry_at(
    now_ms: int, window_ms: int, limit: int, current: int, previous: int, rate: int
) -> int:
    """The earliest time a request of weight `rate` fits, if no other request arrives.

    Upstream reports the end of the current window, which is too early when the
    current window is full (its count weighs on the next one) and too late when the
    previous window's share is what blocks.
    """
    start = window_index(now_ms, window_ms) * window_ms
    if rate > limit:
        return start + window_ms
    offset = now_ms - start
    if current + rate <= limit:
        found = _first_offset(previous, offset + 1, window_ms, limit - rate - current)
        if found is not None:
            return start + found
    found = _first_offset(current, 0, window_ms, limit - rate)
    if found is not None:
        return start + window_ms + found
    return start + 2 * window_ms


def token_bucket_retry_at(
    refilled_at: int, interval_ms: int, refill_rate: int, tokens: int, rate: int
) -> int:
    """When the bucket holds `rate` tokens again (at least the next refill)."""
    refills = max(1, math.ceil((rate - tokens) / refill_rate))
    return refilled_at + refills * interval_ms
