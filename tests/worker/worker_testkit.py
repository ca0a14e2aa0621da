"""Helpers shared by the Worker layer's conftest and tests (seeding, the inbox); bounded
polling is `tests.support.waiting.wait_for` (with DELIVERY_TIMEOUT)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import redis as redis_py

from devstack.dev import DEV_ORDER_TOKEN_SECRET
from shared.jobs.outbox import OUTBOX_KEY, Job
from shared.orders.records import Item, OrderRecord, OrderTokens, new_order_id, order_key

DELIVERY_TIMEOUT = 30.0


def seed_order(redis: redis_py.Redis, email: str | None = None) -> tuple[OrderRecord, str]:
    """Stores an order as `OrderService` would; returns it and its (derived) access token."""
    record = OrderRecord(
        id=new_order_id(),
        customer_email=email or f"worker-{uuid.uuid4().hex[:12]}@example.com",
        items=(Item("BOOK-1", 2, 1250), Item("PEN-9", 1, 300)),
        currency="EUR",
        total_cents=2800,
        created_at="2026-04-26T12:00:00Z",
    )
    redis.set(order_key(record.id), record.to_json(), ex=3600)
    return record, OrderTokens(DEV_ORDER_TOKEN_SECRET).issue(record.id)


def seed_outbox_job(redis: redis_py.Redis, record: OrderRecord, job_url: str) -> Job:
    """Writes the order's confirmation job into the outbox, as `OrderService` does."""
    job = Job(
        id=record.id,
        url=job_url,
        body={"orderId": record.id, "requestId": "outbox-test"},
        dedup_id=f"confirm-{record.id}",
        delay="0s",
    )
    redis.hset(OUTBOX_KEY, job.id, job.to_json())
    return job


def emails_to(http: httpx.Client, email_api_url: str, address: str) -> list[dict[str, Any]]:
    """The devstack email sink's captured emails for `address`, oldest first."""
    response = http.get(f"{email_api_url}/emails", params={"to": address})
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()["data"]
    return data
