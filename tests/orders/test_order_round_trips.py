"""`POST /api/orders`' Redis round trips: one before the answer (with the publish), and one
after it for the bookkeeping (outbox entry and idempotency record), on the real devstack."""

from __future__ import annotations

import json
import uuid

import pytest

from devstack.dev import DEV_ORDER_TOKEN_SECRET
from shared.background import background
from shared.http.transport import HttpRequest, HttpResponse
from shared.jobs.outbox import OUTBOX_KEY, Outbox
from shared.orders.records import Item, OrderTokens
from shared.orders.service import NewOrder, OrderService, idempotency_key
from shared.qstash import QStash
from shared.redis import Redis
from shared.scope import request_scope
from tests.conftest import Devstack
from tests.support.transports import CountingTransport

pytestmark = pytest.mark.integration


class AcceptingQStash:
    """Answers every publish like QStash does."""

    def __init__(self) -> None:
        self.published = 0

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.published += 1
        body = json.dumps({"messageId": f"msg_{uuid.uuid4().hex}"}).encode()
        return HttpResponse(200, {"content-type": "application/json"}, body)


@pytest.mark.parametrize("with_key", [True, False])
async def test_one_round_trip_before_the_answer_and_one_after(
    devstack: Devstack, with_key: bool
) -> None:
    """Creating an order sends one Redis request and one publish before returning; the
    outbox entry removal and the idempotency record's `done` follow in one request."""
    counting = CountingTransport()  # each request to Redis is one round trip
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token, transport=counting)
    qstash_transport = AcceptingQStash()
    service = OrderService(
        redis,
        Outbox(redis, QStash("token", url="http://qstash.test", transport=qstash_transport)),
        tokens=OrderTokens(DEV_ORDER_TOKEN_SECRET),
        job_url="http://app.test/api/jobs/x",
    )
    order = NewOrder("a@example.com", (Item("SKU-1", 1, 500),), "EUR")

    async def create(key: str | None) -> tuple[str, list[str], list[str]]:
        counting.sent.clear()
        async with request_scope():
            outcome = await service.create(order, request_hash="h", key=key, request_id="r")
            before = list(counting.sent)
            await background().drain()
        after = counting.sent[len(before) :]
        return str(outcome.body["order"]["id"]), before, after

    await create(None)  # loads the scripts (a first EVALSHA is answered NOSCRIPT)
    key = f"key-{uuid.uuid4().hex}" if with_key else None
    published = qstash_transport.published
    order_id, before, after = await create(key)
    assert len(before) == 1 and qstash_transport.published == published + 1
    assert len(after) == 1, after
    assert await redis.hget(OUTBOX_KEY, order_id) is None
    if key is not None:
        record = json.loads(await redis.get(idempotency_key(key)) or "{}")
        assert record["state"] == "done" and record["order"] == order_id
        assert 0 < await redis.ttl(idempotency_key(key)) <= 24 * 3600
    await counting.aclose()


async def test_a_duplicate_right_after_the_answer_replays(devstack: Devstack) -> None:
    """A duplicate arriving before the bookkeeping landed replays the answer (no 409)."""
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token)
    service = OrderService(
        redis,
        Outbox(redis, QStash("token", url="http://qstash.test", transport=AcceptingQStash())),
        tokens=OrderTokens(DEV_ORDER_TOKEN_SECRET),
        job_url="http://app.test/api/jobs/x",
    )
    order = NewOrder("a@example.com", (Item("SKU-1", 1, 500),), "EUR")
    key = f"key-{uuid.uuid4().hex}"
    async with request_scope():
        first = await service.create(order, request_hash="h", key=key, request_id="r1")
        replay = await service.create(order, request_hash="h", key=key, request_id="r2")
        await background().drain()
    assert replay.replayed and replay.status == 201 and replay.body == first.body
    await redis.aclose()
