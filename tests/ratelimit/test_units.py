"""Pure parts of the limiter: construction, window arithmetic, headers, the LRU cache."""

from __future__ import annotations

import pytest

from shared.ratelimit import (
    ExpiringLRU,
    Ratelimit,
    RateLimitResult,
    cached_fixed_window,
    fixed_window,
    rate_limit_headers,
    sliding_window,
    token_bucket,
)
from shared.ratelimit.window_math import (
    sliding_retry_at,
    token_bucket_retry_at,
    weighted_previous,
)
from shared.redis import Redis


def test_constructors_parse_the_project_duration_grammar() -> None:
    """Every limiter accepts the one duration grammar ("10 s", "10s", "1m", "1d10h30m", seconds)."""
    assert sliding_window(10, "10 s").window_ms == 10_000
    assert fixed_window(10, "10s").window_ms == 10_000
    assert cached_fixed_window(5, "1m").window_ms == 60_000
    assert token_bucket(1, "1d10h30m", 5).interval_ms == 124_200_000
    assert fixed_window(3, 2.5).window_ms == 2_500
    assert sliding_window(1, "250ms").window_ms == 250


def test_typescript_twin_is_one_line() -> None:
    """`Ratelimit(redis, Ratelimit.sliding_window(10, "10 s"))` mirrors the TS constructor."""
    redis = Redis("https://example.upstash.io", "token")
    ratelimit = Ratelimit(redis, Ratelimit.sliding_window(10, "10 s"))
    assert ratelimit.limiter == sliding_window(10, "10 s")
    assert ratelimit.prefix == "@upstash/ratelimit"
    assert ratelimit.timeout == 1.0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fixed_window(0, "10s"), "tokens must be an integer >= 1"),
        (lambda: sliding_window(-1, "10s"), "tokens must be an integer >= 1"),
        (lambda: sliding_window(True, "10s"), "tokens must be an integer >= 1"),
        (lambda: token_bucket(0, "1s", 5), "refill_rate must be an integer >= 1"),
        (lambda: token_bucket(1, "1s", 0), "max_tokens must be an integer >= 1"),
        (lambda: fixed_window(10, "10 parsecs"), "malformed duration"),
        (lambda: fixed_window(10, ""), "duration is empty"),
        (lambda: fixed_window(10, "0s"), "window must be at least 1 ms"),
        (lambda: sliding_window(10, -5), "duration must be a finite number"),
        (lambda: token_bucket(1, "1s1s", 2), "appears twice"),
    ],
)
def test_bad_limiter_arguments_raise_value_error(build: object, message: str) -> None:
    """Zero or negative limits and malformed durations raise ValueError with a message."""
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


