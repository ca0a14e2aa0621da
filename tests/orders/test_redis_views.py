"""The Redis views of `POST /api/orders` and of the confirmation job bound each call as a
whole: after Redis lost a script, the EVAL that follows NOSCRIPT gets what the EVALSHA left
of the view's timeout, so the README's per-route bounds count a script call once."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as redis_py

from devstack.dev import DEV_ORDER_TOKEN_SECRET
from shared.http import HttpxTransport
from shared.http.transport import HttpRequest, HttpResponse
from shared.jobs.outbox import Outbox
from shared.orders.confirmation import JOB_REDIS_TIMEOUT_S, job_redis
from shared.orders.records import Item, OrderTokens
from shared.orders.service import CREATE_ORDER, REQUEST_REDIS_TIMEOUT_S, NewOrder, OrderService
from shared.qstash import QStash
from shared.redis import COMPARE_AND_DELETE, Redis, delete_if_equals
from tests.conftest import Devstack

pytestmark = pytest.mark.integration

EVALSHA_DELAY_S = 0.3


class SlowEvalsha:
    """Forwards to the devstack, holding each request with an EVALSHA for a while first (a
    slow server), and records every request it sends."""

    def __init__(self, inner: HttpxTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[list[list[object]], float]] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        body = json.loads(request.body)
        commands = body if body and isinstance(body[0], list) else [body]
        self.sent.append((commands, request.timeout))
        if any(str(c[0]).upper() == "EVALSHA" for c in commands):
            await asyncio.sleep(EVALSHA_DELAY_S)  # the server is slow, not the test
        return await self.inner.send(request)

    def timeout_of(self, name: str, first_arg: str) -> float:
        """The timeout of the first request that carried `name first_arg ...`."""
        for commands, timeout in self.sent:
            if any(str(c[0]).upper() == name and c[1] == first_arg for c in commands):
                return timeout
        raise AssertionError(f"no {name} request for {first_arg[:20]!r}")


class AcceptingQStash:
    """Answers every publish like QStash does."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        body = json.dumps({"messageId": f"msg_{uuid.uuid4().hex}"}).encode()
        return HttpResponse(200, {"content-type": "application/json"}, body)


async def flush_scripts(devstack: Devstack) -> None:
    direct = redis_py.from_url(devstack.redis_url)
    await direct.script_flush()
    await direct.aclose()


async def test_order_creation_script_fallback_shares_the_views_timeout(
    devstack: Devstack,
) -> None:
    """When Redis lost the creation script, the EVAL after a slow NOSCRIPT gets what is left
    of the request path's 3 s, not a fresh 3 s."""
    inner = HttpxTransport()
    transport = SlowEvalsha(inner)
    redis = Redis(devstack.redis_rest_url, devstack.redis_rest_token, transport=transport)
    qstash = QStash("token", url="http://qstash.test", transport=AcceptingQStash())
    service = OrderService(
        redis,
        Outbox(redis, qstash),
        tokens=OrderTokens(DEV_ORDER_TOKEN_SECRET),
        job_url="http://app.test/api/jobs/x",
    )
    await flush_scripts(devstack)
    order = NewOrder("a@example.com", (Item("SKU-1", 1, 500),), "EUR")
    outcome = await service.create(order, request_hash="h", key=None, request_id="r")
    assert outcome.status == 201
    assert transport.timeout_of("EVALSHA", CREATE_ORDER.sha) == REQUEST_REDIS_TIMEOUT_S
    left = transport.timeout_of("EVAL", CREATE_ORDER.source)
    assert 0 < left <= REQUEST_REDIS_TIMEOUT_S - EVALSHA_DELAY_S
    await inner.aclose()


async def test_confirmation_job_script_fallback_shares_the_views_timeout(
    devstack: Devstack,
) -> None:
    """Through the confirmation job's Redis view, a lease release whose script Redis lost
    runs its EVAL with what the slow EVALSHA left of the job's 3 s, not a fresh 3 s."""
    inner = HttpxTransport()
    transport = SlowEvalsha(inner)
    redis = job_redis(
        Redis(devstack.redis_rest_url, devstack.redis_rest_token, transport=transport)
    )
    lease = f"email:lease:test-{uuid.uuid4().hex}"
    await redis.set(lease, "token", px=60_000)
    await flush_scripts(devstack)
    assert await delete_if_equals(redis, lease, "token")
    assert transport.timeout_of("EVALSHA", COMPARE_AND_DELETE.sha) == JOB_REDIS_TIMEOUT_S
    left = transport.timeout_of("EVAL", COMPARE_AND_DELETE.source)
    assert 0 < left <= JOB_REDIS_TIMEOUT_S - EVALSHA_DELAY_S
    await inner.aclose()
