"""Which commands the REST server refuses, and which ones a read-only token may run.

Blocking commands, pub/sub, transactions-as-commands and connection commands other
than PING/ECHO would break a pooled, stateless connection: they are refused for
every token. Write classification comes from Redis's own ``COMMAND`` flags (loaded
once), plus every scripting command, which Upstash refuses for read-only tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

BLOCKED_COMMANDS = frozenset(
    {
        b"BLPOP",
        b"BRPOP",
        b"BRPOPLPUSH",
        b"BLMOVE",
        b"BLMPOP",
        b"BZPOPMIN",
        b"BZPOPMAX",
        b"BZMPOP",
        b"WAIT",
        b"WAITAOF",
        b"SUBSCRIBE",
        b"PSUBSCRIBE",
        b"SSUBSCRIBE",
        b"UNSUBSCRIBE",
        b"PUNSUBSCRIBE",
        b"SUNSUBSCRIBE",
        b"WATCH",
        b"UNWATCH",
        b"MULTI",
        b"EXEC",
        b"DISCARD",
        b"SELECT",
        b"AUTH",
        b"QUIT",
        b"CLIENT",
        b"HELLO",
        b"RESET",
        b"MONITOR",
        b"SHUTDOWN",
        b"SYNC",
        b"PSYNC",
        b"REPLCONF",
        b"REPLICAOF",
        b"SLAVEOF",
        b"FAILOVER",
        b"SWAPDB",
        b"MOVE",
    }
)

SCRIPT_COMMANDS = frozenset(
    {
        b"EVAL",
        b"EVALSHA",
        b"EVAL_RO",
        b"EVALSHA_RO",
        b"SCRIPT",
        b"FCALL",
        b"FCALL_RO",
        b"FUNCTION",
    }
)

REFUSED_FLAGS = frozenset({"write", "admin"})


def blocked_reason(args: list[bytes]) -> str | None:
    """The error text for a command the REST API does not offer, else None."""
    name = args[0].upper()
    blocked = name in BLOCKED_COMMANDS
    if name in (b"XREAD", b"XREADGROUP"):
        blocked = any(arg.upper() == b"BLOCK" for arg in args[1:])
    if not blocked:
        return None
    return f"ERR Command is not available: '{name.decode('utf-8', 'replace')}'"


class CommandTable:
    """Command flags by lower-case name; containers' subcommands as ``config|set``."""

    def __init__(self, flags: Mapping[str, frozenset[str]]) -> None:
        self._flags = dict(flags)

    @classmethod
    def from_command_reply(cls, reply: Iterable[object]) -> CommandTable:
        """Build from a raw ``COMMAND`` reply (RESP2 arrays of bytes/ints)."""
        flags: dict[str, frozenset[str]] = {}

        def visit(entry: object) -> None:
            if not isinstance(entry, list) or len(entry) < 3:
                return
            name = _text(entry[0]).lower()
            raw_flags = entry[2] if isinstance(entry[2], list) else []
            flags[name] = frozenset(_text(flag).lower() for flag in raw_flags)
            subcommands = entry[9] if len(entry) > 9 and isinstance(entry[9], list) else []
            for sub in subcommands:
                visit(sub)

        for entry in reply:
            visit(entry)
        return cls(flags)

    def refused_for_read_only(self, args: list[bytes]) -> bool:
        """True for scripting, and for commands Redis flags ``write`` or ``admin``."""
        name = args[0].upper()
        if name in SCRIPT_COMMANDS:
            return True
        lower = name.decode("utf-8", "replace").lower()
        flags = self._flags.get(lower)
        if len(args) > 1:
            sub = self._flags.get(f"{lower}|{args[1].decode('utf-8', 'replace').lower()}")
            if sub is not None:
                flags = sub
        if flags is None:
            return False  # unknown: Redis will answer "unknown command" itself
        return bool(flags & REFUSED_FLAGS)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
