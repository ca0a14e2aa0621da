"""Verifying the `Upstash-Signature` of a request QStash delivered, standard library only.

    receiver = Receiver.from_env(env)          # QSTASH_CURRENT_SIGNING_KEY / _NEXT_SIGNING_KEY
    claims = receiver.verify(
        request.headers["upstash-signature"],
        raw_body,                               # the bytes as received, never a re-serialized parse
        url="https://app.example.com/api/jobs/send-confirmation",   # your public URL
    )

Checks, in order: at most `MAX_TOKEN_CHARS` ASCII characters in three non-empty,
strict base64url segments; the HMAC-SHA256 over the raw `header.payload` bytes with
the current key, then the next key (rotation), compared in constant time, before
any JSON is decoded (a forged token is never parsed); header `alg` is exactly
HS256 (`none`, HS512... never verify: the MAC is always HS256 and the header it
covers must say so); `iss == "Upstash"`;
`sub` equals the configured public URL (not `request.url`, which proxies
rewrite); integer `exp`/`nbf` (and `iat` when present) within `clock_tolerance`;
the `body` claim equals base64url(SHA-256(body)), padding-insensitive. Any
failure raises `SignatureError` whose `reason` names the check, never a key.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

from shared.config import check_token
from shared.errors import ConfigError, SignatureError
from shared.qstash.signing import ISSUER, b64url_decode, body_hash, hs256

MAX_TOKEN_CHARS = 4096  # QStash's tokens are a few hundred characters; longer is not theirs
CURRENT_KEY_VAR = "QSTASH_CURRENT_SIGNING_KEY"
NEXT_KEY_VAR = "QSTASH_NEXT_SIGNING_KEY"
# Answer a delivery with 489 and this header and QStash stops retrying it (it goes to the DLQ).
NON_RETRYABLE: Mapping[str, str] = {"upstash-nonretryable-error": "true"}
_ALLOWED_HEADER_KEYS = frozenset({"alg", "typ", "kid"})


@dataclass(frozen=True, slots=True)
class SignatureClaims:
    """The verified claims of one delivery; `jwt_id` is unique per delivery attempt."""

    issuer: str
    subject: str
    expires_at: int
    not_before: int
    issued_at: int | None
    jwt_id: str | None
    body_hash: str


def _decode_segment(segment: str, what: str) -> bytes:
    try:
        return b64url_decode(segment)
    except ValueError:
        raise SignatureError(f"{what} is not valid base64url") from None


def _json_object(raw: bytes, what: str) -> dict[str, object]:
    """Only ever called on authenticated bytes (after the HMAC check)."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SignatureError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise SignatureError(f"{what} is not a JSON object")
    return value


def _check_header(header: Mapping[str, object]) -> None:
    if header.get("alg") != "HS256":
        raise SignatureError("header alg is not HS256")
    if "typ" in header and header["typ"] != "JWT":
        raise SignatureError("header typ is not JWT")
    if "kid" in header and not isinstance(header["kid"], str):
        raise SignatureError("header kid is not a string")
    if not _ALLOWED_HEADER_KEYS.issuperset(header):
        raise SignatureError("header has unsupported parameters")


