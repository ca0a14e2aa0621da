"""A bounded in-memory map whose entries expire at a time given by an injected clock."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


class ExpiringLRU(Generic[T]):
    """At most `max_size` entries; the least recently used goes first, expired ones on read.

        cache: ExpiringLRU[int] = ExpiringLRU(10_000)
        cache.set("id", 50, expires_at_ms=now_ms + 10_000)
        cache.get("id", now_ms)           # 50 until then, None afterwards

    Every method runs without awaiting, so concurrent requests on one event loop
    see each operation whole (upstream's block cache is an unbounded Map).
    """

    __slots__ = ("_entries", "max_size")

    def __init__(self, max_size: int = 10_000) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"cache size must be an integer >= 1, got {max_size!r}")
        self.max_size = max_size
        self._entries: OrderedDict[str, tuple[T, int]] = OrderedDict()

    def get(self, key: str, now_ms: int) -> T | None:
        """The live value for `key`, or None (an expired entry is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if now_ms >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def set(self, key: str, value: T, expires_at_ms: int) -> None:
        self._entries[key] = (value, expires_at_ms)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
