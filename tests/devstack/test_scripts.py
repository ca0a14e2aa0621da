"""Unit tests for the allow-key-locking shebang rewrite and the SHA mapping."""

from __future__ import annotations

import hashlib

import pytest

from devstack.rest.scripts import ScriptRegistry, rewrite_shebang, sha1_hex

BODY = b"\nreturn redis.call('GET', KEYS[1])"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (b"#!lua flags=allow-key-locking" + BODY, BODY),
        (b"#!lua flags=allow-key-locking,no-writes" + BODY, b"#!lua flags=no-writes" + BODY),
        (b"#!lua flags=no-writes,allow-key-locking" + BODY, b"#!lua flags=no-writes" + BODY),
        (b"#!lua flags=no-writes" + BODY, b"#!lua flags=no-writes" + BODY),
        (b"return 1", b"return 1"),
        (b"#!lua flags=allow-key-locking", b""),
    ],
)
def test_rewrite_shebang(script: bytes, expected: bytes) -> None:
    """Only the Upstash-only flag goes; an emptied shebang becomes an empty line."""
    assert rewrite_shebang(script) == expected
    assert script.count(b"\n") == rewrite_shebang(script).count(b"\n")


def test_registry_maps_original_sha_for_evalsha() -> None:
    """After EVAL of the original, EVALSHA with the original SHA is sent as the new SHA."""
    registry = ScriptRegistry()
    script = b"#!lua flags=allow-key-locking" + BODY
    original = hashlib.sha1(script).hexdigest()
    sent = registry.prepare([b"EVAL", script, b"1", b"k"])
    assert sent.args == [b"EVAL", BODY, b"1", b"k"]
    evalsha = registry.prepare([b"evalsha", original.upper().encode(), b"1", b"k"])
    assert evalsha.args[1] == sha1_hex(BODY).encode()


def test_registry_script_load_returns_original_sha() -> None:
    """SCRIPT LOAD sends the rewritten text but reports the original's SHA."""
    registry = ScriptRegistry()
    script = b"#!lua flags=allow-key-locking" + BODY
    prepared = registry.prepare([b"SCRIPT", b"LOAD", script])
    assert prepared.args[2] == BODY
    assert prepared.fix_reply is not None
    reply = prepared.fix_reply(sha1_hex(BODY).encode())
    assert reply == hashlib.sha1(script).hexdigest().encode()


def test_registry_leaves_unknown_sha_alone() -> None:
    """An unknown SHA passes through so Redis answers NOSCRIPT itself."""
    registry = ScriptRegistry()
    assert registry.prepare([b"EVALSHA", b"ab" * 20, b"0"]).args[1] == b"ab" * 20
