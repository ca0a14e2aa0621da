"""The `OrderRepository` port and its Redis implementation (durable on Upstash).

Fork it: put your database behind the same three methods; the cache in front of
`get` is where that pays off.
"""

from __future__ import annotations

from typing import Any, Protocol

from shared.orders.records import ORDER_ID, OrderRecord, order_key
from shared.redis import Redis


class OrderRepository(Protocol):
    async def get(self, order_id: str) -> OrderRecord | None: ...

    async def delete(self, order_id: str) -> bool: ...


class RedisOrderRepository:
    """Orders as JSON strings under `order:{id}`; creation happens in `OrderService`'s
    transaction (with the idempotency key and the outbox), not here."""

    def __init__(self, redis: Redis[Any]) -> None:
        self._redis = redis

    async def get(self, order_id: str) -> OrderRecord | None:
        if not ORDER_ID.match(order_id):
            return None
        raw = await self._redis.get(order_key(order_id))
        return None if raw is None else OrderRecord.from_json(raw)

    async def delete(self, order_id: str) -> bool:
        if not ORDER_ID.match(order_id):
            return False
        return await self._redis.delete(order_key(order_id)) == 1
