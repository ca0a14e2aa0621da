"""Assembling the app from settings: services built once per process, routes, middleware.

Both entrypoints call `build_app(env, transport=...)` once (on their first
request) and reuse the bundle; `error_reporter=` overrides `ERROR_REPORTER`
(`report_throttle=` gives a throttle with another clock, in tests).
Order creation needs pydantic; where it cannot be imported (offline Pyodide in
tests) that route answers a clear 503 and everything else works.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shared.app.system_routes import (
    cron_routes,
    dead_letter_routes,
    health_routes,
    smoke_routes,
)
from shared.background import defer
from shared.cache import Cache
from shared.http.transport import Transport
from shared.jobs.email import EmailSender
from shared.jobs.outbox import DeadJob, DeadLetterHook, Outbox
from shared.orders.api import order_routes_create
from shared.orders.confirmation import confirmation_routes, job_redis
from shared.orders.read_api import order_routes_read
from shared.orders.records import OrderTokens
from shared.orders.repository import RedisOrderRepository
from shared.orders.service import OrderService
from shared.qstash import QStash, Receiver
from shared.ratelimit import (
    ConcurrencyLimit,
    Protection,
    Ratelimit,
    fixed_window,
    sliding_window,
)
from shared.redis import Redis
from shared.routes import CONFIRMATION_JOB, DEAD_LETTER, FLUSH_OUTBOX, ORDERS, SMOKE_JOB, fill
from shared.settings import Settings
from shared.web.api_keys import ApiKeys, api_key_middleware, keyed_identifier
from shared.web.app import App, Middleware
from shared.web.concurrency import concurrency_middleware
from shared.web.content_type import json_body_middleware
from shared.web.cors import cors_middleware
from shared.web.http import Request, Response
from shared.web.ratelimiting import rate_limit_middleware
from shared.web.reporting import ErrorReport, ErrorReporter, ReportThrottle
from shared.web.router import Handler, Router

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """Per-process clients and helpers; they hold no per-request state."""

    redis: Redis[Any]
    limiter: Ratelimit
    recipient_limiter: Ratelimit
    cache: Cache
    qstash: QStash
    receiver: Receiver
    sender: EmailSender
    outbox: Outbox
    repository: RedisOrderRepository
    orders: OrderService
    tokens: OrderTokens
    order_slots: ConcurrencyLimit | None = None

    @classmethod
    def build(cls, settings: Settings, transport: Transport) -> Services:
        redis = Redis(settings.redis.url, settings.redis.token, transport=transport)
        qstash = QStash(settings.qstash_token, url=settings.qstash_url, transport=transport)
        outbox = Outbox(
            redis,
            qstash,
            forward_headers=settings.forward_headers,
            flow_control=settings.email_flow_control,
            on_dead_letter=dead_letter_reporter(settings.error_reporter),
        )
        tokens = OrderTokens(settings.order_token_secret, settings.order_token_secret_next)
        rate = settings.rate_limit
        email_rate = settings.email_rate_limit
        return cls(
            redis=redis,
            limiter=Ratelimit(
                redis,
                sliding_window(rate.tokens, rate.window),
                protection=_protection(settings, redis, transport),
            ),
            recipient_limiter=Ratelimit(
                redis, fixed_window(email_rate.tokens, email_rate.window), prefix="ratelimit:email"
            ),
            cache=Cache(redis, namespace="cache", ttl=settings.cache_ttl_s, negative_ttl="30s"),
            qstash=qstash,
            receiver=Receiver(
                settings.qstash_current_signing_key, settings.qstash_next_signing_key
            ),
            sender=EmailSender(transport, settings.email_api_url, api_key=settings.email_api_key),
            outbox=outbox,
            repository=RedisOrderRepository(redis),
            orders=OrderService(
                redis,
                outbox,
                tokens=tokens,
                job_url=settings.job_url,
                order_ttl_s=settings.order_retention_s,
            ),
            tokens=tokens,
            order_slots=(
                ConcurrencyLimit(redis, settings.order_concurrency, lease="30 s")
                if settings.order_concurrency
                else None
            ),
        )


def _protection(settings: Settings, redis: Redis[Any], transport: Transport) -> Protection | None:
    """Deny lists (README: "Rate limiting"), on when any protection setting asks for it."""
    wanted = settings.rate_limit_protection or settings.deny_countries
    if not wanted and settings.ip_deny_list_url is None:
        return None
    return Protection(
        redis,
        deny_countries=settings.deny_countries,
        ip_list_url=settings.ip_deny_list_url,
        transport=transport,
    )


@dataclass(frozen=True, slots=True)
class AppBundle:
    app: App
    settings: Settings
    services: Services

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes

    @property
    def client_ip_header(self) -> str | None:
        return self.settings.client_ip_header

    @property
    def country_header(self) -> str | None:
        return self.settings.country_header

    async def scheduled(self, cron: str = "") -> None:
        """The cron tick (Workers `scheduled`): flush the outbox as a safety net."""
        report = await self.services.outbox.flush()
        log.info(
            "cron %s: outbox published=%d remaining=%d", cron, report.published, report.remaining
        )


def dead_letter_reporter(reporter: ErrorReporter) -> DeadLetterHook:
    """Reports each dead-lettered outbox job once, through the app's error hook."""

    def report(letter: DeadJob) -> None:
        request_id = letter.job.body.get("requestId")
        reporter(
            ErrorReport(
                request_id=request_id if isinstance(request_id, str) else letter.job.id,
                status=letter.status,
                path=fill(DEAD_LETTER, id=letter.job.id),
                error_type="QStashError",
                message=f"Outbox job dead-lettered: {letter.error}"[:200],
            )
        )

    return report


