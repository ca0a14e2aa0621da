"""Order creation's idempotency semantics against the real devstack Redis, with a QStash
stand-in that holds the publish open so the "still in flight" window can be observed."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from devstack.dev import DEV_ORDER_TOKEN_SECRET
from shared.http.transport import HttpRequest, HttpResponse
from shared.jobs.outbox import Outbox
from shared.orders.records import Item, OrderTokens
from shared.orders.service import IdempotencyConflict, NewOrder, OrderService, idempotency_key
from shared.qstash import QStash
from shared.redis import Redis, RetryPolicy
from tests.conftest import Devstack

pytestmark = pytest.mark.integration


class HeldQStash:
    """Answers publishes like QStash, but only once `release` is set (a slow network)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.published: list[str] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        await self.release.wait()
        self.published.append(request.url)
        body = json.dumps({"messageId": f"msg_{uuid.uuid4().hex}"}).encode()
        return HttpResponse(200, {"content-type": "application/json"}, body)


def order(email: str = "a@example.com") -> NewOrder:
    return NewOrder(email, (Item("SKU-1", 1, 500),), "EUR")


async def test_same_key_while_in_flight_is_a_conflict(devstack: Devstack) -> None:
    """While the first request publishes, a duplicate is in flight (409); another body is a
    mismatch (422); afterwards the duplicate replays the original answer."""
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token, retry=RetryPolicy.never())
    held = HeldQStash()
    qstash = QStash("token", url="http://qstash.test", transport=held)
    service = OrderService(
        redis,
        Outbox(redis, qstash),
        tokens=OrderTokens(DEV_ORDER_TOKEN_SECRET),
        job_url="http://app.test/api/jobs/x",
    )
    key = f"key-{uuid.uuid4().hex}"
    first = asyncio.ensure_future(
        service.create(order(), request_hash="h1", key=key, request_id="r1")
    )
    for _ in range(500):  # until the first request's transaction committed (bounded)
        if await redis.exists(idempotency_key(key)):
            break
        await asyncio.sleep(0.01)
    assert not first.done(), "the publish is held: the first request must still be in flight"
    with pytest.raises(IdempotencyConflict) as in_flight:
        await service.create(order(), request_hash="h1", key=key, request_id="r2")
    assert in_flight.value.in_flight is True
    with pytest.raises(IdempotencyConflict) as mismatch:
        await service.create(order("b@example.com"), request_hash="h2", key=key, request_id="r3")
    assert mismatch.value.in_flight is False
    held.release.set()
    original = await first
    assert original.status == 201 and not original.replayed
    replay = await service.create(order(), request_hash="h1", key=key, request_id="r4")
    assert replay.replayed and replay.body == original.body and replay.status == 201
    assert len(held.published) == 1
    await redis.aclose()