def _int_claim(claims: Mapping[str, object], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignatureError(f"claim {name} is not an integer")
    return value


def _required_int(claims: Mapping[str, object], name: str) -> int:
    value = _int_claim(claims, name)
    if value is None:
        raise SignatureError(f"claim {name} is missing")
    return value


def _str_claim(claims: Mapping[str, object], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise SignatureError(f"claim {name} is missing")
    if not isinstance(value, str):
        raise SignatureError(f"claim {name} is not a string")
    return value


def _check_claims(
    claims: Mapping[str, object], body: bytes, url: str, now: float, tolerance: float
) -> SignatureClaims:
    issuer = _str_claim(claims, "iss")
    if issuer != ISSUER:
        raise SignatureError("issuer is not Upstash")
    subject = _str_claim(claims, "sub")
    # surrogatepass: a lone surrogate in a claim is a mismatch, not a UnicodeEncodeError
    if not hmac.compare_digest(subject.encode("utf-8", "surrogatepass"), url.encode("utf-8")):
        raise SignatureError("subject does not match the configured URL")
    if claims.get("aud") is not None:
        raise SignatureError("unexpected audience claim")
    expires_at = _required_int(claims, "exp")
    not_before = _required_int(claims, "nbf")
    issued_at = _int_claim(claims, "iat")
    if expires_at <= now - tolerance:
        raise SignatureError("token has expired")
    if not_before > now + tolerance:
        raise SignatureError("token is not yet valid (nbf)")
    if issued_at is not None and issued_at > now + tolerance:
        raise SignatureError("token is not yet valid (iat)")
    jwt_id = claims.get("jti")
    if jwt_id is not None and not isinstance(jwt_id, str):
        raise SignatureError("claim jti is not a string")
    claimed = _str_claim(claims, "body").rstrip("=")
    expected = body_hash(body)
    if not hmac.compare_digest(claimed.encode("utf-8", "surrogatepass"), expected.encode("ascii")):
        raise SignatureError("body hash does not match the body")
    return SignatureClaims(issuer, subject, expires_at, not_before, issued_at, jwt_id, expected)


class Receiver:
    """Verifies `Upstash-Signature` tokens with the current and the next signing key."""

    def __init__(self, current_signing_key: str, next_signing_key: str) -> None:
        self._keys = (
            check_token("current_signing_key", current_signing_key),
            check_token("next_signing_key", next_signing_key),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Receiver:
        """Reads `QSTASH_CURRENT_SIGNING_KEY` and `QSTASH_NEXT_SIGNING_KEY` (else `ConfigError`)."""
        keys = []
        for name in (CURRENT_KEY_VAR, NEXT_KEY_VAR):
            value = env.get(name)
            if value is None or not str(value).strip():
                raise ConfigError(name, "is not set")
            keys.append(check_token(name, str(value)))
        return cls(keys[0], keys[1])

    def __repr__(self) -> str:  # never show the keys
        return "Receiver(current_signing_key=<redacted>, next_signing_key=<redacted>)"

    def verify(
        self,
        signature: str | None,
        body: bytes,
        *,
        url: str,
        now: float | None = None,
        clock_tolerance: float = 0.0,
    ) -> SignatureClaims:
        """The verified claims, or `SignatureError(reason)` naming the first failed check.

        `body` must be the raw request bytes; `url` the public URL QStash was told to call.
        """
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("body must be the raw request bytes, not a decoded string")
        if clock_tolerance < 0:
            raise ValueError("clock_tolerance must be >= 0 seconds")
        if not signature:
            raise SignatureError("signature is missing")
        if not signature.isascii():
            raise SignatureError("token is not ASCII")
        if len(signature) > MAX_TOKEN_CHARS:
            raise SignatureError(f"token is longer than {MAX_TOKEN_CHARS} characters")
        parts = signature.split(".")
        if len(parts) != 3:
            raise SignatureError("token does not have three segments")
        header_b64, payload_b64, signature_b64 = parts
        if not header_b64 or not payload_b64:
            raise SignatureError("token has an empty segment")
        if not signature_b64:
            raise SignatureError("token has an empty segment (signature)")
        header_raw = _decode_segment(header_b64, "header")
        payload_raw = _decode_segment(payload_b64, "payload")
        # The MAC over the raw segments first: nothing unauthenticated is ever JSON-decoded.
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        presented = signature_b64.encode("ascii")
        if not any(
            hmac.compare_digest(hs256(key, signing_input).encode("ascii"), presented)
            for key in self._keys
        ):
            raise SignatureError("signature does not match the current or next signing key")
        _check_header(_json_object(header_raw, "header"))
        claims = _json_object(payload_raw, "payload")
        when = time.time() if now is None else now
        return _check_claims(claims, bytes(body), url, when, clock_tolerance)
