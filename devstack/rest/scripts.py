"""Upstash's ``allow-key-locking`` script flag on a stock Redis.

Upstash accepts ``#!lua flags=allow-key-locking`` (the official rate limiters send
it); Redis and Valkey reject the unknown flag. We strip it before the script reaches
Redis (a shebang left without flags becomes an empty line, so error line numbers
stay right) and remember ``sha1(original) -> sha1(rewritten)`` so EVALSHA with the
SHA the client computed from its own source finds the script Redis cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

UPSTASH_ONLY_FLAGS = frozenset({b"allow-key-locking"})

ReplyFixer = Callable[[object], object]


def sha1_hex(script: bytes) -> str:
    return hashlib.sha1(script, usedforsecurity=False).hexdigest()


def rewrite_shebang(script: bytes) -> bytes:
    """The script without Upstash-only shebang flags (unchanged when it has none)."""
    if not script.startswith(b"#!"):
        return script
    first, newline, rest = script.partition(b"\n")
    words = first.split(b" ")
    changed = False
    kept: list[bytes] = []
    for word in words:
        if word.startswith(b"flags="):
            flags = [flag for flag in word[len(b"flags=") :].split(b",") if flag]
            remaining = [flag for flag in flags if flag not in UPSTASH_ONLY_FLAGS]
            if len(remaining) != len(flags):
                changed = True
                if remaining:
                    kept.append(b"flags=" + b",".join(remaining))
                continue
        kept.append(word)
    if not changed:
        return script
    meaningful = [word for word in kept[1:] if word]
    new_first = b" ".join(kept) if meaningful else b""
    return new_first + newline + rest


@dataclass(frozen=True, slots=True)
class PreparedCommand:
    """Arguments to send to Redis plus an optional fix applied to the raw reply."""

    args: list[bytes]
    fix_reply: ReplyFixer | None = None


class ScriptRegistry:
    """Rewrites script commands and maps original SHAs to the rewritten ones."""

    def __init__(self) -> None:
        self._sha_map: dict[str, str] = {}

    def _rewrite(self, script: bytes) -> tuple[bytes, str, str]:
        rewritten = rewrite_shebang(script)
        original_sha = sha1_hex(script)
        new_sha = sha1_hex(rewritten)
        if rewritten != script:
            self._sha_map[original_sha] = new_sha
        return rewritten, original_sha, new_sha

    def _map_sha(self, sha: bytes) -> bytes:
        mapped = self._sha_map.get(sha.decode("ascii", "replace").lower())
        return mapped.encode() if mapped else sha

    def prepare(self, args: list[bytes]) -> PreparedCommand:
        """Rewrite EVAL/EVALSHA/SCRIPT LOAD/SCRIPT EXISTS; other commands pass through."""
        name = args[0].upper()
        if name in (b"EVAL", b"EVAL_RO") and len(args) > 1:
            rewritten, _, _ = self._rewrite(args[1])
            return PreparedCommand([args[0], rewritten, *args[2:]])
        if name in (b"EVALSHA", b"EVALSHA_RO") and len(args) > 1:
            return PreparedCommand([args[0], self._map_sha(args[1]), *args[2:]])
        if name == b"SCRIPT" and len(args) > 1:
            sub = args[1].upper()
            if sub == b"LOAD" and len(args) == 3:
                rewritten, original_sha, new_sha = self._rewrite(args[2])
                return PreparedCommand(
                    [args[0], args[1], rewritten], _replace_sha(new_sha, original_sha)
                )
            if sub == b"EXISTS":
                return PreparedCommand([*args[:2], *(self._map_sha(a) for a in args[2:])])
        return PreparedCommand(args)


def _replace_sha(sent_sha: str, original_sha: str) -> ReplyFixer:
    def fix(reply: object) -> object:
        if isinstance(reply, bytes) and reply.decode("ascii", "replace") == sent_sha:
            return original_sha.encode()
        return reply

    return fix
