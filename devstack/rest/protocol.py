"""The Upstash Redis REST wire format as pure functions of data.

Requests: a JSON array (one command), an array of arrays (pipeline, multi-exec) or a
path-style URL (``/set/k/v?EX=100``) whose segments are the arguments. Replies: raw
RESP values (bytes, int, None, nested lists, nested ``ResponseError``) turned into
JSON values, optionally base64-encoded.

Non-UTF-8 bulk strings without ``Upstash-Encoding: base64`` are decoded with
``surrogateescape``: each undecodable byte becomes a lone surrogate (``\\udcXX`` in
the JSON text), so a Python client gets the exact bytes back with
``s.encode("utf-8", "surrogateescape")``. JSON string arguments are encoded the
inverse way, so such a string round-trips. With base64, every string is encoded
except the bytes ``OK`` (left raw like Upstash does; ``OK`` is never valid padded
base64, so a decoder can tell). Other status replies (``PONG``, ``QUEUED``...) are
encoded like bulk strings because RESP2 parsing does not tell them apart.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

from redis.exceptions import RedisError

JSONValue = Any


class RequestError(ValueError):
    """A malformed request: answered with HTTP 400 and ``{"error": message}``."""


def encode_arg(value: object) -> bytes:
    """One JSON scalar as the bytes Redis receives (bool before int: bool is an int)."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass")
    raise RequestError(
        "ERR expected each command argument to be a JSON string, number or boolean, "
        f"got {type(value).__name__}"
    )


def command_from_json(value: object) -> list[bytes]:
    """Validate one command (a non-empty JSON array of scalars) and encode it."""
    if not isinstance(value, list):
        raise RequestError(
            'ERR expected a JSON array of command and arguments, e.g. ["SET","k","v"]'
        )
    if not value:
        raise RequestError("ERR expected a non-empty JSON array (the command first)")
    return [encode_arg(item) for item in value]


def commands_from_json(value: object) -> list[list[bytes]]:
    """Validate a pipeline / multi-exec body: a non-empty array of command arrays."""
    if not isinstance(value, list) or not value:
        raise RequestError(
            'ERR expected a non-empty JSON array of commands, e.g. [["SET","k","v"],["GET","k"]]'
        )
    if not all(isinstance(item, list) for item in value):
        raise RequestError("ERR expected every pipeline item to be a JSON array (one command)")
    return [command_from_json(item) for item in value]


def command_from_path(raw_path: str, body: bytes) -> list[bytes]:
    """Arguments of a path-style request: URL-decoded segments, raw body, query args.

    ``raw_path`` is the undecoded request target (path plus optional query). The body,
    when non-empty, is appended after the path segments; query parameters other than
    ``_token`` come last, ``?EX=100`` giving ``EX 100`` and a bare ``?NX`` giving ``NX``.
    """
    path, _, query = raw_path.partition("?")
    path = path.removeprefix("/").removesuffix("/")
    if not path:
        raise RequestError("ERR expected a command in the path, e.g. /get/key")
    args = [unquote_to_bytes(segment) for segment in path.split("/")]
    if body:
        args.append(body)
    for item in query.split("&") if query else ():
        if not item:
            continue
        name, has_value, value = item.partition("=")
        name_bytes = unquote_to_bytes(name.replace("+", " "))
        if name_bytes == b"_token":
            continue
        args.append(name_bytes)
        if has_value:
            args.append(unquote_to_bytes(value.replace("+", " ")))
    return args


def error_text(exc: RedisError) -> str:
    """The error exactly as Redis sent it: redis-py strips known codes, put them back."""
    message = str(exc)
    code = getattr(exc, "status_code", None)
    return f"{code} {message}" if code else message


def reply_to_json(reply: object, *, base64_encoding: bool) -> JSONValue:
    """A raw RESP reply as a JSON value (see the module docstring for strings)."""
    if reply is None or isinstance(reply, bool | int):
        return reply
    if isinstance(reply, bytes):
        if base64_encoding and reply != b"OK":
            return base64.b64encode(reply).decode("ascii")
        return reply.decode("utf-8", "surrogateescape")
    if isinstance(reply, str):
        if base64_encoding and reply != "OK":
            return base64.b64encode(reply.encode("utf-8", "surrogateescape")).decode("ascii")
        return reply
    if isinstance(reply, float):
        return repr(reply)
    if isinstance(reply, RedisError):
        return error_text(reply)
    if isinstance(reply, Sequence):
        return [reply_to_json(item, base64_encoding=base64_encoding) for item in reply]
    if isinstance(reply, dict):
        flat: list[object] = []
        for key, value in reply.items():
            flat.extend((key, value))
        return reply_to_json(flat, base64_encoding=base64_encoding)
    return str(reply)


def item_to_json(reply: object, *, base64_encoding: bool) -> dict[str, JSONValue]:
    """One pipeline / multi-exec entry: ``{"result": ...}`` or ``{"error": "..."}``."""
    if isinstance(reply, RedisError):
        return {"error": error_text(reply)}
    return {"result": reply_to_json(reply, base64_encoding=base64_encoding)}
