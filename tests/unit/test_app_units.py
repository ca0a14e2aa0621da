"""Pure pieces of the app core: client identity for rate limiting, routing."""

from __future__ import annotations

import json

import pytest

from shared import errors
from shared.jobs import email_sender
from shared.web.app import App, MethodScoped, Middleware
from shared.web.errors import HttpError, is_upstream_outage, response_for
from shared.web.http import Headers, Request, Response
from shared.web.ratelimiting import client_identifier
from shared.web.reporting import ErrorReport
from shared.web.router import Handler, Router
from shared.web.served import declares_too_large


@pytest.mark.parametrize(
    ("ip", "identity"),
    [
        ("203.0.113.7", "ip:203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "ip:2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "ip:2001:db8:1:3::/64"),
        ("::ffff:198.51.100.4", "ip:198.51.100.4"),
        ("not an ip", "ip:unknown"),
        (None, "ip:unknown"),
    ],
)
def test_client_identifier_groups_ipv6_by_64(ip: str | None, identity: str) -> None:
    """IPv4 is limited per address, IPv6 per /64 (one subscriber), mapped IPv4 as IPv4."""
    assert client_identifier(Request("GET", "/api/x", client_ip=ip)) == identity


async def test_router_params_404_405() -> None:
    """Path parameters are extracted; unknown paths 404; a known path with another method
    405 with Allow; HEAD is served by GET without a body."""
    router = Router()

    @router.route("GET", "/api/things/{thing_id}")
    async def get_thing(request: Request) -> Response:
        return Response.json({"id": request.path_params["thing_id"]})

    ok = await router.dispatch(Request("GET", "/api/things/42"))
    assert ok.status == 200 and ok.body == b'{"id":"42"}'
    head = await router.dispatch(Request("HEAD", "/api/things/42"))
    assert head.status == 200 and head.body == b""
    with pytest.raises(HttpError) as missing:
        await router.dispatch(Request("GET", "/api/other"))
    assert missing.value.status == 404
    with pytest.raises(HttpError) as wrong:
        await router.dispatch(Request("POST", "/api/things/42"))
    assert wrong.value.status == 405 and wrong.value.headers["allow"] == "GET, HEAD"


def test_headers_are_case_insensitive_and_repr_hides_values() -> None:
    """Header lookups ignore case; repr shows names only (values may be secrets)."""
    headers = Headers([("Authorization", "Bearer s3cret"), ("X-A", "1"), ("x-a", "2")])
    assert headers["authorization"] == "Bearer s3cret" and headers.get("X-a") == "1, 2"
    assert "s3cret" not in repr(headers)


@pytest.mark.parametrize(
    ("value", "too_large"),
    [
        (None, False),
        ("", False),
        ("10", False),
        ("11", True),
        ("²", False),  # a Unicode digit: str.isdigit() says yes, int() raises
        ("1²", False),
        ("-5", False),
        (" 11", False),
        ("\u0661\u0661", False),  # Arabic-Indic digits: int() reads them, HTTP does not
    ],
)
def test_declared_content_length(value: str | None, too_large: bool) -> None:
    """Only an ASCII-digit Content-Length over the limit is too large; nothing else raises."""
    assert declares_too_large(value, 10) is too_large


# One instance of every UpstashError class in shared/, plus failures that are no outage.
FAILURES: list[BaseException] = [
    errors.UpstashError("x"),
    errors.ConfigError("X", "bad"),
    errors.TransportError("x"),
    errors.TransportTimeout("x"),
    errors.RedisError("x"),
    errors.RedisAuthError(401, "x"),
    errors.RedisResponseError(502, "x"),
    errors.RedisCommandError("GET", "ERR", "x"),
    errors.RedisNoScriptError("EVALSHA", "NOSCRIPT", "x"),
    errors.RedisTransactionAborted("x"),
    errors.RedisDecodeError("GET"),
    errors.QStashError(500, "x"),
    errors.QStashRateLimited(429, "x", {}),
    errors.SignatureError("x"),
    email_sender.EmailError("x"),
    email_sender.EmailSendError(None, "x", True),
    HttpError(503, "Email provider unavailable; QStash will retry"),
    RuntimeError("a bug"),
    KeyError("a bug"),
]


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


