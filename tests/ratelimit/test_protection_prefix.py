"""A limiter and its protection lists share one prefix: upstream keys the deny lists under
the limiter's prefix, so lists under another prefix would silently never match."""

from __future__ import annotations

import pytest

from shared.ratelimit import MultiRegionRatelimit, Protection, Ratelimit, sliding_window
from shared.redis import Redis


def test_protection_under_another_prefix_is_refused() -> None:
    """Ratelimit(prefix="api", protection=Protection(redis)) is a ValueError naming both."""
    redis = Redis("https://example.upstash.io", "token")
    with pytest.raises(ValueError, match="prefix"):
        Ratelimit(redis, sliding_window(10, "10 s"), "api", protection=Protection(redis))
    with pytest.raises(ValueError, match="prefix"):
        MultiRegionRatelimit(
            [redis], sliding_window(10, "10 s"), "api", protection=Protection(redis, "other")
        )


def test_protection_under_the_limiters_prefix_is_accepted() -> None:
    """The same prefix on both (the default on both, or one named on both) is fine."""
    redis = Redis("https://example.upstash.io", "token")
    assert Ratelimit(redis, sliding_window(10, "10 s"), protection=Protection(redis)).protection
    limiter = Ratelimit(redis, sliding_window(1, "1 s"), "api", protection=Protection(redis, "api"))
    assert limiter.protection is not None and limiter.protection.prefix == "api"
