"""Optional API keys (`API_KEYS`) for the routes that create things.

    keys = ApiKeys(settings.api_keys)
    middleware = [..., rate_limit_middleware(limiter, identify=keyed_identifier(keys)),
                  api_key_middleware(keys, protected={("POST", "/api/orders")})]

Keys are presented in `X-API-Key`. Several keys may be valid at once, which is how
they rotate: add the new key, move clients, remove the old one. A presented key is
compared with every configured key through SHA-256 digests and
`hmac.compare_digest` (equal lengths, no early exit), so neither a key's content nor
its length leaks through timing. A request with a valid key is rate limited under
`key:<sha256(key)[:16]>` (its own budget); any other request under its IP. Keys are
never logged or stored; only that short digest appears, as a Redis key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable

from shared.web.app import MethodScoped, Middleware
from shared.web.errors import HttpError
from shared.web.http import Request, Response
from shared.web.ratelimiting import Identify, client_identifier
from shared.web.router import Handler

HEADER = "x-api-key"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


class ApiKeys:
    """The configured keys, kept only as digests; empty means "no key required"."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys(<{len(self._digests)} keys>)"

    def identity(self, presented: str | None) -> str | None:
        """`key:<16 hex>` for a valid key, else None; compares against every key."""
        if not self._digests or not presented:
            return None
        given = _digest(presented)
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(given, digest)
        return f"key:{given.hex()[:16]}" if matched else None

    def identity_of(self, request: Request) -> str | None:
        return self.identity(request.headers.get(HEADER))


def keyed_identifier(keys: ApiKeys, fallback: Identify = client_identifier) -> Identify:
    """Rate-limit identity: the key's digest for a valid key, else `fallback` (the IP)."""

    def identify(request: Request) -> str:
        return keys.identity_of(request) or fallback(request)

    return identify


def api_key_middleware(keys: ApiKeys, *, protected: Collection[tuple[str, str]]) -> Middleware:
    """401 JSON for a `(method, path)` in `protected` without a valid key (when keys exist)."""
    guarded = frozenset((m.upper(), p) for m, p in protected)

    async def middleware(request: Request, call_next: Handler) -> Response:
        protected_route = (request.method, request.path) in guarded
        if keys and protected_route and keys.identity_of(request) is None:
            raise HttpError(401, "Missing or invalid API key")
        return await call_next(request)

    return MethodScoped(middleware, frozenset(method for method, _ in guarded))
