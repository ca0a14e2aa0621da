"""Table tests for the pure REST protocol functions."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import (
    RedisAuthError,
    RedisCommandError,
    RedisDecodeError,
    RedisNoScriptError,
    RedisResponseError,
    RedisTransactionAborted,
)
from shared.redis.protocol import (
    Reply,
    command_error,
    decode_bytes,
    decode_int,
    decode_status,
    decode_text,
    decode_tree,
    encode_arg,
    encode_body,
    encode_command,
    parse_response,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("v", "v"), (5, 5), (-3, -3), (1.5, "1.5"), (b"bytes", "bytes"), ("é", "é")],
)
def test_encode_arg(arg: object, expected: object) -> None:
    """Arguments become JSON scalars; floats travel as exact text."""
    assert encode_arg(arg) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, None, [1], b"\xff\xfe"])
def test_encode_arg_rejects(bad: object) -> None:
    """Booleans, containers and non-UTF-8 bytes are refused with a ValueError."""
    with pytest.raises(ValueError):
        encode_arg(bad)  # type: ignore[arg-type]


_ARGS = st.lists(
    st.one_of(st.text(), st.integers(), st.floats(), st.binary(), st.booleans()), min_size=1
)


@settings(max_examples=500, derandomize=True)
@given(_ARGS)
def test_encode_command_writes_what_json_dumps_writes(args: list[object]) -> None:
    """The hand-joined command is byte for byte json.dumps' compact, non-ASCII array."""
    try:
        expected: object = json.dumps(
            [encode_arg(a) for a in args], separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except ValueError:
        expected = ValueError
    try:
        got: object = encode_command(args)
    except ValueError:
        got = ValueError
    assert got == expected


def test_encode_body_modes() -> None:
    """Single commands are one array; pipelines an array of arrays."""
    set_cmd = encode_command(["SET", "k", "v", "EX", 10])
    assert json.loads(encode_body([set_cmd], "single")) == ["SET", "k", "v", "EX", 10]
    gets = [encode_command(["GET", "a"]), encode_command(["GET", "é"])]
    assert json.loads(encode_body(gets, "pipeline")) == [["GET", "a"], ["GET", "é"]]
    with pytest.raises(ValueError):
        encode_body(gets, "single")
    with pytest.raises(ValueError):
        encode_command([])


@pytest.mark.parametrize("bad", [True, None, b"\xff", "\ud800", ["x"]])
def test_encode_command_rejects_what_the_wire_cannot_carry(bad: object) -> None:
    """A command with a boolean, a container, non-UTF-8 bytes or a lone surrogate is refused."""
    with pytest.raises(ValueError):
        encode_command(["SET", "k", bad])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b64("hello"), b"hello"),
        ("OK", b"OK"),  # Upstash leaves OK raw
        (b64("OK"), b"OK"),  # emulators encode it
        (None, None),
        (b64("\x00\xff"), "\x00\xff".encode()),
        (5, b"5"),
    ],
)
def test_decode_bytes(raw: object, expected: object) -> None:
    """Base64 strings decode to bytes; the raw OK status is accepted."""
    assert decode_bytes(raw) == expected


def test_decode_text_strict_utf8() -> None:
    """Non-UTF-8 bytes raise an error naming the command, never the value."""
    raw = base64.b64encode(b"\xff\xfesecret").decode()
    with pytest.raises(RedisDecodeError) as info:
        decode_text(raw, "GET")
    assert "GET" in str(info.value) and "secret" not in str(info.value)


def test_decode_status_and_int() -> None:
    """Status replies match raw or encoded; integers pass through or parse from text."""
    assert decode_status("PONG", "PONG") and decode_status(b64("PONG"), "PONG")
    assert not decode_status(b64("nope"), "PONG")
    assert decode_int(7) == 7 and decode_int(b64("12")) == 12


def test_decode_tree_nested() -> None:
    """Nested arrays decode recursively; ints and null are untouched."""
    raw = [b64("0"), [b64("a"), b64("b")], 3, None]
    assert decode_tree(raw, "SCAN", True) == ["0", ["a", "b"], 3, None]
    assert decode_tree(raw, "SCAN", False) == [b"0", [b"a", b"b"], 3, None]


@pytest.mark.parametrize(
    ("text", "code", "cls"),
    [
        (
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "WRONGTYPE",
            RedisCommandError,
        ),
        ("NOSCRIPT No matching script. Please use EVAL.", "NOSCRIPT", RedisNoScriptError),
        ("ERR syntax error", "ERR", RedisCommandError),
        ("something lower case", "ERR", RedisCommandError),
    ],
)
def test_command_error_codes(text: str, code: str, cls: type) -> None:
    """The error code is the first upper-case word; NOSCRIPT has its own type."""
    err = command_error("EVALSHA", text)
    assert type(err) is cls and err.code == code and err.command == "EVALSHA"


def test_command_error_strips_echoed_arguments() -> None:
    """Redis echoes arguments in unknown-command errors; they never reach our message."""
    err = command_error("FOO", "ERR unknown command 'FOO', with args beginning with: 'secret' ")
    assert "secret" not in str(err) and "unknown command" in str(err)


def _body(data: object) -> bytes:
    return json.dumps(data).encode()


def test_parse_single_and_pipeline() -> None:
    """Per-command results and errors keep their place."""
    assert parse_response(200, _body({"result": "T0s="}), "single", 1) == [Reply("T0s=")]
    assert parse_response(400, _body({"error": "ERR x"}), "single", 1) == [Reply(error="ERR x")]
    replies = parse_response(200, _body([{"result": 1}, {"error": "ERR y"}]), "pipeline", 2)
    assert replies == [Reply(1), Reply(error="ERR y")]


@pytest.mark.parametrize(
    ("status", "body", "mode", "exc"),
    [
        (401, {"error": "Unauthorized"}, "single", RedisAuthError),
        (400, {"error": "EXECABORT Transaction discarded"}, "multi", RedisTransactionAborted),
        (502, "<html>bad gateway</html>", "single", RedisResponseError),
        (500, {"error": "redis down"}, "pipeline", RedisResponseError),
        (200, [{"result": 1}], "pipeline", RedisResponseError),  # wrong count
        (200, [5], "pipeline", RedisResponseError),
    ],
)
def test_parse_whole_request_failures(status: int, body: object, mode: str, exc: type) -> None:
    """Auth failures, discarded transactions and unreadable bodies raise for the request."""
    raw = body.encode() if isinstance(body, str) else _body(body)
    with pytest.raises(exc):
        parse_response(status, raw, mode, 2 if mode != "single" else 1)  # type: ignore[arg-type]