@pytest.mark.parametrize("exc", FAILURES, ids=lambda exc: type(exc).__name__)
def test_upstream_outages_are_exactly_the_503s_response_for_gives(exc: BaseException) -> None:
    """`is_upstream_outage` (what the app throttles reports of) holds exactly for what
    `response_for` answers 503 "Upstream service unavailable"; bugs are not outages."""
    response = response_for(exc, "req-1")
    unavailable = (response.status, json.loads(response.body)["error"]) == (
        503,
        "Upstream service unavailable",
    )
    assert is_upstream_outage(exc) is unavailable


def test_every_upstash_error_class_is_classified() -> None:
    """Every `UpstashError` class defined in shared/ (those imported here) is in the table
    above (a new one must be classified as an outage or not)."""
    known = {type(exc) for exc in FAILURES}
    defined = {c for c in _subclasses(errors.UpstashError) if c.__module__.startswith("shared.")}
    assert defined <= known, defined - known


async def test_health_answers_503_within_its_2s_even_alone_on_a_silent_redis() -> None:
    """The health check's 2 s bounds the whole PING, retries included, without relying on
    sharing a batch with the rate limiter (a silent Redis cost 3 x 2 s before)."""
    import asyncio

    from shared.app.system_routes import health_routes
    from shared.http import HttpxTransport
    from shared.redis import Redis

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = HttpxTransport()
    redis: Redis[str] = Redis(f"http://127.0.0.1:{port}", "token", transport=transport)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        response = await health_routes(redis).dispatch(Request("GET", "/api/health"))
        elapsed = loop.time() - started
    finally:
        await transport.aclose()
        server.close()
    assert response.status == 503
    assert elapsed < 4.0, elapsed


def _recording(name: str, seen: list[str]) -> Middleware:
    async def middleware(request: Request, call_next: Handler) -> Response:
        seen.append(name)
        return await call_next(request)

    return middleware


def _failing(message: str) -> Middleware:
    async def middleware(request: Request, call_next: Handler) -> Response:
        raise RuntimeError(message)

    return middleware


@pytest.mark.parametrize(
    ("method", "layers", "status"),
    [
        ("GET", ["outer", "inner"], 200),
        ("POST", ["outer", "posts", "inner"], 200),
        ("DELETE", ["outer", "inner"], 405),
        ("BREW", ["outer", "posts", "inner"], 405),  # no chain of its own: every layer
    ],
)
async def test_method_scoped_middleware_runs_for_its_methods_only(
    method: str, layers: list[str], status: int
) -> None:
    """A `MethodScoped` middleware is left out of the other methods' chains, in order."""
    router = Router()

    @router.route("GET", "/api/thing")
    async def get_thing(request: Request) -> Response:
        return Response.json({"ok": True})

    @router.route("POST", "/api/thing")
    async def post_thing(request: Request) -> Response:
        return Response.json({"ok": True})

    seen: list[str] = []
    app = App(
        router,
        middleware=[
            _recording("outer", seen),
            MethodScoped(_recording("posts", seen), frozenset({"POST"})),
            _recording("inner", seen),
        ],
    )
    response = await app.handle(Request(method, "/api/thing"))
    assert (response.status, seen) == (status, layers)


async def test_a_failure_in_a_method_scoped_layer_is_reported_by_type() -> None:
    """What escapes a `MethodScoped` layer reaches the error report, named by its type."""
    reports: list[ErrorReport] = []
    router = Router()
    app = App(
        router,
        middleware=[MethodScoped(_failing("boom"), frozenset({"POST"}))],
        error_reporter=reports.append,
    )
    response = await app.handle(Request("POST", "/api/thing"))
    assert response.status == 500
    assert [r.error_type for r in reports] == ["RuntimeError"]
    assert (await app.handle(Request("GET", "/api/thing"))).status == 404  # layer skipped
