"""The stdlib receiver: forged tokens, key rotation, and a cross-check with the SDK's Receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
import qstash as official

from shared.errors import ConfigError, SignatureError
from shared.qstash import Receiver
from shared.qstash.signing import b64url_decode, b64url_encode, body_hash, delivery_claims, sign_jwt

CURRENT = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
OTHER = "sig_notTheRightKeyAtAll000000000"
URL = "https://app.example.com/api/jobs/send-confirmation"
BODY = b'{"orderId":42,"email":"a@example.com"}'
NOW = 1_750_000_000

receiver = Receiver(CURRENT, NEXT)


def claims(**overrides: object) -> dict[str, object]:
    base = delivery_claims(URL, BODY, now=NOW, jwt_id="jwt_1")
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def without(name: str) -> dict[str, object]:
    base = claims()
    del base[name]
    return base


def raw_token(header: object, payload: object, key: str = CURRENT) -> str:
    """A token with arbitrary JSON header/payload, HMAC-SHA256 signed whatever `alg` says."""
    h = b64url_encode(json.dumps(header).encode())
    p = b64url_encode(json.dumps(payload).encode())
    mac = hmac.new(key.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url_encode(mac)}"


def hs512(payload: dict[str, object]) -> str:
    h = b64url_encode(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    p = b64url_encode(json.dumps(payload).encode())
    mac = hmac.new(CURRENT.encode(), f"{h}.{p}".encode(), hashlib.sha512).digest()
    return f"{h}.{p}.{b64url_encode(mac)}"


def alg_none(payload: dict[str, object]) -> str:
    h = b64url_encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{h}.{b64url_encode(json.dumps(payload).encode())}."


def tamper_payload(token: str, **changes: object) -> str:
    h, p, s = token.split(".")
    payload = json.loads(b64url_decode(p))
    payload.update(changes)
    return f"{h}.{b64url_encode(json.dumps(payload).encode())}.{s}"


def _signed(header_b64: str, payload_b64: str, key: str = CURRENT) -> str:
    mac = hmac.new(key.encode(), f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    return f"{header_b64}.{payload_b64}.{b64url_encode(mac)}"


GOOD = sign_jwt(claims(), CURRENT)

# (name, token, expected reason fragment)
FORGERIES: list[tuple[str, str, str]] = [
    ("wrong key", sign_jwt(claims(), OTHER), "signature does not match"),
    ("tampered claims (sub)", tamper_payload(GOOD, sub="https://evil.example/x"), "signature"),
    ("tampered claims (exp)", tamper_payload(GOOD, exp=NOW + 10**6), "signature"),
    ("alg none (unsigned)", alg_none(claims()), "empty segment"),
    ("alg none with a signature", raw_token({"alg": "none"}, claims()), "alg"),
    ("HS512", hs512(claims()), "signature does not match"),
    ("HS384 header, HS256 mac", raw_token({"alg": "HS384", "typ": "JWT"}, claims()), "alg"),
    ("alg lower-case", raw_token({"alg": "hs256", "typ": "JWT"}, claims()), "alg"),
    ("missing sub", sign_jwt(without("sub"), CURRENT), "claim sub is missing"),
    ("missing exp", sign_jwt(without("exp"), CURRENT), "claim exp is missing"),
    ("missing nbf", sign_jwt(without("nbf"), CURRENT), "claim nbf is missing"),
    ("missing iss", sign_jwt(without("iss"), CURRENT), "claim iss is missing"),
    ("missing body", sign_jwt(without("body"), CURRENT), "claim body is missing"),
    ("expired", sign_jwt(claims(exp=NOW - 1), CURRENT), "expired"),
    ("expires exactly now", sign_jwt(claims(exp=NOW), CURRENT), "expired"),
    ("not yet valid", sign_jwt(claims(nbf=NOW + 60), CURRENT), "not yet valid (nbf)"),
    ("issued in the future", sign_jwt(claims(iat=NOW + 60), CURRENT), "not yet valid (iat)"),
    ("wrong issuer", sign_jwt(claims(iss="Upstash2"), CURRENT), "issuer"),
    ("wrong subject", sign_jwt(claims(sub=URL + "/other"), CURRENT), "subject"),
    ("subject with trailing slash", sign_jwt(claims(sub=URL + "/"), CURRENT), "subject"),
    ("body hash of another body", sign_jwt(claims(body=body_hash(b"{}")), CURRENT), "body hash"),
    ("exp as a string", sign_jwt(claims(exp=str(NOW + 300)), CURRENT), "exp is not an integer"),
    ("exp as a float", sign_jwt(claims(exp=NOW + 300.5), CURRENT), "exp is not an integer"),
    ("sub not a string", sign_jwt(claims(sub=["x"]), CURRENT), "sub is not a string"),
    ("jti not a string", sign_jwt(claims(jti=7), CURRENT), "jti"),
    ("audience present", sign_jwt(claims(aud="someone"), CURRENT), "audience"),
    ("truncated", GOOD[: len(GOOD) - 10], "signature"),
    ("truncated to two segments", GOOD.rsplit(".", 1)[0], "three segments"),
    ("extra segment", GOOD + ".AAAA", "three segments"),
    ("empty header", "." + GOOD.split(".", 1)[1], "empty segment"),
    ("empty signature", GOOD.rsplit(".", 1)[0] + ".", "empty segment"),
    ("bad base64 in header", "!!!." + GOOD.split(".", 1)[1], "header is not valid base64url"),
    ("padded signature", GOOD + "=", "signature"),
    ("standard-alphabet signature", GOOD.replace("-", "+").replace("_", "/") + "+/", "signature"),
    ("header not JSON, not signed", b64url_encode(b"HS256") + "." + GOOD.split(".", 1)[1], "sig"),
    ("header not JSON, signed", _signed(b64url_encode(b"HS256"), GOOD.split(".")[1]), "header is"),
    ("header a JSON list", raw_token(["HS256"], claims()), "header is not a JSON object"),
    ("payload a JSON list", raw_token({"alg": "HS256"}, [1, 2]), "payload is not a JSON object"),
    ("crit header", raw_token({"alg": "HS256", "crit": ["b64"], "b64": False}, claims()), "header"),
    ("signed with the key base64-decoded", "", "signature"),  # filled below
    ("empty token", "", "missing"),
    ("non-ASCII token", GOOD + "é", "ASCII"),
]
_decoded_key = base64.b64decode(CURRENT[4:] + "==")
FORGERIES[-3] = (
    "signed with the key base64-decoded",
    f"{GOOD.rsplit('.', 1)[0]}."
    + b64url_encode(hmac.new(_decoded_key, GOOD.rsplit(".", 1)[0].encode(), "sha256").digest()),
    "signature",
)


@pytest.mark.parametrize(("name", "token", "reason"), FORGERIES, ids=[f[0] for f in FORGERIES])
def test_forged_or_broken_tokens_are_rejected_with_a_reason(
    name: str, token: str, reason: str
) -> None:
    """Every forged or malformed token raises SignatureError naming the failed check."""
    with pytest.raises(SignatureError) as info:
        receiver.verify(token, BODY, url=URL, now=NOW)
    assert reason in info.value.reason
    assert CURRENT not in str(info.value) and NEXT not in str(info.value)


def test_corpus_is_large_enough() -> None:
    """The issue asks for at least 15 forged tokens."""
    assert len(FORGERIES) >= 15


def test_tampered_body_is_rejected() -> None:
    """A valid token over another body fails the body-hash check."""
    with pytest.raises(SignatureError, match="body hash"):
        receiver.verify(GOOD, BODY + b" ", url=URL, now=NOW)


def test_valid_token_returns_the_claims() -> None:
    """A token signed with the current key verifies and returns typed claims."""
    verified = receiver.verify(GOOD, BODY, url=URL, now=NOW)
    assert verified.subject == URL and verified.issuer == "Upstash"
    assert verified.expires_at == NOW + 300 and verified.jwt_id == "jwt_1"


def test_next_key_is_accepted() -> None:
    """A token signed with the next key verifies (key rotation)."""
    assert receiver.verify(sign_jwt(claims(), NEXT), BODY, url=URL, now=NOW).subject == URL


def test_padded_body_claim_is_accepted() -> None:
    """The body hash compares padding-insensitively."""
    token = sign_jwt(claims(body=body_hash(BODY) + "="), CURRENT)
    assert receiver.verify(token, BODY, url=URL, now=NOW)


def test_clock_tolerance_widens_the_window() -> None:
    """`clock_tolerance` accepts slightly early or late tokens, and no more."""
    late = sign_jwt(claims(exp=NOW - 5), CURRENT)
    early = sign_jwt(claims(nbf=NOW + 5, iat=NOW + 5), CURRENT)
    assert receiver.verify(late, BODY, url=URL, now=NOW, clock_tolerance=10)
    assert receiver.verify(early, BODY, url=URL, now=NOW, clock_tolerance=10)
    with pytest.raises(SignatureError):
        receiver.verify(late, BODY, url=URL, now=NOW, clock_tolerance=4)


def test_body_must_be_bytes() -> None:
    """A decoded string body is a programming error, not a bad signature."""
    with pytest.raises(TypeError):
        receiver.verify(GOOD, BODY.decode(), url=URL, now=NOW)  # type: ignore[arg-type]


def test_from_env_reads_both_keys_and_hides_them() -> None:
    """from_env reads the two key variables; the repr never shows a key."""
    env = {"QSTASH_CURRENT_SIGNING_KEY": CURRENT, "QSTASH_NEXT_SIGNING_KEY": NEXT}
    r = Receiver.from_env(env)
    assert r.verify(GOOD, BODY, url=URL, now=NOW)
    assert CURRENT not in repr(r)
    with pytest.raises(ConfigError, match="QSTASH_NEXT_SIGNING_KEY"):
        Receiver.from_env({"QSTASH_CURRENT_SIGNING_KEY": CURRENT})


# -- cross-check with the official SDK's Receiver (PyJWT; laxer: str bodies) --------------


def official_accepts(token: str, body: bytes) -> bool:
    try:
        official.Receiver(CURRENT, NEXT).verify(signature=token, body=body.decode(), url=URL)
    except Exception:  # it also leaks KeyError/TypeError on some malformed claims
        return False
    return True


def ours_accepts(token: str, body: bytes) -> bool:
    try:
        receiver.verify(token, body, url=URL)
    except SignatureError:
        return False
    return True


def _live(**overrides: object) -> dict[str, object]:
    base = delivery_claims(URL, BODY, now=time.time(), jwt_id="live")
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _live_corpus() -> list[tuple[str, Callable[[], str]]]:
    t = int(time.time())

    def drop(name: str) -> dict[str, object]:
        c = _live()
        del c[name]
        return c

    return [
        ("good current", lambda: sign_jwt(_live(), CURRENT)),
        ("good next", lambda: sign_jwt(_live(), NEXT)),
        ("wrong key", lambda: sign_jwt(_live(), OTHER)),
        ("alg none", lambda: alg_none(_live())),
        ("HS512", lambda: hs512(_live())),
        ("expired", lambda: sign_jwt(_live(exp=t - 10), CURRENT)),
        ("future nbf", lambda: sign_jwt(_live(nbf=t + 100), CURRENT)),
        ("future iat", lambda: sign_jwt(_live(iat=t + 100), CURRENT)),
        ("no sub", lambda: sign_jwt(drop("sub"), CURRENT)),
        ("no exp", lambda: sign_jwt(drop("exp"), CURRENT)),
        ("no nbf", lambda: sign_jwt(drop("nbf"), CURRENT)),
        ("no iat", lambda: sign_jwt(drop("iat"), CURRENT)),
        ("no jti", lambda: sign_jwt(drop("jti"), CURRENT)),
        ("no body", lambda: sign_jwt(drop("body"), CURRENT)),
        ("wrong iss", lambda: sign_jwt(_live(iss="upstash"), CURRENT)),
        ("wrong sub", lambda: sign_jwt(_live(sub=URL + "?x=1"), CURRENT)),
        ("exp string", lambda: sign_jwt(_live(exp=str(t + 100)), CURRENT)),
        ("exp float", lambda: sign_jwt(_live(exp=t + 100.5), CURRENT)),
        ("aud", lambda: sign_jwt(_live(aud="x"), CURRENT)),
        ("padded body", lambda: sign_jwt(_live(body=body_hash(BODY) + "="), CURRENT)),
        ("other body", lambda: sign_jwt(_live(body=body_hash(b"x")), CURRENT)),
        ("extra segment", lambda: sign_jwt(_live(), CURRENT) + ".e30"),
        ("padded sig", lambda: sign_jwt(_live(), CURRENT) + "="),
        ("junk in sig", lambda: sign_jwt(_live(), CURRENT)[:-2] + "!!"),
        ("kid header", lambda: raw_token({"alg": "HS256", "typ": "JWT", "kid": "k"}, _live())),
        ("no typ", lambda: raw_token({"alg": "HS256"}, _live())),
        ("typ other", lambda: raw_token({"alg": "HS256", "typ": "JWS"}, _live())),
        ("crit", lambda: raw_token({"alg": "HS256", "crit": ["x"]}, _live())),
        ("truncated", lambda: sign_jwt(_live(), CURRENT)[:-5]),
        ("empty", lambda: ""),
    ]


@pytest.mark.parametrize(("name", "make"), _live_corpus(), ids=[c[0] for c in _live_corpus()])
def test_cross_check_with_the_official_receiver(name: str, make: Callable[[], str]) -> None:
    """Ours accepts only what the official Receiver accepts, and rejects all it rejects."""
    token = make()
    ours = ours_accepts(token, BODY)
    theirs = official_accepts(token, BODY)
    if ours:
        assert theirs, f"{name}: we accept what the official receiver rejects"
    if not theirs:
        assert not ours, f"{name}: the official receiver rejects what we accept"
    if name.startswith("good") or name in ("no iat", "no jti", "padded body"):
        assert ours and theirs
