"""Creating orders: idempotency key, order and outbox job in ONE atomic Redis step.

The step is a Lua script (atomic on Redis, one round trip): it claims the
`Idempotency-Key` unless it exists (then it returns the stored record), stores the
order and adds the confirmation job to the outbox. The idempotency record holds
no secret and no personal data: its state, a keyed digest of the request body,
the status and the order id. It is marked `pending` until the job is published
(or safely left in the outbox), and a duplicate arriving meanwhile gets a 409.

Before the answer: that one round trip and the publish. After it (`shared.background`),
one more round trip removes the published job from the outbox and marks the record
`done` (a failed publish is first settled by the outbox: next attempt or dead letter).
A duplicate reaching this process in between replays: its answer was already decided.

A replay rebuilds the 201 answer from the stored order and re-derives the access
token from the order id (`OrderTokens`); when the order was deleted (or expired)
it answers 410 instead, so `DELETE` removes everything a replay would return.
Idempotency keys are scoped to the caller (`scope`: the API key's identity when
`API_KEYS` is set), so another caller's same key is another record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.background import defer
from shared.errors import UpstashError
from shared.jobs.outbox import OUTBOX_KEY, Job, Outbox, PublishAttempt
from shared.orders.records import Item, OrderRecord, OrderTokens, new_order_id, order_key
from shared.redis import Redis, RetryPolicy, Script

REQUEST_REDIS_TIMEOUT_S = 3.0

log = logging.getLogger(__name__)

IDEMPOTENCY_TTL_S = 24 * 3600
PENDING_LEASE_MS = 15_000  # a "pending" record older than this was orphaned by a crash

# KEYS: order key, outbox hash[, idempotency key]
# ARGV: order json, order ttl s (0: none), outbox field, job json, idempotency record, idem ttl s
CREATE_ORDER = Script(
    """
if #KEYS == 3 then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'exists', existing} end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if #KEYS == 3 then
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[6])
end
return {'created'}
"""
)


# After the answer. KEYS: outbox hash[, idempotency key]
# ARGV: published job id ('' when not published), idempotency record marked done
FINISH_ORDER = Script(
    """
if ARGV[1] ~= '' then redis.call('HDEL', KEYS[1], ARGV[1]) end
if #KEYS == 2 then redis.call('SET', KEYS[2], ARGV[2], 'XX', 'KEEPTTL') end
return 1
"""
)


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A validated order request (built from the pydantic model by the API layer)."""

    customer_email: str
    items: tuple[Item, ...]
    currency: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer: `replayed` for an idempotent replay."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


class IdempotencyConflict(Exception):
    """The key is in use: `in_flight` (409) or with a different request body (422)."""

    def __init__(self, in_flight: bool) -> None:
        self.in_flight = in_flight
        super().__init__("in flight" if in_flight else "different body")


class OrderGone(Exception):
    """The order an idempotent replay refers to was deleted (or expired): 410."""


def idempotency_key(key: str, scope: str | None = None) -> str:
    """`idem:orders:<sha256(scope NUL key)>`: the caller's scope (API key identity) is part of
    the name, so equal keys from different callers never meet."""
    material = f"{scope or ''}\x00{key}"
    return "idem:orders:" + hashlib.sha256(material.encode("utf-8")).hexdigest()


