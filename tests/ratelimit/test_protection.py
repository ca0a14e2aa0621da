"""Protection: upstream's deny lists read and written from both sides, the automatic IP list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from shared.http.httpx_transport import HttpxTransport
from shared.ratelimit import Protection, Ratelimit, fixed_window
from shared.ratelimit.protection import ip_list_ttl_ms, parse_ip_list
from shared.redis import Redis
from tests.support.loopback import loopback

from .conftest import T0, FakeClock, ServerStats
from .upstream_node import single_region_upstream

pytestmark = pytest.mark.integration

LIST_BODY = b"# known-bad addresses\n203.0.113.7\n198.51.100.23\t9\n\n192.0.2.1\n"


@dataclass
class ListServer:
    """A local file server for the automatic IP list; counts the fetches."""

    url: str
    fetches: int = 0
    delay: float = 0.0
    body: bytes = LIST_BODY
    status: int = 200
    gate: asyncio.Event | None = None  # when set: answer only once the event is set


@pytest.fixture
async def list_server() -> AsyncIterator[ListServer]:
    """Serves LIST_BODY at /ips.txt (after `delay` seconds, to keep a refresh in flight)."""
    server = ListServer("")

    async def ips(request: web.Request) -> web.Response:
        server.fetches += 1
        await asyncio.sleep(server.delay)
        if server.gate is not None:
            await server.gate.wait()
        return web.Response(body=server.body, status=server.status, content_type="text/plain")

    async with loopback(ips, method="GET", path="/ips.txt") as base_url:
        server.url = f"{base_url}/ips.txt"
        yield server


@pytest.fixture
async def transport() -> AsyncIterator[HttpxTransport]:
    """The CPython transport the protection fetches the list with."""
    t = HttpxTransport()
    yield t
    await t.aclose()


def test_the_list_expires_at_the_next_2am_utc() -> None:
    """The status TTL runs to the next 02:00 UTC (upstream's daily refresh time)."""
    midnight = T0 - 43_200_000
    assert ip_list_ttl_ms(midnight) == 2 * 3_600_000
    assert ip_list_ttl_ms(midnight + 2 * 3_600_000) == 86_400_000
    assert ip_list_ttl_ms(T0) == 14 * 3_600_000


def test_list_parsing_skips_comments_blanks_and_scores() -> None:
    """One value per line; `#` comments, blank lines and a tab-separated score are dropped."""
    assert parse_ip_list(LIST_BODY) == ["203.0.113.7", "198.51.100.23", "192.0.2.1"]


@pytest.mark.parametrize(
    ("request_kw", "reason", "value"),
    [
        ({}, "deny_identifier", "IDENT"),
        ({"ip": "10.9.8.7"}, "deny_ip", "10.9.8.7"),
        ({"user_agent": "EvilBot/1.0"}, "deny_user_agent", "EvilBot/1.0"),
        ({"country": "XX"}, "deny_country", "XX"),
    ],
)
async def test_reason_names_the_list_that_matched(
    request_kw: dict[str, str],
    reason: str,
    value: str,
    rest: Redis[str],
    stats: ServerStats,
    prefix: str,
    ident: str,
    clock: FakeClock,
) -> None:
    """A value in the shared deny list denies with a reason naming its kind and the value,
    and the check costs no extra request (it shares the decision's /pipeline request)."""
    protection = Protection(rest, prefix)
    rl = Ratelimit(rest, fixed_window(5, "10 s"), prefix, protection=protection, clock=clock)
    value = ident if value == "IDENT" else value
    await rl.limit(f"{ident}-warmup", ip="10.0.0.1")  # scripts loaded
    await protection.deny(value)
    before = await stats.http_requests()
    result = await rl.limit(ident, **request_kw)
    assert await stats.http_requests() - before == 1
    assert (result.success, result.reason, result.denied_value) == (False, reason, value)
    assert "Retry-After" not in rl.headers(result)
    await protection.allow(value)
    assert (await rl.limit(ident, **request_kw)).success


async def test_static_countries_deny_without_redis(
    rest: Redis[str], stats: ServerStats, prefix: str, ident: str, clock: FakeClock
) -> None:
    """Countries from settings (DENY_COUNTRIES) are denied in process, case-insensitively."""
    protection = Protection(rest, prefix, deny_countries=["xx"])
    rl = Ratelimit(rest, fixed_window(5, "10 s"), prefix, protection=protection, clock=clock)
    before = await stats.http_requests()
    result = await rl.limit(ident, country="XX")
    assert (result.success, result.reason, result.denied_value) == (False, "deny_country", "XX")
    assert await stats.http_requests() == before
    assert (await rl.limit(ident, country="FR")).success


async def test_lists_written_by_either_side_block_on_the_other(
    devstack: Any,
    rest: Redis[str],
    direct: aioredis.Redis,
    list_server: ListServer,
    transport: HttpxTransport,
    prefix: str,
    ident: str,
) -> None:
    """Our deny list and our refreshed automatic IP list block @upstash/ratelimit's
    requests, and values upstream's side adds block ours."""
    protection = Protection(rest, prefix, ip_list_url=list_server.url, transport=transport)
    ours = Ratelimit(rest, fixed_window(100, "1 d"), prefix, protection=protection)
    first = await ours.limit(ident, ip="10.1.1.1")
    assert first.success and first.pending is not None
    await first.pending  # the automatic list's refresh, started by this request
    assert list_server.fetches == 1
    assert await direct.get(f"{prefix}:ipDenyListStatus") == "valid"
    assert await direct.smembers(f"{prefix}:denyList:ipDenyList") == {
        "203.0.113.7",
        "198.51.100.23",
        "192.0.2.1",
    }
    await protection.deny("Scraper/2.0", "ZZ")
    async with single_region_upstream(devstack, prefix, limit=100, protection=True) as node:
        by_ip = await node.limit(ident, ip="203.0.113.7")
        assert (by_ip["success"], by_ip["reason"], by_ip["deniedValue"]) == (
            False,
            "denyList",
            "203.0.113.7",
        )
        by_agent = await node.limit(ident, userAgent="Scraper/2.0")
        assert (by_agent["reason"], by_agent["deniedValue"]) == ("denyList", "Scraper/2.0")
        by_country = await node.limit(ident, country="ZZ")
        assert (by_country["reason"], by_country["pendingError"]) == ("denyList", None)
        assert (await node.limit(ident, ip="10.1.1.1"))["success"]
        await node.call(op="deny", values=["bad-user", "10.66.66.66"])
    assert (await ours.limit("bad-user")).reason == "deny_identifier"
    assert (await ours.limit(ident, ip="10.66.66.66")).reason == "deny_ip"
    listed = await ours.limit(ident, ip="192.0.2.1")
    assert (listed.reason, listed.denied_value) == ("deny_ip_list", "192.0.2.1")
    assert list_server.fetches == 1  # upstream saw the "valid" status and fetched nothing


async def test_upstreams_ip_list_refresh_is_read_by_ours(
    devstack: Any,
    rest: Redis[str],
    list_server: ListServer,
    transport: HttpxTransport,
    prefix: str,
    ident: str,
) -> None:
    """The automatic list as @upstash/ratelimit stores it (its own refresh, served from the
    local file server) blocks our requests, and we see it is valid: no fetch of ours."""
    async with single_region_upstream(
        devstack, prefix, limit=100, protection=True, ipListUrl=list_server.url
    ) as node:
        first = await node.limit(ident, ip="10.1.1.1")
    assert (first["success"], first["pendingError"]) == (True, None)
    assert list_server.fetches == 1
    protection = Protection(rest, prefix, ip_list_url=list_server.url, transport=transport)
    ours = Ratelimit(rest, fixed_window(100, "1 d"), prefix, protection=protection)
    # (upstream keeps each line verbatim; the clean lines of a list are the same either way)
    listed = await ours.limit(ident, ip="203.0.113.7")
    assert (listed.reason, listed.denied_value) == ("deny_ip_list", "203.0.113.7")
    assert listed.pending is None
    assert (await ours.limit(ident, ip="10.1.1.1")).success
    assert list_server.fetches == 1 and protection.fetches == 0


async def test_unreadable_lists_leave_the_decision_to_the_limit(
    rest: Redis[str], direct: aioredis.Redis, prefix: str, ident: str, clock: FakeClock
) -> None:
    """A deny-list key of the wrong type (an error from the check) never fails the request:
    the limit alone decides."""
    await direct.set(f"{prefix}:denyList:all", "not a set")
    protection = Protection(rest, prefix)
    rl = Ratelimit(rest, fixed_window(1, "10 s"), prefix, protection=protection, clock=clock)
    first = await rl.limit(ident, ip="10.0.0.1")
    second = await rl.limit(ident, ip="10.0.0.1")
    assert (first.success, first.reason) == (True, None)
    assert (second.success, second.reason) == (False, None)


async def test_ip_list_refresh_runs_once_per_period_under_concurrent_requests(
    rest: Redis[str],
    direct: aioredis.Redis,
    list_server: ListServer,
    transport: HttpxTransport,
    prefix: str,
) -> None:
    """60 concurrent requests over three instances fetch the list once; when the status
    expires (the next period), the next burst fetches it once more."""
    list_server.delay = 0.2  # the refresh is still in flight while requests keep coming
    instances = [
        Ratelimit(
            rest,
            fixed_window(1000, "1 d"),
            prefix,
            protection=Protection(rest, prefix, ip_list_url=list_server.url, transport=transport),
        )
        for _ in range(3)
    ]

    async def burst() -> None:
        results = await asyncio.gather(
            *(instances[i % 3].limit(f"user-{i}", ip=f"10.0.0.{i}") for i in range(60))
        )
        await asyncio.gather(*(r.pending for r in results if r.pending is not None))

    await burst()
    await burst()
    assert list_server.fetches == 1
    ttl = await direct.pttl(f"{prefix}:ipDenyListStatus")
    assert 0 < ttl <= 86_400_000
    await direct.delete(f"{prefix}:ipDenyListStatus")  # what Redis does at 02:00 UTC
    await burst()
    assert list_server.fetches == 2


async def test_a_failing_source_is_retried_only_after_the_pending_marker(
    rest: Redis[str],
    direct: aioredis.Redis,
    list_server: ListServer,
    transport: HttpxTransport,
    prefix: str,
    ident: str,
) -> None:
    """A source answering 500 leaves the 30 s "pending" marker: no fetch per request."""
    list_server.status = 500
    protection = Protection(rest, prefix, ip_list_url=list_server.url, transport=transport)
    rl = Ratelimit(rest, fixed_window(100, "1 d"), prefix, protection=protection)
    for _ in range(5):
        result = await rl.limit(ident, ip="10.0.0.1")
        assert result.success
        if result.pending is not None:
            await result.pending
    assert list_server.fetches == 1
    assert await direct.get(f"{prefix}:ipDenyListStatus") == "pending"
    assert 0 < await direct.ttl(f"{prefix}:ipDenyListStatus") <= 30


def test_bad_protection_arguments(rest: Redis[str]) -> None:
    """An IP list URL needs http(s) and a transport; list values must be non-empty."""
    with pytest.raises(ValueError):
        Protection(rest, ip_list_url="ftp://example.invalid/x", transport=HttpxTransport())
    with pytest.raises(ValueError):
        Protection(rest, ip_list_url="https://example.invalid/x")
    with pytest.raises(ValueError):
        Protection(rest, deny_countries=[""])


async def test_the_refresh_never_holds_up_the_request_that_started_it(
    direct: aioredis.Redis,
    rest: Redis[str],
    list_server: ListServer,
    transport: HttpxTransport,
    prefix: str,
    ident: str,
) -> None:
    """The request whose check claims the refresh is answered while the list source has
    not answered yet: the fetch runs in `pending` (background work), off the request path."""
    list_server.gate = asyncio.Event()
    protection = Protection(rest, prefix, ip_list_url=list_server.url, transport=transport)
    rl = Ratelimit(rest, fixed_window(100, "1 d"), prefix, protection=protection)
    result = await asyncio.wait_for(rl.limit(ident, ip="10.0.0.1"), 5)
    assert result.success and result.pending is not None
    for _ in range(500):  # (bounded) the background fetch reaches the source, and waits
        if list_server.fetches:
            break
        await asyncio.sleep(0.01)
    assert not result.pending.done()
    assert await direct.get(f"{prefix}:ipDenyListStatus") == "pending"
    list_server.gate.set()
    await result.pending
    assert await direct.get(f"{prefix}:ipDenyListStatus") == "valid"
    assert list_server.fetches == 1


async def test_a_dripping_source_is_cut_off_by_the_fetch_deadline(
    rest: Redis[str], direct: aioredis.Redis, prefix: str, transport: HttpxTransport
) -> None:
    """A list source that sends its answer one byte at a time (no phase ever idle long enough
    for httpx's per-phase timeouts) ends the refresh at its total deadline: the background
    work a request leaves behind cannot outlive the platform's limit."""

    async def drips(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"content-length": "100000"})
        await response.prepare(request)
        for _ in range(100_000):
            await response.write(b"#")
            await asyncio.sleep(0.1)
        return response

    async with loopback(drips, method="GET", path="/ips.txt") as base_url:
        protection = Protection(
            rest,
            prefix,
            ip_list_url=f"{base_url}/ips.txt",
            transport=transport,
            fetch_timeout=1.0,
        )
        started = asyncio.get_running_loop().time()
        pending = protection.start_refresh()
        assert pending is not None
        await asyncio.wait_for(pending, timeout=15)  # fails here if nothing ends the fetch
        assert asyncio.get_running_loop().time() - started < 8  # 1 s deadline, generous bound
        assert await direct.get(f"{prefix}:ipDenyListStatus") is None  # nothing stored
