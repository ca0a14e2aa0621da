"""Operational routes: `GET /api/health` and the outbox flush for cron."""

from __future__ import annotations

import hmac
import time
from typing import Any

from shared.app.errors import HttpError
from shared.app.http import Request, Response
from shared.app.router import Router
from shared.errors import UpstashError
from shared.jobs.outbox import Outbox
from shared.redis import Redis

CRON_PATH = "/api/cron/flush-outbox"


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


def cron_routes(outbox: Outbox, cron_secret: str | None) -> Router:
    """Vercel Cron calls GET with `Authorization: Bearer $CRON_SECRET` (Workers use
    `scheduled` instead; both flush the outbox)."""
    router = Router()

    @router.route("GET", CRON_PATH)
    async def flush_outbox(request: Request) -> Response:
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
