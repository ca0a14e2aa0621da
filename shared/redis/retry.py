"""When a failed request may be sent again.

Only transport failures are retried (a Redis error is an answer), and by default
only when every command in the request is read-only: a retried `INCR` or
`SET NX` after a lost response would apply twice. Bounded by attempts and a
total deadline, with full-jitter exponential backoff.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`attempts` counts the first try; `deadline` bounds all tries and waits (seconds)."""

    attempts: int = 3
    deadline: float = 10.0
    base_delay: float = 0.05
    max_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be >= 1 (1 means no retry)")
        if self.deadline <= 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy durations must be positive")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt only: for tests and for callers with their own policy."""
        return cls(attempts=1)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1-based): full jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return (rng or random).uniform(0, ceiling)