class OrderService:
    def __init__(
        self,
        redis: Redis[Any],
        outbox: Outbox,
        *,
        tokens: OrderTokens,
        job_url: str,
        order_ttl_s: int = 0,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        # The request path's view of Redis: 3 s per call as a whole (a script's NOSCRIPT
        # fallback included) and no retry in process (the client retries with its
        # Idempotency-Key), so a slow Redis costs each step one short timeout and the
        # route's worst case stays well below the platforms' limits.
        self._redis = redis.with_options(
            timeout=REQUEST_REDIS_TIMEOUT_S, retry=RetryPolicy.never(), total_timeout=True
        )
        self._outbox = outbox
        self._tokens = tokens
        self._job_url = job_url
        self._order_ttl_s = order_ttl_s
        self._clock = clock_ms
        # Idempotency keys whose request was answered by this process and whose record is
        # still being marked done (after the answer): a duplicate replays, not 409.
        self._settling: set[str] = set()

    async def create(
        self,
        order: NewOrder,
        *,
        request_hash: str,
        key: str | None,
        request_id: str,
        scope: str | None = None,
    ) -> Outcome:
        order_id = new_order_id()
        now = self._clock()
        record = OrderRecord(
            id=order_id,
            customer_email=order.customer_email,
            items=order.items,
            currency=order.currency,
            total_cents=sum(i.quantity * i.unit_price_cents for i in order.items),
            created_at=datetime.fromtimestamp(now / 1000, UTC).isoformat(timespec="seconds"),
        )
        body = self._answer(record)
        job = Job(
            id=order_id,
            url=self._job_url,
            body={"orderId": order_id, "requestId": request_id},
            dedup_id=f"confirm-{order_id}",
        )
        keys = [order_key(order_id), OUTBOX_KEY]
        idem = {
            "state": "pending",
            "since": now,
            "hash": self._tokens.request_digest(request_hash),
            "status": 201,
            "order": order_id,
        }
        idem_key = None if key is None else idempotency_key(key, scope)
        if idem_key is not None:
            keys.append(idem_key)
        reply = await CREATE_ORDER.run(
            self._redis,
            keys,
            [
                record.to_json(),
                self._order_ttl_s,
                job.id,
                job.to_json(),
                json.dumps(idem, separators=(",", ":")),
                IDEMPOTENCY_TTL_S,
            ],
        )
        if reply[0] == "exists":
            return await self._replay(json.loads(reply[1]), request_hash, now, idem_key)
        attempt = await self._outbox.publish_unsettled(job)  # on failure it stays queued
        # The answer is decided: the bookkeeping goes after it, in one Redis round trip.
        idem["state"] = "done"
        done = json.dumps(idem, separators=(",", ":"))
        if idem_key is not None:
            self._settling.add(idem_key)
        defer(self._finish(attempt, job.id, idem_key, done))
        return Outcome(201, body)

    async def _finish(
        self, attempt: PublishAttempt, job_id: str, idem_key: str | None, done: str
    ) -> None:
        """After the answer: removes the published job from the outbox and marks the
        idempotency record done, in one script (a failed publish is settled by the outbox:
        new schedule or dead letter, then the record)."""
        published = attempt.outcome == "published"
        written = False
        try:
            if not published:
                await attempt.settle()
            keys = [OUTBOX_KEY] if idem_key is None else [OUTBOX_KEY, idem_key]
            if published or idem_key is not None:
                await FINISH_ORDER.run(self._redis, keys, [job_id if published else "", done])
            written = True
        except UpstashError as exc:
            # The job stays listed (the next flush re-publishes it with the same
            # deduplication id); the record stays pending until its lease runs out.
            log.warning("order bookkeeping after the answer failed (%s)", type(exc).__name__)
        finally:
            if published:
                attempt.settled_by_caller(ok=written)
            if idem_key is not None:
                self._settling.discard(idem_key)

    def _answer(self, record: OrderRecord) -> dict[str, Any]:
        return {
            "order": record.public(),
            "access_token": self._tokens.issue(record.id),
            "status": "created",
        }

    async def _replay(
        self, stored: dict[str, Any], request_hash: str, now: int, idem_key: str | None
    ) -> Outcome:
        order_id = stored.get("order")
        if isinstance(order_id, str):
            same = self._tokens.request_matches(request_hash, str(stored.get("hash", "")))
        else:  # a record from an older release: plain hash, the whole answer (expires in 24 h)
            order_id = str(((stored.get("body") or {}).get("order") or {}).get("id", ""))
            same = stored.get("hash") == request_hash
        if not same:
            raise IdempotencyConflict(in_flight=False)
        if (
            stored.get("state") == "pending"
            and now - int(stored.get("since", 0)) < PENDING_LEASE_MS
            and idem_key not in self._settling  # answered here; only its bookkeeping is left
        ):
            raise IdempotencyConflict(in_flight=True)
        raw = None if not order_id else await self._redis.get(order_key(order_id))
        if raw is None:
            raise OrderGone
        return Outcome(int(stored["status"]), self._answer(OrderRecord.from_json(raw)), True)
