"""Flow control in the local QStash, measured at the receiving end: per key, never more than
`parallelism` deliveries in flight and never more than `rate` started per `period`, across
destinations, and every message still delivered exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from qstash_sink import TIME_SCALE, InFlight, Sink

from shared.qstash import FlowControl, QStash, QStashAdmin
from tests.support.loopback import loopback
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

WORK_S = 0.03  # how long the destination takes to answer (its own processing time)


@dataclass
class Meter:
    """A destination that records arrival times and the most requests it ever held at once."""

    base_url: str = ""
    load: InFlight = field(default_factory=InFlight)
    arrivals: list[float] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.arrivals.append(time.monotonic())
        self.message_ids.append(request.headers["Upstash-Message-Id"])
        await self.load.hold(WORK_S)
        if len(self.arrivals) >= self.expected:
            self.done.set()
        return web.Response(text="ok")


@pytest.fixture
async def meter() -> AsyncIterator[Meter]:
    result = Meter()
    async with loopback(result.handle) as url:
        result.base_url = url
        yield result


async def publish_burst(
    env: dict[str, str], meter: Meter, count: int, control: FlowControl | None
) -> list[str]:
    """`count` messages at once, alternating between two destinations."""
    meter.expected = count
    client = QStash.from_env(env)
    try:
        results = await asyncio.gather(
            *(
                client.publish_json(
                    f"{meter.base_url}/{'a' if n % 2 else 'b'}",
                    {"n": n},
                    retries=0,
                    **({"flow_control": control} if control else {}),
                )
                for n in range(count)
            )
        )
    finally:
        await client.aclose()
    return [r.message_id for r in results]


async def test_parallelism_bounds_deliveries_in_flight_across_destinations(
    qstash_env: dict[str, str], meter: Meter
) -> None:
    """With parallelism=2 on one key over two URLs, at most 2 requests are ever in flight;
    the key is listed by `GET /v2/flowControl`."""
    key = f"par-{uuid.uuid4().hex[:8]}"
    ids = await publish_burst(qstash_env, meter, 10, FlowControl(key, parallelism=2))
    admin = QStashAdmin.from_env(qstash_env)
    try:
        info = await admin.flow_control(key)
        assert info.parallelism_max == 2 and info.parallelism_count <= 2
        async with httpx.AsyncClient() as http:
            listed = await http.get(
                f"{qstash_env['QSTASH_URL']}/v2/flowControl",
                headers={"Authorization": f"Bearer {qstash_env['QSTASH_TOKEN']}"},
            )
        assert key in [item["flowControlKey"] for item in listed.json()]
        await asyncio.wait_for(meter.done.wait(), 15)
    finally:
        await admin.aclose()
    assert meter.load.most == 2
    assert sorted(meter.message_ids) == sorted(ids)  # delayed, never dropped nor doubled


async def test_without_flow_control_the_same_burst_overlaps(
    qstash_env: dict[str, str], meter: Meter
) -> None:
    """The control case: the same burst without a key runs more than 2 at once."""
    await publish_burst(qstash_env, meter, 10, None)
    await asyncio.wait_for(meter.done.wait(), 15)
    assert meter.load.most > 2


async def test_rate_per_period_holds(qstash_env: dict[str, str], meter: Meter) -> None:
    """With rate=2 per 300s (300 ms at the test's time scale), any 3 consecutive
    deliveries span at least one period, and all 7 arrive exactly once."""
    key = f"rate-{uuid.uuid4().hex[:8]}"
    period_s = 300
    ids = await publish_burst(qstash_env, meter, 7, FlowControl(key, rate=2, period=f"{period_s}s"))
    await asyncio.wait_for(meter.done.wait(), 15)
    window = period_s * TIME_SCALE
    jitter = 0.02  # QStash records a start slightly before the request reaches us
    arrivals = sorted(meter.arrivals)
    gaps = [arrivals[i + 2] - arrivals[i] for i in range(len(arrivals) - 2)]
    assert min(gaps) >= window - jitter, gaps
    assert sorted(meter.message_ids) == sorted(ids)


async def test_wait_list_counts_messages_held_by_the_key_not_by_their_own_delay(
    qstash: QStash, admin: QStashAdmin, sink: Sink
) -> None:
    """`waitListSize` counts the due messages the key's rate holds back, not the ones waiting
    for their own delay or for a retry backoff (as Upstash documents it)."""
    key = f"wait-{uuid.uuid4().hex[:8]}"
    control = FlowControl(key, rate=1, period="1d")  # 86 s at the fast stack's time scale
    sink.scripts["/busy"] = lambda _n: (503, {"Retry-After": "604800"})  # a week: 10 min here
    await qstash.publish_json(sink.url("/busy"), {}, retries=1, flow_control=control)
    await sink.wait_for("/busy", 1)  # took the key's one start of the day, then backs off
    for n in range(2):
        await qstash.publish_json(sink.url("/held"), {"n": n}, retries=0, flow_control=control)
    for delay in ("7d", "8d"):
        await qstash.publish_json(
            sink.url("/later"), {}, retries=0, delay=delay, flow_control=control
        )

    async def settled() -> tuple[int] | None:
        info = await admin.flow_control(key)
        return (info.wait_list_size,) if info.parallelism_count == 0 else None

    assert await eventually(settled, "the first attempt to finish") == (2,)
    assert sink.at("/held") == sink.at("/later") == []
    assert len(sink.at("/busy")) == 1
