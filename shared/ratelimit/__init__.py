"""Rate limiting over Upstash Redis, interoperable with @upstash/ratelimit.

from shared.ratelimit import Ratelimit, sliding_window

ratelimit = Ratelimit(redis, sliding_window(10, "10 s"))
result = await ratelimit.limit(ip)
"""

from shared.ratelimit.algorithms import (
    Algorithm,
    CachedFixedWindow,
    FixedWindow,
    SlidingWindow,
    TokenBucket,
    cached_fixed_window,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.ratelimit.concurrency import ConcurrencyLimit, Lease
from shared.ratelimit.expiring_lru import ExpiringLRU
from shared.ratelimit.headers import rate_limit_headers
from shared.ratelimit.limiter import DEFAULT_PREFIX, Ratelimit
from shared.ratelimit.multiregion import MultiRegionRatelimit
from shared.ratelimit.protection import Protection
from shared.ratelimit.result import OnError, RateLimitResult, Reason

__all__ = [
    "DEFAULT_PREFIX",
    "Algorithm",
    "CachedFixedWindow",
    "ConcurrencyLimit",
    "ExpiringLRU",
    "FixedWindow",
    "Lease",
    "MultiRegionRatelimit",
    "OnError",
    "Protection",
    "RateLimitResult",
    "Ratelimit",
    "Reason",
    "SlidingWindow",
    "TokenBucket",
    "cached_fixed_window",
    "fixed_window",
    "rate_limit_headers",
    "sliding_window",
    "token_bucket",
]
