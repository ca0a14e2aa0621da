"""The Upstash Redis REST wire protocol as pure functions of data (no I/O, no clock).

Requests: a JSON array per command, `[["SET", "k", "v"], ...]` for pipelines.
Replies: `{"result": ...}` or `{"error": "..."}` per command; with the
`Upstash-Encoding: base64` header every string in a result is base64, except
that Upstash leaves the status reply `OK` raw (the local emulators encode it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_string  # what json.dumps quotes with
from typing import Any, Literal

from shared.errors import (
    RedisAuthError,
    RedisCommandError,
    RedisDecodeError,
    RedisNoScriptError,
    RedisResponseError,
    RedisTransactionAborted,
)

Arg = str | bytes | int | float
Mode = Literal["single", "pipeline", "multi"]

PATHS: dict[Mode, str] = {"single": "", "pipeline": "/pipeline", "multi": "/multi-exec"}

# Redis echoes arguments in some errors ("... with args beginning with: 'v'"): cut them.
_ARGS_ECHO = re.compile(r",? with args beginning with:.*$", re.DOTALL)


def encode_arg(arg: Arg) -> str | int:
    """One command argument as a JSON scalar; floats go as text so no precision is lost."""
    kind = type(arg)
    if kind is str or kind is int:  # nearly every argument: one check, not four
        return arg  # type: ignore[return-value]
    if isinstance(arg, bool):
        raise ValueError("booleans are not Redis values; pass 1/0 or a string")
    if isinstance(arg, str | int):
        return arg
    if isinstance(arg, float):
        if arg != arg or arg in (float("inf"), float("-inf")):
            return "nan" if arg != arg else ("+inf" if arg > 0 else "-inf")
        return repr(arg)
    if isinstance(arg, bytes | bytearray | memoryview):
        try:
            return bytes(arg).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                "binary argument is not valid UTF-8 and cannot travel in the JSON body"
            ) from None
    raise ValueError(f"unsupported Redis argument type {type(arg).__name__}")


def encode_command(args: Sequence[Arg]) -> bytes:
    """One command as its JSON array, encoded when the command is built so that an
    argument the wire cannot carry raises `ValueError` for its own caller only."""
    if not args:
        raise ValueError("a command needs at least its name")
    # What `json.dumps(..., separators=(",", ":"), ensure_ascii=False)` writes for an array of
    # strings and integers, without building an encoder per call.
    parts = [
        _json_string(value) if isinstance(value, str) else int.__repr__(value)
        for value in map(encode_arg, args)
    ]
    text = "[" + ",".join(parts) + "]"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "string argument is not valid Unicode (lone surrogate) and cannot travel as UTF-8"
        ) from None


def encode_body(commands: Sequence[bytes], mode: Mode) -> bytes:
    """The request body from encoded commands: one (`single`) or an array (`pipeline`,
    `multi`). Joining cannot fail: every command was checked by `encode_command`."""
    if mode == "single":
        if len(commands) != 1:
            raise ValueError("single mode sends exactly one command")
        return commands[0]
    return b"[" + b",".join(commands) + b"]"


def command_name(args: Sequence[Arg]) -> str:
    """The command's name for messages: never its arguments (they may be secrets)."""
    first = args[0] if args else "?"
    name = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
    return name.upper()[:32]


def command_error(command: str, text: str) -> RedisCommandError:
    """Turns a Redis error string into a typed error; `code` is its first upper-case word."""
    clean = _ARGS_ECHO.sub("", text).strip()
    first = clean.split(" ", 1)[0]
    code = first if first.isupper() and first.isalpha() else "ERR"
    cls = RedisNoScriptError if code == "NOSCRIPT" else RedisCommandError
    return cls(command, code, clean)


@dataclass(frozen=True, slots=True)
class Reply:
    """One command's outcome: `error` is set when Redis refused it, else `result` holds it."""

    result: Any = None
    error: str | None = None


def _load_json(status: int, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        snippet = "empty body" if not body else "non-JSON body"
        raise RedisResponseError(status, f"unexpected {snippet} from the REST API") from None


def _reply(item: Any, status: int) -> Reply:
    if not isinstance(item, dict):
        raise RedisResponseError(status, "reply item is not a JSON object")
    if "error" in item and item["error"] is not None:
        return Reply(error=str(item["error"]))
    if "result" not in item:
        raise RedisResponseError(status, "reply item has neither result nor error")
    return Reply(result=item["result"])


def parse_response(status: int, body: bytes, mode: Mode, count: int) -> list[Reply]:
    """Reads an HTTP answer into one `Reply` per command, or raises for the whole request."""
    data = _load_json(status, body)
    message = data.get("error") if isinstance(data, dict) else None
    if status in (401, 403):
        raise RedisAuthError(status, str(message or "unauthorized"))
    if mode == "multi" and isinstance(data, dict) and message is not None and status < 500:
        raise RedisTransactionAborted(_ARGS_ECHO.sub("", str(message)))
    if status >= 500 or (status != 200 and message is None):
        raise RedisResponseError(status, str(message or "unexpected status"))
    if mode == "single":
        return [_reply(data, status)]
    if isinstance(data, dict) and message is not None:
        # A pipeline refused as a whole (malformed request): every command failed alike.
        return [Reply(error=str(message))] * count
    if not isinstance(data, list) or len(data) != count:
        raise RedisResponseError(status, f"expected {count} replies in an array")
    return [_reply(item, status) for item in data]


# --- decoding base64-encoded results ---------------------------------------------------


def decode_bytes(raw: Any) -> bytes | None:
    """A base64 string (or Upstash's raw `OK`) to bytes; None stays None."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            # Upstash leaves status replies raw; they are never valid padded base64.
            return raw.encode("utf-8")
    if isinstance(raw, int | float):
        return str(raw).encode()
    raise RedisResponseError(200, f"expected a string reply, got {type(raw).__name__}")


def decode_text(raw: Any, command: str) -> str | None:
    data = decode_bytes(raw)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RedisDecodeError(command) from None


def decode_status(raw: Any, expected: str) -> bool:
    """True when a status reply (`OK`, `PONG`) arrived raw or encoded."""
    if raw == expected:
        return True
    return decode_bytes(raw) == expected.encode()


def decode_int(raw: Any) -> int:
    if isinstance(raw, bool) or raw is None:
        raise RedisResponseError(200, "expected an integer reply")
    if isinstance(raw, int):
        return raw
    data = decode_bytes(raw)
    if data is None:
        raise RedisResponseError(200, "expected an integer reply")
    return int(data)


def decode_float(raw: Any) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    data = decode_bytes(raw)
    if data is None:
        raise RedisResponseError(200, "expected a number reply")
    return float(data)


def decode_tree(raw: Any, command: str, decode: bool) -> Any:
    """Decodes a nested result (EVAL, raw `execute`): strings to str/bytes, ints kept."""
    if type(raw) is int or raw is None or isinstance(raw, bool | int | float):
        return raw
    if isinstance(raw, list):
        return [decode_tree(item, command, decode) for item in raw]
    if isinstance(raw, dict):
        return {k: decode_tree(v, command, decode) for k, v in raw.items()}
    return decode_text(raw, command) if decode else decode_bytes(raw)
