"""Protection: deny lists by identifier, IP, user agent and country, as upstream's.

@upstash/ratelimit's `enableProtection` keeps one Redis SET of denied values,
`{prefix}:denyList:all` (identifiers, IPs, user agents and countries side by side;
the Upstash console and upstream's tests write it), plus an automatic list of
known-bad IPs, `{prefix}:denyList:ipDenyList`, merged into it and refreshed daily
while `{prefix}:ipDenyListStatus` says when (`"valid"` with a TTL up to the next
02:00 UTC, `"disabled"`, or `"pending"` for 30 s while one caller refreshes). We read
and write the same keys, so a value denied from either side blocks on both.

The check is one script (`lua.PROTECTION_CHECK`), issued together with the limiter's
own script so both leave in the same `/pipeline` request (auto-pipelining): no extra
round trip. `result.reason` names what matched (`deny_identifier`, `deny_ip`,
`deny_ip_list` for the automatic list, `deny_user_agent`, `deny_country`) and
`result.denied_value` the value. As upstream, a denied request still spends a token
of the identifier's budget (both scripts run in the same round trip).

The automatic list is fetched from `ip_list_url` (one IP per line; `#` comments,
blank lines and a tab-separated score are dropped, where upstream keeps each non-empty
line verbatim: the same for upstream's source, whose level files hold bare IPs) through
the injected transport, in the background (`shared.background`) of the one request
whose check found the status key absent and set it to `"pending"` (atomically, in the
check script: one caller per 30 s across all instances), and at most one fetch at a
time per process. It is stored as upstream
stores it (one MULTI/EXEC: previous automatic entries leave the union, the new list
minus the manual entries is stored and merged in, the status becomes `"valid"` until the
next 02:00 UTC). A failed fetch leaves the 30 s `"pending"` marker: the next attempt
comes after it expires. `ip_list_url=None` leaves the automatic list to others. The fetch
has one total deadline (`fetch_timeout`, 5 s), not the transport's per-phase timeouts: a
source that answers slowly or drips its body ends there, so the background work a request
leaves behind stays bounded (fetch 5 s + store one Redis call).

Static lists from settings (`deny_countries`, ...) are checked in process first, without
Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from shared.background import defer
from shared.durations import Duration, parse_duration_ms
from shared.errors import TransportError, UpstashError
from shared.http.transport import HttpRequest, Transport, send_within
from shared.ratelimit import lua
from shared.ratelimit.limiter import DEFAULT_PREFIX
from shared.ratelimit.result import Reason
from shared.redis import Redis

log = logging.getLogger(__name__)


Kind = Literal["identifier", "ip", "user_agent", "country"]
_REASONS: dict[Kind, Reason] = {
    "identifier": "deny_identifier",
    "ip": "deny_ip",
    "user_agent": "deny_user_agent",
    "country": "deny_country",
}
DAY_MS = 86_400_000
_TWO_AM_MS = 2 * 3_600_000
SADD_CHUNK = 5_000
MAX_LIST_BYTES = 8 * 1024 * 1024


def ip_list_ttl_ms(now_ms: int) -> int:
    """Milliseconds until the next 02:00 UTC (when the automatic list is refreshed)."""
    return DAY_MS - (now_ms - _TWO_AM_MS) % DAY_MS


def parse_ip_list(body: bytes) -> list[str]:
    """One value per line; blank lines, `#` comments and anything after a tab are dropped."""
    out: list[str] = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        value = line.split("#", 1)[0].split("\t", 1)[0].strip()
        if value:
            out.append(value)
    return out


@dataclass(frozen=True, slots=True)
class Denial:
    """A deny-list match: which list (as a `Reason`) and the value."""

    reason: Reason
    value: str


def _values(name: str, values: Iterable[str]) -> frozenset[str]:
    out = frozenset(values)
    if any(not isinstance(v, str) or not v for v in out):
        raise ValueError(f"{name} must hold non-empty strings")
    return out


class Protection:
    """Deny lists for a `Ratelimit` (`Ratelimit(..., protection=Protection(redis))`).

        protection = Protection(redis, deny_countries={"XX"}, ip_list_url=URL, transport=t)
        ratelimit = Ratelimit(redis, sliding_window(10, "10 s"), protection=protection)
        result = await ratelimit.limit(ip, ip=ip, user_agent=ua, country=country)
        # result.reason == "deny_country", result.denied_value == "XX"

    `prefix` must be the limiter's prefix (upstream keys the lists under it; `Ratelimit`
    refuses a protection under another prefix with `ValueError`).
    """

    def __init__(
        self,
        redis: Redis[Any],
        prefix: str = DEFAULT_PREFIX,
        *,
        deny_countries: Iterable[str] = (),
        deny_ips: Iterable[str] = (),
        deny_user_agents: Iterable[str] = (),
        ip_list_url: str | None = None,
        transport: Transport | None = None,
        fetch_timeout: Duration = 5.0,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string")
        if ip_list_url is not None:
            if not ip_list_url.startswith(("https://", "http://")):
                raise ValueError("ip_list_url must be an http(s) URL")
            if transport is None:
                raise ValueError("ip_list_url needs a transport to fetch it with")
        self._redis = redis
        self.prefix = prefix
        self.all_key = f"{prefix}:denyList:all"
        self.ip_list_key = f"{prefix}:denyList:ipDenyList"
        self.status_key = f"{prefix}:ipDenyListStatus"
        self._static: dict[Kind, frozenset[str]] = {
            "country": _values("deny_countries", (c.upper() for c in deny_countries)),
            "ip": _values("deny_ips", deny_ips),
            "user_agent": _values("deny_user_agents", deny_user_agents),
        }
        self.ip_list_url = ip_list_url
        self._transport = transport
        self._fetch_timeout = parse_duration_ms(fetch_timeout) / 1000
        self._clock = clock
        self._refreshing = False
        self.fetches = 0
        """How many times this instance fetched the automatic list (for tests and logs)."""

    def __repr__(self) -> str:
        return f"Protection(prefix={self.prefix!r}, ip_list={self.ip_list_url is not None})"

    def local_check(
        self, ip: str | None, user_agent: str | None, country: str | None
    ) -> Denial | None:
        """The static lists from settings, without Redis."""
        if country and country.upper() in self._static["country"]:
            return Denial("deny_country", country)
        if ip and ip in self._static["ip"]:
            return Denial("deny_ip", ip)
        if user_agent and user_agent in self._static["user_agent"]:
            return Denial("deny_user_agent", user_agent)
        return None

    async def check(
        self,
        redis: Redis[Any],
        identifier: str,
        ip: str | None,
        user_agent: str | None,
        country: str | None,
    ) -> tuple[Denial | None, asyncio.Future[Any] | None]:
        """The Redis lists (one script on `redis`, the limiter's view of the client), and
        the automatic list's refresh when this call started it (background work)."""
        members: list[tuple[Kind, str]] = [("identifier", identifier)]
        for kind, value in (("ip", ip), ("user_agent", user_agent), ("country", country)):
            if value:
                members.append((kind, value))  # type: ignore[arg-type]
        keys = [self.all_key, self.ip_list_key, self.status_key]
        args = ["1" if self.ip_list_url else "0", *(value for _, value in members)]
        reply = await lua.PROTECTION_CHECK.run(redis, keys, args)
        matched, automatic, refresh = (int(item) for item in reply)
        pending = self.start_refresh() if refresh else None
        if not 1 <= matched <= len(members):
            return None, pending
        kind, value = members[matched - 1]
        reason: Reason = "deny_ip_list" if kind == "ip" and automatic else _REASONS[kind]
        return Denial(reason, value), pending

    # -- the automatic IP list -----------------------------------------------------------

    def start_refresh(self) -> asyncio.Future[Any] | None:
        """Refreshes the automatic list in the background, unless one is running here."""
        if self._refreshing or self.ip_list_url is None:
            return None
        self._refreshing = True
        return defer(self._refresh_in_background())

    async def _refresh_in_background(self) -> None:
        try:
            await self.refresh_ip_list()
        except (TransportError, UpstashError, ValueError) as exc:
            # The "pending" marker stays for its 30 s: the next attempt comes after it.
            log.warning("IP deny list refresh failed (%s)", type(exc).__name__)
        finally:
            self._refreshing = False

    async def refresh_ip_list(self) -> int:
        """Fetches the list now and stores it as upstream does; returns how many IPs."""
        if self.ip_list_url is None or self._transport is None:
            raise ValueError("no ip_list_url configured")
        self.fetches += 1
        request = HttpRequest("GET", self.ip_list_url, timeout=self._fetch_timeout)
        response = await send_within(self._transport, request, "IP list")  # whole fetch
        if response.status != 200:
            raise ValueError(f"IP list source answered HTTP {response.status}")
        if len(response.body) > MAX_LIST_BYTES:
            raise ValueError("IP list larger than 8 MiB")
        ips = parse_ip_list(response.body)
        await self.store_ip_list(ips)
        log.info("IP deny list refreshed: %d entries", len(ips))
        return len(ips)

    async def store_ip_list(self, ips: list[str]) -> None:
        """Replaces the automatic list (upstream's transaction; manual entries stay)."""
        all_key, ip_key = self.all_key, self.ip_list_key
        tx = self._redis.multi()
        tx.execute(["SDIFFSTORE", all_key, all_key, ip_key])
        tx.execute(["DEL", ip_key])
        for start in range(0, len(ips), SADD_CHUNK):
            tx.execute(["SADD", ip_key, *ips[start : start + SADD_CHUNK]])
        tx.execute(["SDIFFSTORE", ip_key, ip_key, all_key])
        tx.execute(["SUNIONSTORE", all_key, all_key, ip_key])
        tx.execute(["SET", self.status_key, "valid", "PX", ip_list_ttl_ms(self._clock())])
        await tx.exec(raise_on_error=True)

    async def disable_ip_list(self) -> None:
        """Turns the automatic list off for every instance (upstream's `disableIpDenyList`)."""
        tx = self._redis.multi()
        tx.execute(["SDIFFSTORE", self.all_key, self.all_key, self.ip_list_key])
        tx.execute(["DEL", self.ip_list_key])
        tx.execute(["SET", self.status_key, "disabled"])
        await tx.exec(raise_on_error=True)

    # -- the manual list -------------------------------------------------------------------

    async def deny(self, *values: str) -> int:
        """Adds values (identifiers, IPs, user agents, countries) to the shared deny list."""
        _values("values", values)
        return int(await self._redis.sadd(self.all_key, *values)) if values else 0

    async def allow(self, *values: str) -> int:
        """Removes values from the shared deny list."""
        _values("values", values)
        return int(await self._redis.srem(self.all_key, *values)) if values else 0
