"""Operational routes: `GET /api/health`, the outbox flush for cron, the outbox's dead letters,
and the smoke-check job.

The cron and dead-letter routes need `Authorization: Bearer $CRON_SECRET` (401 without it,
503 when `CRON_SECRET` is not set):

    GET    /api/admin/outbox/dead              {"dead": [{"id", "status", "error", ...}]}
    POST   /api/admin/outbox/dead/{id}/retry   back into the outbox, published now
    DELETE /api/admin/outbox/dead/{id}         dropped for good (204)

`POST /api/jobs/smoke` is the far end of `make smoke`'s round trip: QStash delivers
`{"nonce": ...}`; the route verifies the signature against `{APP_URL}/api/jobs/smoke`
and records `smoke:{nonce}` (10 minutes) in Redis, where the smoke tool looks for it.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from typing import Any

from shared.errors import SignatureError, UpstashError
from shared.jobs.outbox import Outbox
from shared.qstash import NON_RETRYABLE, Receiver
from shared.redis import Redis
from shared.routes import (
    DEAD_LETTER,
    DEAD_LETTER_RETRY,
    DEAD_LETTERS,
    FLUSH_OUTBOX,
    HEALTH,
    SMOKE_JOB,
    SMOKE_NONCE_PATTERN,
)
from shared.web.app import record_failure
from shared.web.errors import HttpError
from shared.web.http import Request, Response, loads_bounded
from shared.web.router import Router

SMOKE_TTL_S = 600
_NONCE = re.compile(SMOKE_NONCE_PATTERN)


def smoke_key(nonce: str) -> str:
    return f"smoke:{nonce}"


def health_routes(redis: Redis[Any]) -> Router:
    router = Router()

    @router.route("GET", HEALTH)
    async def health(request: Request) -> Response:
        started = time.perf_counter()
        try:
            await redis.with_options(timeout=2.0, total_timeout=True).ping()
        except UpstashError as exc:
            record_failure(exc)  # reported as the outage it is (throttled), not per request
            return Response.json(
                {"status": "degraded", "redis": {"ok": False, "error": type(exc).__name__}}, 503
            )
        latency = round((time.perf_counter() - started) * 1000, 1)
        return Response.json({"status": "ok", "redis": {"ok": True, "latency_ms": latency}})

    return router


def require_cron_secret(request: Request, cron_secret: str | None) -> None:
    """503 when no secret is configured, 401 unless `Authorization: Bearer <secret>`."""
    if cron_secret is None:
        # Anyone can cause this answer: reported throttled, not once per request.
        raise HttpError(503, "CRON_SECRET is not configured", report_throttled=True)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {cron_secret}".encode()):
        raise HttpError(401, "Unauthorized")


def cron_routes(
    outbox: Outbox,
    cron_secret: str | None,
    *,
    receiver: Receiver | None = None,
    flush_url: str | None = None,
) -> Router:
    """Vercel Cron calls GET with `Authorization: Bearer $CRON_SECRET`; a QStash schedule
    (`python -m tools.qstash schedule-flush`) calls it signed (`Upstash-Signature`, checked
    against `flush_url`). Workers use `scheduled` instead; all of them flush the outbox,
    bounded in time and subrequests."""
    router = Router()

    @router.route("GET", FLUSH_OUTBOX)
    async def flush_outbox(request: Request) -> Response:
        signature = request.headers.get("upstash-signature")
        if signature is not None and receiver is not None and flush_url is not None:
            try:
                receiver.verify(signature, request.body, url=flush_url)
            except SignatureError as exc:
                raise HttpError(401, "Invalid signature", exc.reason) from None
        else:
            require_cron_secret(request, cron_secret)
        report = await outbox.flush()
        return Response.json(
            {
                "published": report.published,
                "failed": report.failed,
                "dead": report.dead,
                "remaining": report.remaining,
            }
        )

    return router


def dead_letter_routes(outbox: Outbox, cron_secret: str | None) -> Router:
    """List, replay and drop the jobs QStash refused permanently (CRON_SECRET bearer)."""
    router = Router()

    @router.route("GET", DEAD_LETTERS)
    async def list_dead(request: Request) -> Response:
        require_cron_secret(request, cron_secret)
        letters = await outbox.dead_letters()
        return Response.json(
            {
                "dead": [
                    {
                        "id": d.job.id,
                        "url": d.job.url,
                        "body": d.job.body,
                        "attempts": d.job.attempts,
                        "status": d.status,
                        "error": d.error,
                        "failed_at_ms": d.failed_at_ms,
                    }
                    for d in letters
                ]
            }
        )

    @router.route("POST", DEAD_LETTER_RETRY)
    async def retry_dead(request: Request) -> Response:
        require_cron_secret(request, cron_secret)
        outcome = await outbox.replay(request.path_params["id"])
        if outcome is None:
            raise HttpError(404, "No such dead letter")
        if outcome == "dead":
            raise HttpError(409, "QStash refused the job again; it is back in the dead letters")
        return Response.json({"status": outcome}, 200 if outcome == "published" else 202)

    @router.route("DELETE", DEAD_LETTER)
    async def drop_dead(request: Request) -> Response:
        require_cron_secret(request, cron_secret)
        if not await outbox.discard(request.path_params["id"]):
            raise HttpError(404, "No such dead letter")
        return Response(204)

    return router


def smoke_routes(redis: Redis[Any], receiver: Receiver, smoke_url: str) -> Router:
    """The smoke-check job: signature verified against `smoke_url`, arrival recorded."""
    router = Router()

    @router.route("POST", SMOKE_JOB)
    async def smoke(request: Request) -> Response:
        try:
            receiver.verify(request.headers.get("upstash-signature"), request.body, url=smoke_url)
        except SignatureError as exc:
            raise HttpError(401, "Invalid signature", exc.reason) from None
        try:
            nonce = loads_bounded(request.body).get("nonce")
        except (ValueError, UnicodeDecodeError, AttributeError):
            nonce = None
        if not isinstance(nonce, str) or not _NONCE.match(nonce):
            raise HttpError(489, "Smoke payload needs a nonce", headers=NON_RETRYABLE)
        arrival = {
            "at_ms": int(time.time() * 1000),
            "message_id": request.headers.get("upstash-message-id"),
            "retried": request.headers.get("upstash-retried"),
        }
        await redis.set(smoke_key(nonce), json.dumps(arrival), ex=SMOKE_TTL_S)
        return Response.json({"status": "recorded"})

    return router
