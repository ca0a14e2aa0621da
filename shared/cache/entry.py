"""The stored form of one cache entry, and cache key names, as pure functions.

One Redis string per key: a one-line ASCII header, a newline, the codec payload.

    c1|<fresh_until_ms>|<stale_until_ms>|v\\n{"id":42,"name":"Ada"}
    c1|<fresh_until_ms>|<stale_until_ms>|n\\n                       (loader said "not found")

`v` marks a value (so `0`, `""`, `[]`, `false` are values, not misses) and `n` a
negative entry. Freshness is read from the header with the caller's clock, so
the hit path stays ONE `GET`; the Redis key expires at `stale_until` (PX), which
is the fresh TTL plus the stale window, jittered. Anything that does not parse
(another version, a value written by some other tool) reads as a miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VERSION = "c1"
MAX_KEY_LENGTH = 512
LOCK_PREFIX = "~lock:"
GEN_PREFIX = "~gen:"

Kind = Literal["v", "n"]
Freshness = Literal["fresh", "stale", "expired"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A parsed entry: `payload` is the codec text (empty for a negative entry)."""

    kind: Kind
    fresh_until_ms: int
    stale_until_ms: int
    payload: str = ""

    @property
    def negative(self) -> bool:
        return self.kind == "n"

    def freshness(self, now_ms: int) -> Freshness:
        if now_ms < self.fresh_until_ms:
            return "fresh"
        if now_ms < self.stale_until_ms:
            return "stale"
        return "expired"


def encode_entry(entry: Entry) -> str:
    if entry.stale_until_ms < entry.fresh_until_ms:
        raise ValueError("stale_until_ms must be >= fresh_until_ms")
    header = f"{VERSION}|{entry.fresh_until_ms}|{entry.stale_until_ms}|{entry.kind}"
    return f"{header}\n{entry.payload}"


def decode_entry(raw: str) -> Entry | None:
    """The entry in `raw`, or None when it is not one (unknown version, foreign value)."""
    header, sep, payload = raw.partition("\n")
    if not sep:
        return None
    parts = header.split("|")
    if len(parts) != 4 or parts[0] != VERSION or parts[3] not in ("v", "n"):
        return None
    fresh, stale = parts[1], parts[2]
    if not (fresh.isdigit() and stale.isdigit() and fresh.isascii() and stale.isascii()):
        return None
    kind: Kind = "v" if parts[3] == "v" else "n"
    return Entry(kind, int(fresh), int(stale), payload)


def check_key(key: str, what: str = "cache key") -> str:
    """`key` if it is a usable cache key; `ValueError` saying what is wrong otherwise."""
    if not isinstance(key, str):
        raise ValueError(f"{what} must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{what} is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}")
    # Every whitespace character but the space is unprintable: two C-level scans.
    if " " in key or not key.isprintable():
        ch = next(c for c in key if c.isspace() or not c.isprintable())
        raise ValueError(
            f"{what} contains whitespace or a control character ({ch!r}); "
            "use printable characters only, e.g. 'order:42'"
        )
    if key.startswith("~"):
        raise ValueError(f"{what} must not start with '~' (reserved for the cache's lock keys)")
    return key


def value_key(namespace: str, key: str) -> str:
    """THE one place a cache key becomes a Redis key: `{namespace}:{key}`."""
    return f"{namespace}:{check_key(key)}"


def lock_key(value_key: str, namespace: str) -> str:
    """The stampede lock of a value key: `{namespace}:~lock:{key}` (user keys never start '~')."""
    return f"{namespace}:{LOCK_PREFIX}{value_key[len(namespace) + 1 :]}"


def gen_key(value_key: str, namespace: str) -> str:
    """The invalidation marker of a value key: `{namespace}:~gen:{key}`. `invalidate` sets it
    to a new random value; a load's write only lands if it still holds what the load saw."""
    return f"{namespace}:{GEN_PREFIX}{value_key[len(namespace) + 1 :]}"
