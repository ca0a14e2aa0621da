"""The receiver under hostile tokens: nothing unauthenticated is parsed, sizes are bounded,
and every malformed token (hypothesis-generated, fixed seed) is a SignatureError."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from shared.errors import SignatureError
from shared.qstash import Receiver
from shared.qstash.receiver import MAX_TOKEN_CHARS
from shared.qstash.signing import b64url_encode, delivery_claims, sign_jwt

CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
URL = "https://app.example.com/api/jobs/send-confirmation"
BODY = b'{"orderId":"ord_x"}'
NOW = 1_750_000_000
receiver = Receiver(CURRENT, NEXT)
FUZZ = settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def signed(header_b64: str, payload_b64: str, key: str = CURRENT) -> str:
    mac = hmac.new(key.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    return f"{header_b64}.{payload_b64}.{b64url_encode(mac)}"


GOOD_PAYLOAD = b64url_encode(json.dumps(delivery_claims(URL, BODY, now=NOW, jwt_id="j")).encode())
GOOD_HEADER = b64url_encode(b'{"alg":"HS256","typ":"JWT"}')


def test_forged_deeply_nested_header_is_a_signature_error() -> None:
    """A forged token whose header is 2,000 nested arrays fails the HMAC, never recursing."""
    nested = b64url_encode(b"[" * 2000)
    assert len(nested) < MAX_TOKEN_CHARS
    with pytest.raises(SignatureError, match="signature does not match"):
        receiver.verify(f"{nested}.{GOOD_PAYLOAD}.AAAA", BODY, url=URL, now=NOW)


def test_forged_deeply_nested_payload_is_a_signature_error() -> None:
    """The same for a deeply nested payload."""
    nested = b64url_encode(b'{"a":' * 600)
    with pytest.raises(SignatureError, match="signature does not match"):
        receiver.verify(f"{GOOD_HEADER}.{nested}.AAAA", BODY, url=URL, now=NOW)


def test_signed_deeply_nested_segments_are_signature_errors() -> None:
    """Even correctly signed, a header or payload nested past the parser's limit is a
    SignatureError (not JSON), never a RecursionError."""
    nested = b64url_encode(b"[" * 2000)  # deep enough for RecursionError in json.loads
    for token in (signed(nested, GOOD_PAYLOAD), signed(GOOD_HEADER, nested)):
        with pytest.raises(SignatureError, match="is not JSON"):
            receiver.verify(token, BODY, url=URL, now=NOW)


def test_oversized_token_is_refused_before_decoding() -> None:
    """A token longer than MAX_TOKEN_CHARS is refused by length, even if validly signed."""
    claims = delivery_claims(URL, BODY, now=NOW, jwt_id="j" * MAX_TOKEN_CHARS)
    token = sign_jwt(claims, CURRENT)
    with pytest.raises(SignatureError, match="longer than"):
        receiver.verify(token, BODY, url=URL, now=NOW)


def test_a_lone_surrogate_in_a_signed_claim_is_a_signature_error() -> None:
    """A signed subject with a lone surrogate is a mismatch, not a UnicodeEncodeError."""
    claims = delivery_claims(URL, BODY, now=NOW, jwt_id="j")
    payload = json.dumps(claims).replace(URL, "\\ud800").encode()
    with pytest.raises(SignatureError, match="subject"):
        receiver.verify(signed(GOOD_HEADER, b64url_encode(payload)), BODY, url=URL, now=NOW)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_claim_values = st.one_of(_json, st.just(URL), st.just(NOW), st.just("Upstash"))
_claims = st.dictionaries(
    st.sampled_from(["iss", "sub", "exp", "nbf", "iat", "jti", "body", "aud", "x"]),
    _claim_values,
)
_segment_bytes = st.one_of(
    st.binary(max_size=300),
    _json.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n),
)
_segment = st.one_of(
    _segment_bytes.map(b64url_encode), st.text(max_size=40), st.just(""), st.just(GOOD_HEADER)
)


def _verify_only_signature_errors(token: str) -> None:
    """Returns on success or SignatureError; any other exception fails the test."""
    with contextlib.suppress(SignatureError):
        receiver.verify(token, BODY, url=URL, now=NOW)


@seed(20261204)
@FUZZ
@given(st.text(max_size=600))
def test_fuzz_arbitrary_text_tokens(token: str) -> None:
    """Any text is rejected with SignatureError and nothing else."""
    _verify_only_signature_errors(token)


@seed(20261204)
@FUZZ
@given(_segment, _segment, _segment)
def test_fuzz_three_segment_tokens(header: str, payload: str, mac: str) -> None:
    """Forged three-segment tokens of arbitrary (nested, binary, JSON) parts only raise
    SignatureError."""
    _verify_only_signature_errors(f"{header}.{payload}.{mac}")


@seed(20261204)
@FUZZ
@given(
    st.one_of(
        _segment_bytes,
        st.dictionaries(st.sampled_from(["alg", "typ", "kid"]), _json).map(
            lambda h: json.dumps({"alg": "HS256", **h}).encode()
        ),
    ),
    st.one_of(_segment_bytes, _claims.map(lambda c: json.dumps(c).encode())),
    st.sampled_from([CURRENT, NEXT]),
)
def test_fuzz_correctly_signed_tokens(header: bytes, payload: bytes, key: str) -> None:
    """Tokens signed with a real key but with arbitrary header/claims either verify or raise
    SignatureError; nothing else escapes."""
    _verify_only_signature_errors(signed(b64url_encode(header), b64url_encode(payload), key))
