"""Reply parsers: `(raw, decoder, command_name) -> value`, one per reply shape."""

from __future__ import annotations

from typing import Any

from shared.redis.command import Decoder
from shared.redis.protocol import decode_float, decode_int, decode_status, decode_tree


def value(raw: Any, d: Decoder, name: str) -> Any:
    return d.value(raw, name)


def integer(raw: Any, d: Decoder, name: str) -> int:
    return decode_int(raw)


def boolean(raw: Any, d: Decoder, name: str) -> bool:
    return decode_int(raw) == 1


def number(raw: Any, d: Decoder, name: str) -> float:
    return decode_float(raw)


def optional_number(raw: Any, d: Decoder, name: str) -> float | None:
    return None if raw is None else decode_float(raw)


def optional_int(raw: Any, d: Decoder, name: str) -> int | None:
    return None if raw is None else decode_int(raw)


def ok(raw: Any, d: Decoder, name: str) -> bool:
    """`OK` -> True; nil (SET NX lost) -> False."""
    return raw is not None and decode_status(raw, "OK")


def pong(raw: Any, d: Decoder, name: str) -> str:
    return "PONG" if decode_status(raw, "PONG") else str(d.value(raw, name))


def values(raw: Any, d: Decoder, name: str) -> list[Any]:
    return [d.value(item, name) for item in raw or []]


def value_set(raw: Any, d: Decoder, name: str) -> set[Any]:
    return {d.value(item, name) for item in raw or []}


def pairs_dict(raw: Any, d: Decoder, name: str) -> dict[Any, Any]:
    items = raw or []
    return {d.value(items[i], name): d.value(items[i + 1], name) for i in range(0, len(items), 2)}


def scored(raw: Any, d: Decoder, name: str) -> list[tuple[Any, float]]:
    items = raw or []
    return [(d.value(items[i], name), decode_float(items[i + 1])) for i in range(0, len(items), 2)]


def scan_page(raw: Any, d: Decoder, name: str) -> tuple[int, list[Any]]:
    cursor, keys = raw
    return decode_int(cursor), [d.value(k, name) for k in keys]


def time_pair(raw: Any, d: Decoder, name: str) -> tuple[int, int]:
    seconds, micros = raw
    return decode_int(seconds), decode_int(micros)


def tree(raw: Any, d: Decoder, name: str) -> Any:
    return decode_tree(raw, name, d.decode_responses)


def text(raw: Any, d: Decoder, name: str) -> str:
    """A reply that is always text (a SHA, a type name), whatever the decode setting."""
    return str(Decoder(True).value(raw, name))


_TYPE_NAMES = frozenset({"string", "list", "set", "zset", "hash", "stream", "none", "vectorset"})


def type_name(raw: Any, d: Decoder, name: str) -> str:
    """TYPE's status reply, raw (as Upstash may send it) or base64-encoded."""
    if raw in _TYPE_NAMES:
        return str(raw)
    return text(raw, d, name)
