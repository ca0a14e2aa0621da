"""The HS256 JWT that QStash puts in `Upstash-Signature`: pure helpers, standard library only.

    token = sign_jwt(delivery_claims(url, body, now=time.time(), jwt_id="j1"), signing_key)

The key is the UTF-8 bytes of the signing key string as given (`sig_...`), never
base64-decoded. The devstack's QStash server and the tests sign with these; the
`Receiver` verifies with them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping

ISSUER = "Upstash"
DEFAULT_TTL_SECONDS = 300
_HEADER = {"alg": "HS256", "typ": "JWT"}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (the JWT alphabet)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding; `ValueError` on any other character or length."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if b64url_encode(data) != text:  # non-zero trailing bits: a second spelling of the same bytes
        raise ValueError("not canonical base64url")
    return data


def body_hash(body: bytes) -> str:
    """The `body` claim: base64url(SHA-256(raw body)) without padding."""
    return b64url_encode(hashlib.sha256(body).digest())


def hs256(key: str, signing_input: bytes) -> str:
    """The base64url HMAC-SHA256 of `signing_input` keyed with the UTF-8 bytes of `key`."""
    return b64url_encode(hmac.new(key.encode("utf-8"), signing_input, hashlib.sha256).digest())


def _segment(value: Mapping[str, object]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def sign_jwt(
    claims: Mapping[str, object], key: str, *, header: Mapping[str, object] | None = None
) -> str:
    """A compact JWS `header.payload.signature` signed with HS256 over the first two parts.

    `header` exists so tests can forge tokens with another `alg`; the signature is
    always HS256 whatever it says.
    """
    signing_input = f"{_segment(header or _HEADER)}.{_segment(claims)}"
    return f"{signing_input}.{hs256(key, signing_input.encode('ascii'))}"


def delivery_claims(
    url: str,
    body: bytes,
    *,
    now: float,
    jwt_id: str,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> dict[str, object]:
    """The claims QStash signs for one delivery of `body` to `url` at `now` (unix seconds)."""
    issued = int(now)
    return {
        "iss": ISSUER,
        "sub": url,
        "exp": issued + ttl_seconds,
        "nbf": issued,
        "iat": issued,
        "jti": jwt_id,
        "body": body_hash(body),
    }