def outbox_middleware(outbox: Outbox) -> Middleware:
    """After a successful request, flush the outbox in the background when a job may be due.
    Never after a rejected one (429, any 4xx or 5xx): refused traffic must not cost publishes."""

    async def middleware(request: Request, call_next: Handler) -> Response:
        response = await call_next(request)
        if response.status < 400 and request.path != FLUSH_OUTBOX and outbox.should_flush():
            defer(outbox.flush())
        return response

    return middleware


def _order_creation(services: Services, settings: Settings, keys: ApiKeys) -> Router:
    """`POST /api/orders` and the OpenAPI route; they load pydantic on their first request
    (and answer 503 where it cannot be imported), so building the app never imports it."""
    return order_routes_create(services.orders, settings.app_url, caller=keys.identity_of)


def build_app(
    env: Mapping[str, str],
    *,
    transport: Transport,
    error_reporter: ErrorReporter | None = None,
    report_throttle: ReportThrottle | None = None,
) -> AppBundle:
    settings = Settings.from_env(env)
    if error_reporter is not None:
        settings = replace(settings, error_reporter=error_reporter)
    services = Services.build(settings, transport)
    keys = ApiKeys(settings.api_keys)
    router = Router()
    router.include(health_routes(services.redis))
    router.include(smoke_routes(services.redis, services.receiver, settings.smoke_url))
    router.include(_order_creation(services, settings, keys))
    router.include(order_routes_read(services.repository, services.cache, services.tokens))
    router.include(
        confirmation_routes(
            redis=services.redis,
            receiver=services.receiver,
            job_url=settings.job_url,
            repository=RedisOrderRepository(job_redis(services.redis)),  # the job's deadlines
            sender=services.sender,
            email_from=settings.email_from,
            recipient_limiter=services.recipient_limiter,
        )
    )
    router.include(
        cron_routes(
            services.outbox,
            settings.cron_secret,
            receiver=services.receiver,
            flush_url=settings.flush_url,
        )
    )
    router.include(dead_letter_routes(services.outbox, settings.cron_secret))
    middleware = [
        cors_middleware(
            settings.cors_allow_origins,
            allowed_methods=router.allowed_methods,
            allow_credentials=settings.cors_allow_credentials,
        ),
        outbox_middleware(services.outbox),
        rate_limit_middleware(
            services.limiter,
            exempt={CONFIRMATION_JOB, FLUSH_OUTBOX, SMOKE_JOB},
            identify=keyed_identifier(keys),
        ),
        json_body_middleware(
            allowed_methods=router.allowed_methods, exempt={CONFIRMATION_JOB, SMOKE_JOB}
        ),
        api_key_middleware(keys, protected={("POST", ORDERS)}),
    ]
    if services.order_slots is not None:  # innermost: a refused key takes no slot
        middleware.append(
            concurrency_middleware(
                services.order_slots,
                routes={("POST", ORDERS)},
                identify=keyed_identifier(keys),
            )
        )
    app = App(
        router,
        middleware=middleware,
        error_reporter=settings.error_reporter,
        job_paths={CONFIRMATION_JOB, SMOKE_JOB},
        report_throttle=report_throttle,
    )
    return AppBundle(app, settings, services)
