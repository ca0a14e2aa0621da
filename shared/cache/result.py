"""What `get_or_load_result` returns: the value and how it was obtained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

CacheStatus = Literal["HIT", "MISS", "STALE", "BYPASS"]
"""HIT: from Redis (fresh, or written meanwhile by the caller that held the lock);
MISS: the loader ran and the entry was written; STALE: served past its fresh TTL
while a background refresh runs; BYPASS: Redis failed or timed out, the loader ran
and nothing was cached. Use it as the `X-Cache` header value."""


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[T]):
    """A value with its `status`, ready for an `X-Cache` header.

    result = await cache.get_or_load_result("order:42", load_order)
    headers["X-Cache"] = result.status
    """

    value: T
    status: CacheStatus

    @property
    def from_cache(self) -> bool:
        """True when Redis answered with the value (HIT or STALE): the loader did not run."""
        return self.status in ("HIT", "STALE")