async def test_bad_call_arguments_raise_value_error() -> None:
    """Empty identifiers, non-integer rates and bad options raise ValueError."""
    redis = Redis("https://example.upstash.io", "token")
    ratelimit = Ratelimit(redis, fixed_window(10, "10s"))
    with pytest.raises(ValueError, match="identifier must be a non-empty string"):
        await ratelimit.limit("")
    with pytest.raises(ValueError, match="rate must be an integer"):
        await ratelimit.limit("id", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout must be at least 1 ms"):
        await ratelimit.block_until_ready("id", 0)
    with pytest.raises(ValueError, match="on_error must be"):
        Ratelimit(redis, fixed_window(1, "1s"), on_error="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="malformed duration"):
        Ratelimit(redis, fixed_window(1, "1s"), timeout="soon")
    with pytest.raises(ValueError, match="cache size"):
        Ratelimit(redis, fixed_window(1, "1s"), cache_size=0)
    with pytest.raises(ValueError, match="prefix"):
        Ratelimit(redis, fixed_window(1, "1s"), prefix="")
    with pytest.raises(ValueError, match="dynamic limit"):
        await Ratelimit(redis, fixed_window(1, "1s")).set_dynamic_limit(0)


def test_weighted_previous_matches_upstream_formula() -> None:
    """The previous window counts floor((1 - offset/window) * previous), as in the Lua."""
    assert weighted_previous(10, 0, 10_000) == 10
    assert weighted_previous(10, 5_000, 10_000) == 5
    assert weighted_previous(10, 9_999, 10_000) == 0
    assert weighted_previous(7, 3_000, 10_000) == 4


def test_sliding_retry_at_is_the_first_instant_that_fits() -> None:
    """A denied sliding-window request learns the first millisecond it would be admitted."""
    window, start = 10_000, 1_000_000
    # 9 now, previous 10, limit 10: weight 1 fits once the previous share is 0 (about
    # offset 9000; the exact millisecond follows the script's floating-point formula).
    at = sliding_retry_at(start + 100, window, 10, 9, 10, 1)
    assert 8_999 <= at - start <= 9_001
    assert weighted_previous(10, at - start, window) == 0
    assert weighted_previous(10, at - start - 1, window) == 1
    # current window full: only the next window, once the current count has decayed.
    at = sliding_retry_at(start + 100, window, 10, 10, 0, 1)
    assert start + window < at < start + 2 * window
    assert weighted_previous(10, at - start - window, window) + 1 <= 10
    # a weight larger than the limit never fits: report the window end.
    assert sliding_retry_at(start + 100, window, 10, 0, 0, 11) == start + window


def test_token_bucket_retry_at_counts_the_refills_a_weight_needs() -> None:
    """A request of weight 5 on an empty bucket refilled 2 per interval waits 3 intervals."""
    assert token_bucket_retry_at(1_000, 100, 2, 0, 5) == 1_300
    assert token_bucket_retry_at(1_000, 100, 2, 0, 1) == 1_100


def test_headers_for_an_allowed_result() -> None:
    """Allowed: X-RateLimit-* and IETF draft-09 fields, no Retry-After."""
    result = RateLimitResult(True, 10, 3, 1_005_000, None)
    headers = rate_limit_headers(result, 10, now_ms=1_000_000)
    assert headers == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "3",
        "X-RateLimit-Reset": "1005000",
        "RateLimit-Policy": '"default";q=10;w=10',
        "RateLimit": '"default";r=3;t=5',
    }


def test_headers_for_a_denied_result_carry_retry_after() -> None:
    """Denied: Retry-After is the seconds until reset, rounded up, at least 1."""
    result = RateLimitResult(False, 10, 0, 1_000_200, None)
    headers = rate_limit_headers(result, 60, now_ms=1_000_000, policy="api")
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit"] == '"api";r=0;t=1'
    assert headers["RateLimit-Policy"] == '"api";q=10;w=60'
    with pytest.raises(ValueError, match="policy name"):
        rate_limit_headers(result, 60, policy='bad"name')


def test_deny_list_result_has_no_retry_after() -> None:
    """A deny-listed identifier has no reset time, so no Retry-After."""
    result = RateLimitResult(False, 10, 0, 0, "deny_list")
    assert "Retry-After" not in rate_limit_headers(result, 10, now_ms=5)


@pytest.mark.parametrize("reason", ["timeout", "error"])
def test_fail_open_headers_state_only_the_policy(reason: str) -> None:
    """A fail-open decision does not claim a quota it never read: limit and policy only."""
    result = RateLimitResult(True, 10, 0, 1_000_000, reason)  # type: ignore[arg-type]
    assert rate_limit_headers(result, 10, now_ms=1_000_000) == {
        "X-RateLimit-Limit": "10",
        "RateLimit-Policy": '"default";q=10;w=10',
    }


@pytest.mark.parametrize("reason", ["timeout", "error"])
def test_fail_closed_headers_ask_for_a_short_retry(reason: str) -> None:
    """A fail-closed denial states the policy and Retry-After: 1, no invented remaining count."""
    result = RateLimitResult(False, 10, 0, 1_000_000, reason)  # type: ignore[arg-type]
    assert rate_limit_headers(result, 10, now_ms=1_000_000) == {
        "X-RateLimit-Limit": "10",
        "RateLimit-Policy": '"default";q=10;w=10',
        "Retry-After": "1",
    }


def test_lru_drops_the_least_recently_used_beyond_its_cap() -> None:
    """The cache holds at most max_size entries; reading an entry makes it recent."""
    cache: ExpiringLRU[int] = ExpiringLRU(2)
    cache.set("a", 1, 100)
    cache.set("b", 2, 100)
    assert cache.get("a", 0) == 1
    cache.set("c", 3, 100)
    assert cache.get("b", 0) is None
    assert (cache.get("a", 0), cache.get("c", 0), len(cache)) == (1, 3, 2)


def test_lru_entries_expire_by_the_injected_clock() -> None:
    """An entry is gone once the given clock reaches its expiry."""
    cache: ExpiringLRU[int] = ExpiringLRU(10)
    cache.set("a", 1, expires_at_ms=1_000)
    assert cache.get("a", 999) == 1
    assert cache.get("a", 1_000) is None
    assert len(cache) == 0
