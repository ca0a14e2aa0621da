"""Operational routes: `GET /api/health`, the outbox flush for cron, and the smoke-check job.

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

from shared.app.errors import HttpError
from shared.app.http import Request, Response
from shared.app.router import Router
from shared.errors import SignatureError, UpstashError
from shared.jobs.outbox import Outbox
from shared.qstash import Receiver
from shared.redis import Redis

CRON_PATH = "/api/cron/flush-outbox"
SMOKE_PATH = "/api/jobs/smoke"
SMOKE_TTL_S = 600
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NON_RETRYABLE = {"upstash-nonretryable-error": "true"}


def smoke_key(nonce: str) -> str:
    return f"smoke:{nonce}"


def health_routes(redis: Redis[Any]) -> Router:
    router = Router()

    @router.route("GET", "/api/health")
    async def health(request: Request) -> Response:
        started = time.perf_counter()
        try:
            await redis.with_options(timeout=2.0).ping()
        except UpstashError as exc:
            return Response.json(
                {"status": "degraded", "redis": {"ok": False, "error": type(exc).__name__}}, 503
            )
        latency = round((time.perf_counter() - started) * 1000, 1)
        return Response.json({"status": "ok", "redis": {"ok": True, "latency_ms": latency}})

    return router


def cron_routes(
    outbox: Outbox,
    cron_secret: str | None,
    *,
    receiver: Receiver | None = None,
    flush_url: str | None = None,
) -> Router:
    """Vercel Cron calls GET with `Authorization: Bearer $CRON_SECRET`; a QStash schedule
    (`python -m tools.qstash schedule-flush`) calls it signed (`Upstash-Signature`, checked
    against `flush_url`). Workers use `scheduled` instead; all of them flush the outbox."""
    router = Router()

    @router.route("GET", CRON_PATH)
    async def flush_outbox(request: Request) -> Response:
        signature = request.headers.get("upstash-signature")
        if signature is not None and receiver is not None and flush_url is not None:
            try:
                receiver.verify(signature, request.body, url=flush_url)
            except SignatureError as exc:
                raise HttpError(401, "Invalid signature", exc.reason) from None
        else:
            if cron_secret is None:
                raise HttpError(503, "CRON_SECRET is not configured")
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {cron_secret}".encode()):
                raise HttpError(401, "Unauthorized")
        report = await outbox.flush()
        return Response.json(
            {"published": report.published, "failed": report.failed, "remaining": report.remaining}
        )

    return router


def smoke_routes(redis: Redis[Any], receiver: Receiver, smoke_url: str) -> Router:
    """The smoke-check job: signature verified against `smoke_url`, arrival recorded."""
    router = Router()

    @router.route("POST", SMOKE_PATH)
    async def smoke(request: Request) -> Response:
        try:
            receiver.verify(request.headers.get("upstash-signature"), request.body, url=smoke_url)
        except SignatureError as exc:
            raise HttpError(401, "Invalid signature", exc.reason) from None
        try:
            nonce = json.loads(request.body).get("nonce")
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
