"""CORS and API-key middleware as pure units (no network): the cases the deployment tests skip."""

from __future__ import annotations

import hashlib

import pytest

from shared.web.api_keys import ApiKeys, keyed_identifier
from shared.web.cors import cors_middleware
from shared.web.errors import HttpError
from shared.web.http import Headers, Request, Response


async def ok(request: Request) -> Response:
    return Response.json({"ok": True})


async def fails(request: Request) -> Response:
    raise HttpError(503, "down")


def methods(path: str) -> list[str]:
    return ["GET", "HEAD"] if path == "/api/health" else []


def request(method: str = "GET", **headers: str) -> Request:
    return Request(method, "/api/health", headers=Headers(headers), client_ip="192.0.2.1")


PREFLIGHT = {"origin": "https://a.example", "access-control-request-method": "GET"}


async def test_unconfigured_cors_adds_nothing() -> None:
    """Without origins: no CORS headers, a preflight is 403, a plain OPTIONS is 204 + Allow."""
    middleware = cors_middleware((), allowed_methods=methods)
    plain = await middleware(request(origin="https://a.example"), ok)
    assert not any(k.startswith("access-control-") or k == "vary" for k in plain.headers)
    assert (await middleware(request("OPTIONS", **PREFLIGHT), ok)).status == 403
    options = await middleware(request("OPTIONS"), ok)
    assert (options.status, options.headers["allow"]) == (204, "GET, HEAD, OPTIONS")


async def test_wildcard_and_credentials() -> None:
    """`*` answers `*` and never allows credentials; explicit origins may, when enabled."""
    wildcard = cors_middleware(("*",), allowed_methods=methods)
    response = await wildcard(request(origin="https://any.example"), ok)
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    with pytest.raises(ValueError):
        cors_middleware(("*",), allowed_methods=methods, allow_credentials=True)
    explicit = cors_middleware(
        ("https://a.example",), allowed_methods=methods, allow_credentials=True
    )
    pre = await explicit(request("OPTIONS", **PREFLIGHT), ok)
    assert pre.headers["access-control-allow-credentials"] == "true"
    assert pre.headers["access-control-allow-origin"] == "https://a.example"


async def test_cors_headers_on_raised_errors() -> None:
    """An exception from inside is mapped to its JSON answer, with the CORS headers."""
    middleware = cors_middleware(("https://a.example",), allowed_methods=methods)
    response = await middleware(request(origin="https://a.example"), fails)
    assert response.status == 503
    assert response.headers["access-control-allow-origin"] == "https://a.example"


def test_api_key_identity() -> None:
    """Each valid key has its own `key:<sha256[:16]>` identity; anything else falls back to the
    IP; the repr shows no key."""
    keys = ApiKeys(["first-key-0123456789", "second-key-0123456789"])
    digest = hashlib.sha256(b"second-key-0123456789").hexdigest()[:16]
    assert keys.identity("second-key-0123456789") == f"key:{digest}"
    assert keys.identity("first-key-0123456789") != keys.identity("second-key-0123456789")
    assert keys.identity("second-key-012345678") is None and keys.identity(None) is None
    assert "first" not in repr(keys)
    identify = keyed_identifier(keys)
    assert identify(request(**{"x-api-key": "nope"})) == "ip:192.0.2.1"
    assert identify(request(**{"x-api-key": "second-key-0123456789"})) == f"key:{digest}"
    assert not ApiKeys([]) and ApiKeys([]).identity("anything") is None
