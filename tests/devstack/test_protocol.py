"""Unit tests for the pure wire-format functions of the REST server (no server)."""

from __future__ import annotations

import base64

import pytest
from redis.exceptions import NoScriptError, ResponseError

from devstack.rest.commands import CommandTable, blocked_reason
from devstack.rest.protocol import (
    RequestError,
    command_from_json,
    command_from_path,
    commands_from_json,
    error_text,
    item_to_json,
    reply_to_json,
)


@pytest.mark.parametrize(
    ("raw_path", "body", "expected"),
    [
        ("/get/k", b"", [b"get", b"k"]),
        ("/set/k/v/EX/100", b"", [b"set", b"k", b"v", b"EX", b"100"]),
        ("/set/k%2Fslash/a%20b", b"", [b"set", b"k/slash", b"a b"]),
        ("/set/k?EX=100", b"body", [b"set", b"k", b"body", b"EX", b"100"]),
        ("/set/k/v?NX&_token=secret", b"", [b"set", b"k", b"v", b"NX"]),
        ("/get/k/", b"", [b"get", b"k"]),
        ("/set/k/%FF%00", b"", [b"set", b"k", b"\xff\x00"]),
    ],
)
def test_command_from_path(raw_path: str, body: bytes, expected: list[bytes]) -> None:
    """Path segments are URL-decoded, the body comes next, query args last."""
    assert command_from_path(raw_path, body) == expected


def test_command_from_path_requires_a_command() -> None:
    """An empty path is not a command."""
    with pytest.raises(RequestError, match="expected a command"):
        command_from_path("/?x=1", b"")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["SET", "k", "v", "EX", 100], [b"SET", b"k", b"v", b"EX", b"100"]),
        (["INCRBYFLOAT", "k", 1.5], [b"INCRBYFLOAT", b"k", b"1.5"]),
        (["SET", "k", True], [b"SET", b"k", b"true"]),
        (["SET", "k", "\udcff\udc80"], [b"SET", b"k", b"\xff\x80"]),
    ],
)
def test_command_from_json(value: list[object], expected: list[bytes]) -> None:
    """JSON scalars become their string forms (floats via repr, bools as true/false)."""
    assert command_from_json(value) == expected


@pytest.mark.parametrize(
    "value", [{"a": 1}, "SET", [], ["SET", "k", ["nested"]], ["SET", "k", None]]
)
def test_command_from_json_rejects_malformed(value: object) -> None:
    """Non-arrays, empty arrays and non-scalar arguments are request errors."""
    with pytest.raises(RequestError, match="expected"):
        command_from_json(value)


@pytest.mark.parametrize("value", [[], ["GET", "k"], [["GET", "k"], "x"], {}])
def test_commands_from_json_rejects_malformed(value: object) -> None:
    """A pipeline body must be a non-empty array of arrays."""
    with pytest.raises(RequestError, match="expected"):
        commands_from_json(value)


def test_reply_to_json_plain() -> None:
    """Bytes become strings, ints and None stay, arrays nest."""
    reply = [b"0", [b"k1", b"k2"], 3, None]
    assert reply_to_json(reply, base64_encoding=False) == ["0", ["k1", "k2"], 3, None]


def test_reply_to_json_non_utf8_is_lossless() -> None:
    """Undecodable bytes map to lone surrogates that encode back to the same bytes."""
    text = reply_to_json(b"a\xff\x00", base64_encoding=False)
    assert text.encode("utf-8", "surrogateescape") == b"a\xff\x00"


def test_reply_to_json_base64() -> None:
    """With base64 every string is encoded (nested too) except OK; ints/None untouched."""
    reply = [b"OK", b"hello", [b"\xff", 7, None]]
    assert reply_to_json(reply, base64_encoding=True) == [
        "OK",
        base64.b64encode(b"hello").decode(),
        ["/w==", 7, None],
    ]


def test_errors_keep_their_code() -> None:
    """redis-py strips known error codes; the JSON error text has them back."""
    assert error_text(NoScriptError("No matching script.", status_code="NOSCRIPT")) == (
        "NOSCRIPT No matching script."
    )
    assert error_text(ResponseError("WRONGTYPE Operation")) == "WRONGTYPE Operation"
    assert item_to_json(ResponseError("boom", status_code="ERR"), base64_encoding=True) == {
        "error": "ERR boom"
    }


@pytest.mark.parametrize(
    ("args", "blocked"),
    [
        ([b"blpop", b"k", b"0"], True),
        ([b"SUBSCRIBE", b"c"], True),
        ([b"select", b"1"], True),
        ([b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"], True),
        ([b"XREAD", b"STREAMS", b"s", b"0"], False),
        ([b"PING"], False),
        ([b"ECHO", b"x"], False),
    ],
)
def test_blocked_commands(args: list[bytes], blocked: bool) -> None:
    """Blocking, pub/sub and connection commands (but PING/ECHO) are refused."""
    assert (blocked_reason(args) is not None) is blocked


def test_command_table_read_only() -> None:
    """Write/admin flags, subcommand flags and every script command are refused."""
    reply = [
        [b"get", 2, [b"readonly"], 1, 1, 1],
        [b"set", -3, [b"write"], 1, 1, 1],
        [
            b"config",
            -2,
            [],
            0,
            0,
            0,
            [],
            [],
            [],
            [[b"config|get", -3, [b"admin"], 0, 0, 0]],
        ],
    ]
    table = CommandTable.from_command_reply(reply)
    assert not table.refused_for_read_only([b"GET", b"k"])
    assert table.refused_for_read_only([b"SET", b"k", b"v"])
    assert table.refused_for_read_only([b"CONFIG", b"GET", b"x"])
    assert table.refused_for_read_only([b"EVAL", b"return 1", b"0"])
