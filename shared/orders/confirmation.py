"""`POST /api/jobs/send-confirmation`: the QStash-delivered job that emails the customer.

At most one email per order, even when QStash delivers twice or concurrently:
1. the signature is verified on the raw body against the configured public URL;
2. a "sent" marker (kept 7 days, longer than QStash's retry horizon) ends duplicates;
3. a short lease (`SET NX PX`) makes concurrent deliveries wait their turn (409:
   QStash retries them, and by then the marker answers);
4. the provider gets an `Idempotency-Key`, covering a crash between send and marker.
A provider failure (or a marker that could not be written) refunds the recipient's
rate-limit token, releases the lease and answers 503 so QStash retries; a job that
can never succeed (order gone or unreadable, an address or amount the builder
refuses, the provider refusing the message) answers 489 with
`Upstash-NonRetryable-Error: true`.

Worst case (README "Deadlines"): the job's Redis calls have a 3 s deadline each and are not
retried in process (QStash retries the job), the recipient budget 1 s, the send 8 s, and the
give-back after a failure 1 s in all: 3 + 3 + 1 + 8 + 3 + 1 = 19 s, so even with the outbox
flush that may follow a 200 the invocation stays well inside Vercel's 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from shared.errors import SignatureError, UpstashError
from shared.jobs.email import (
    EmailMessage,
    EmailSender,
    EmailSendError,
    OrderSummary,
    build_confirmation_email,
)
from shared.orders.records import ORDER_ID, OrderRecord
from shared.orders.repository import OrderRepository
from shared.qstash import NON_RETRYABLE, Receiver
from shared.ratelimit import Ratelimit
from shared.redis import Redis, RetryPolicy, delete_if_equals
from shared.routes import CONFIRMATION_JOB
from shared.web.errors import HttpError
from shared.web.http import Request, Response, loads_bounded
from shared.web.router import Router

log = logging.getLogger(__name__)

SENT_TTL_S = 7 * 24 * 3600
LEASE_MS = 60_000
JOB_REDIS_TIMEOUT_S = 3.0  # each Redis call of the job as a whole; one attempt (QStash retries)
GIVE_BACK_TIMEOUT_S = 1.0  # refund and lease release together, best effort


def job_redis(redis: Redis[Any]) -> Redis[Any]:
    """The job's view of Redis: a 3 s deadline per call as a whole (a script's NOSCRIPT
    fallback included) and no retry in process, so a hanging Redis costs each step one
    short timeout (the route's sum stays bounded)."""
    return redis.with_options(
        timeout=JOB_REDIS_TIMEOUT_S, retry=RetryPolicy.never(), total_timeout=True
    )


@dataclass(frozen=True, slots=True)
class ConfirmationJob:
    order_id: str
    request_id: str | None


def parse_job(body: bytes) -> ConfirmationJob:
    """The job payload, or `HttpError(489)`: a malformed job never becomes valid."""
    try:
        data = loads_bounded(body)
    except (ValueError, UnicodeDecodeError):
        raise HttpError(489, "Job payload is not JSON", headers=NON_RETRYABLE) from None
    order_id = data.get("orderId") if isinstance(data, dict) else None
    if not isinstance(order_id, str) or not ORDER_ID.match(order_id):
        raise HttpError(489, "Job payload needs a valid orderId", headers=NON_RETRYABLE)
    request_id = data.get("requestId")
    return ConfirmationJob(order_id, request_id if isinstance(request_id, str) else None)


def summary_of(order: OrderRecord) -> OrderSummary:
    return OrderSummary(
        order_id=order.id,
        customer_email=order.customer_email,
        items=tuple((i.sku, i.quantity, i.unit_price_cents) for i in order.items),
        currency=order.currency,
        total_cents=order.total_cents,
        created_at=order.created_at,
    )


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored order that cannot be parsed (corrupt or from an incompatible version)."""

    error_type: str


async def read_order(repository: OrderRepository, order_id: str) -> OrderRecord | Unreadable | None:
    """The stored order, None when it is gone, or `Unreadable`: a permanent condition."""
    try:
        return await repository.get(order_id)
    except (KeyError, TypeError, ValueError) as exc:  # RedisDecodeError is a ValueError too
        log.warning("order %s is unreadable: %s", order_id, type(exc).__name__)
        return Unreadable(type(exc).__name__)


def build_message(order: OrderRecord, email_from: str) -> EmailMessage:
    """The email for `order`, or `HttpError(489)`: what the builder refuses now (an address
    stored before the API's rule, a malformed amount) it refuses on every retry."""
    try:
        return build_confirmation_email(summary_of(order), sender=email_from)
    except ValueError as exc:
        # The message names the field and the rule, never the value.
        log.warning("order %s cannot be emailed: %s", order.id, exc)
        raise HttpError(489, "Order cannot be emailed", str(exc), headers=NON_RETRYABLE) from None


async def mark_sent(redis: Redis[Any], sent_key: str, lease_key: str, email_id: str) -> bool:
    """Records the sent marker and drops the lease in one transaction; False when the marker
    command failed (a per-command error comes back as a value, not raised)."""
    tx = redis.multi()
    tx.set(sent_key, email_id, ex=SENT_TTL_S)
    tx.delete(lease_key)  # if only this fails, the lease expires on its own
    marker, _ = await tx.exec()
    if isinstance(marker, Exception):
        log.warning("sent marker not written: %s", type(marker).__name__)
        return False
    return True


def recipient_id(email: str) -> str:
    """Rate-limit identity of a recipient: a hash, so no address lands in Redis keys."""
    return "rcpt:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def confirmation_routes(
    *,
    redis: Redis[Any],
    receiver: Receiver,
    job_url: str,
    repository: OrderRepository,
    sender: EmailSender,
    email_from: str,
    recipient_limiter: Ratelimit,
) -> Router:
    router = Router()
    redis = job_redis(redis)
    release_redis = redis.with_options(timeout=GIVE_BACK_TIMEOUT_S)

    async def refund(rate_taken: bool, recipient: str) -> None:
        if rate_taken:
            await recipient_limiter.limit(recipient, rate=-1)

    async def give_back(rate_taken: bool, recipient: str, lease_key: str, token: str) -> None:
        """After a failed attempt: refund the recipient's token and release the lease, together
        and within 1 s (best effort: the budget's window and the lease's TTL end either)."""
        with contextlib.suppress(UpstashError, TimeoutError):
            async with asyncio.timeout(GIVE_BACK_TIMEOUT_S):
                await asyncio.gather(
                    refund(rate_taken, recipient),
                    delete_if_equals(release_redis, lease_key, token),
                    return_exceptions=True,
                )

    @router.route("POST", CONFIRMATION_JOB)
    async def send_confirmation(request: Request) -> Response:
        try:
            receiver.verify(request.headers.get("upstash-signature"), request.body, url=job_url)
        except SignatureError as exc:
            raise HttpError(401, "Invalid signature", exc.reason) from None
        job = parse_job(request.body)
        log.info(
            "confirmation job order=%s request=%s message=%s",
            job.order_id,
            job.request_id,
            request.headers.get("upstash-message-id"),
        )
        sent_key, lease_key = f"email:sent:{job.order_id}", f"email:lease:{job.order_id}"
        # One round trip each (auto-pipelined): the marker with the order, then the lease
        # with a second look at the marker (a delivery that just finished sets the marker
        # and drops its lease in one transaction, so the pair sees one state or the other).
        sent, order = await asyncio.gather(
            redis.exists(sent_key), read_order(repository, job.order_id)
        )
        if sent:
            return Response.json({"status": "already_sent"})
        if order is None:
            raise HttpError(489, "Order no longer exists", headers=NON_RETRYABLE)
        if isinstance(order, Unreadable):
            raise HttpError(489, "Stored order is unreadable", headers=NON_RETRYABLE)
        message = build_message(order, email_from)  # pure; no retry can change its outcome
        token = secrets.token_hex(16)
        leased, sent = await asyncio.gather(
            redis.set(lease_key, token, px=LEASE_MS, nx=True), redis.exists(sent_key)
        )
        if not leased:
            raise HttpError(
                409, "Another delivery is sending this email", headers={"retry-after": "5"}
            )
        if sent:
            await delete_if_equals(redis, lease_key, token)
            return Response.json({"status": "already_sent"})
        # The budget counts emails sent, not attempts: a token is taken before the send (so
        # concurrent orders to one address cannot overshoot) and refunded when the attempt
        # fails. A refund after an email that was in fact sent is made up by the retry,
        # which takes a token again and gets the same email back (idempotency key).
        recipient = recipient_id(order.customer_email)
        rate_taken = False
        try:
            allowed = await recipient_limiter.limit(recipient)
            rate_taken = allowed.success and allowed.reason is None
            if not allowed.success:
                seconds = recipient_limiter.headers(allowed).get("Retry-After", "60")
                raise HttpError(
                    429, "Too many emails to this recipient", headers={"retry-after": seconds}
                )
            email_id = await sender.send(message, idempotency_key=f"order-confirmation/{order.id}")
        except EmailSendError as exc:
            await give_back(rate_taken, recipient, lease_key, token)
            if exc.retryable:
                raise HttpError(503, "Email provider unavailable; QStash will retry") from None
            raise HttpError(
                489, "Email provider refused the message", headers=NON_RETRYABLE
            ) from None
        except ValueError as exc:  # the send request could not be built: never will be
            await give_back(rate_taken, recipient, lease_key, token)
            log.warning("order %s: send request refused: %s", order.id, exc)
            raise HttpError(489, "Order cannot be emailed", headers=NON_RETRYABLE) from None
        except BaseException:
            await give_back(rate_taken, recipient, lease_key, token)
            raise
        try:
            marked = await mark_sent(redis, sent_key, lease_key, email_id)
        except BaseException:
            await give_back(rate_taken, recipient, lease_key, token)
            raise
        if not marked:
            # No marker: answering 200 would let a later duplicate delivery send again
            # unguarded. A 503 makes QStash retry; the provider's idempotency key makes
            # that retry return this same email instead of sending a second one.
            await give_back(rate_taken, recipient, lease_key, token)
            raise HttpError(503, "Could not record the sent email; QStash will retry")
        return Response.json({"status": "sent", "email_id": email_id})

    return router
