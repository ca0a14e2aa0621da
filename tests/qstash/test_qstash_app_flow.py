"""The app on QStash's flow control and operations, end to end on the fast devstack: the real
app (ASGI under uvicorn on loopback), QStash delivering its jobs, and an email provider
stand-in that measures how many sends it ever holds at once.

- A burst of 20 orders with EMAIL_SEND_PARALLELISM=1 reaches the provider one at a time,
  and every order gets exactly one email (the control run without flow control overlaps).
- `python -m tools.qstash schedule-flush` makes a schedule whose signed calls the flush
  endpoint accepts; the DLQ commands list, retry and delete; `log` shows a message's states.
- The flush endpoint takes a QStash signature or the cron secret, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web
from qstash_sink import InFlight, Sink

from devstack.dev import DEV_CRON_SECRET, app_env
from shared.jobs.outbox import OUTBOX_KEY, Job, Outbox
from shared.qstash import FlowControl, QStash, QStashAdmin
from shared.qstash.signing import delivery_claims, sign_jwt
from shared.redis import Redis
from shared.settings import EMAIL_FLOW_CONTROL_KEY
from tests.conftest import REPO_ROOT
from tests.support.loopback import loopback
from tests.support.served import served_app
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
T = TypeVar("T")
SEND_S = 0.05  # how long the provider takes per email (its own processing time)
FLUSH = "/api/cron/flush-outbox"


@dataclass
class EmailProvider:
    """A Resend-compatible `POST /emails` that records recipients and concurrency."""

    url: str = ""
    load: InFlight = field(default_factory=InFlight)
    recipients: list[str] = field(default_factory=list)

    async def send(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        await self.load.hold(SEND_S)
        self.recipients.extend(
            payload["to"] if isinstance(payload["to"], list) else [payload["to"]]
        )
        return web.json_response({"id": uuid.uuid4().hex})


@pytest.fixture
async def provider() -> AsyncIterator[EmailProvider]:
    result = EmailProvider()
    async with loopback(result.send, method="POST", path="/emails") as url:
        result.url = url
        yield result


def serve_app(stack: dict[str, Any], **overrides: str) -> AbstractContextManager[str]:
    """The app (ASGI adapter under uvicorn) on a free loopback port, on the devstack; its URL.
    A burst from one client: no API rate limit, no cap on concurrent order requests."""
    return served_app(
        lambda url: {
            **app_env(stack, url),
            "RATE_LIMIT": "1000/10s",
            "ORDER_CONCURRENCY": "0",
            **overrides,
        }
    )


def order(email: str) -> dict[str, Any]:
    return {
        "customer_email": email,
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 1250}],
    }


async def burst(app_url: str, provider: EmailProvider) -> list[str]:
    """20 orders at once; returns when QStash holds no more confirmation deliveries."""
    emails = [f"burst-{uuid.uuid4().hex[:10]}@example.com" for _ in range(20)]
    async with httpx.AsyncClient(base_url=app_url, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/orders", json=order(e), headers={"Idempotency-Key": uuid.uuid4().hex}
                )
                for e in emails
            )
        )
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers]

    async def all_sent() -> bool:
        return len([r for r in provider.recipients if r in emails]) >= 20

    await eventually(all_sent, "20 confirmation emails")
    return emails


@pytest.mark.parametrize(("parallelism", "overlaps"), [("1", False), ("off", True)])
async def test_burst_of_orders_reaches_the_provider_one_at_a_time(
    fast_stack: dict[str, Any],
    admin: QStashAdmin,
    provider: EmailProvider,
    parallelism: str,
    overlaps: bool,
) -> None:
    """With EMAIL_SEND_PARALLELISM=1 the provider never holds two sends at once and each of
    20 orders gets exactly one email; with flow control off the same burst overlaps."""
    with serve_app(
        fast_stack,
        EMAIL_API_URL=provider.url,
        EMAIL_SEND_PARALLELISM=parallelism,
        EMAIL_SEND_RATE="off" if parallelism == "off" else "100/1s",
    ) as app_url:
        emails = await burst(app_url, provider)
        if not overlaps:
            info = await admin.flow_control(EMAIL_FLOW_CONTROL_KEY)
            assert info.parallelism_max == 1

            async def drained() -> bool:
                state = await admin.flow_control(EMAIL_FLOW_CONTROL_KEY)
                return state.wait_list_size == 0 and state.parallelism_count == 0

            await eventually(drained, "the email key's wait list to drain")
    counts = Counter(r for r in provider.recipients if r in emails)
    assert sorted(counts.values()) == [1] * 20, counts
    if overlaps:
        assert provider.load.most > 1
    else:
        assert provider.load.most == 1


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m tools.qstash ...` with only the given environment."""
    return subprocess.run(
        [sys.executable, "-m", "tools.qstash", "--json", *args],
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_flush_schedule_and_dlq_commands(
    fast_stack: dict[str, Any], qstash_env: dict[str, str], admin: QStashAdmin, sink: Sink
) -> None:
    """schedule-flush makes signed calls the flush endpoint answers 200; dlq, dlq-retry,
    dlq-delete and log do what they say."""
    with serve_app(fast_stack) as app_url:
        env = {**qstash_env, "APP_URL": app_url}
        made = await asyncio.to_thread(cli, env, "schedule-flush", "--cron", "* * * * *")
        assert made.returncode == 0, made.stderr
        schedule_id = json.loads(made.stdout)["scheduleId"]
        schedule = await admin.get_schedule(schedule_id)
        assert schedule.destination == app_url + FLUSH and schedule.method == "GET"

        async def flushed() -> list[Any]:
            page = await admin.logs(state="DELIVERED")
            return [e for e in page.events if e.schedule_id == schedule_id]

        [delivered, *_] = await eventually(flushed, "a delivered flush call")
        assert delivered.response_status == 200 and delivered.url == app_url + FLUSH
        listed = await asyncio.to_thread(cli, env, "schedules")
        assert schedule_id in listed.stdout
        gone = await asyncio.to_thread(cli, env, "unschedule", schedule_id)
        assert gone.returncode == 0, gone.stderr
        assert schedule_id not in [s.schedule_id for s in await admin.list_schedules()]

        path = f"/dead-{uuid.uuid4().hex[:8]}"
        failing = True
        sink.scripts[path] = lambda n: (500, {}) if failing else (200, {})
        qstash = QStash.from_env(qstash_env)
        ids = [
            (await qstash.publish_json(sink.url(path), {"n": n}, retries=0)).message_id
            for n in range(2)
        ]
        await qstash.aclose()

        async def dead() -> list[Any]:
            run = await asyncio.to_thread(cli, env, "dlq", "--url", sink.url(path))
            assert run.returncode == 0, run.stderr
            entries = json.loads(run.stdout)
            return entries if len(entries) == 2 else []

        entries = await eventually(dead, "two dead letters")
        assert sorted(e["message"]["message_id"] for e in entries) == sorted(ids)
        first, second = entries
        failing = False
        retried = await asyncio.to_thread(cli, env, "dlq-retry", first["dlq_id"])
        assert retried.returncode == 0, retried.stderr
        new_id = json.loads(retried.stdout)[first["dlq_id"]]
        deliveries = await sink.wait_for(path, 3)
        assert deliveries[-1].headers["Upstash-Message-Id"] == new_id
        deleted = await asyncio.to_thread(cli, env, "dlq-delete", second["dlq_id"])
        assert deleted.returncode == 0 and json.loads(deleted.stdout) == {"deleted": 1}
        assert (
            json.loads((await asyncio.to_thread(cli, env, "dlq", "--url", sink.url(path))).stdout)
            == []
        )

        logged = await asyncio.to_thread(cli, env, "log", first["message"]["message_id"])
        states = [e["state"] for e in json.loads(logged.stdout)]
        assert states[0] == "CREATED" and states[-1] == "FAILED" and "ACTIVE" in states
        missing = await asyncio.to_thread(cli, env, "dlq-show", "dlq_missing")
        assert missing.returncode == 1 and "404" in missing.stderr
        unset = await asyncio.to_thread(cli, {"QSTASH_URL": qstash_env["QSTASH_URL"]}, "dlq")
        assert unset.returncode == 2 and "QSTASH_TOKEN" in unset.stderr


async def test_flush_endpoint_takes_a_qstash_signature_or_the_cron_secret(
    fast_stack: dict[str, Any],
) -> None:
    """Signed for the flush URL or with the cron secret: 200; forged, signed for another
    URL, or without either: 401; the OpenAPI document names both ways in."""
    key = str(fast_stack["qstash_current_signing_key"])

    def signature(url: str, signing_key: str = key) -> str:
        claims = delivery_claims(url, b"", now=time.time(), jwt_id=uuid.uuid4().hex)
        return sign_jwt(claims, signing_key)

    with serve_app(fast_stack) as app_url:
        async with httpx.AsyncClient(base_url=app_url, timeout=30) as client:
            cases = [
                ({"Upstash-Signature": signature(app_url + FLUSH)}, 200),
                ({"Authorization": f"Bearer {DEV_CRON_SECRET}"}, 200),
                ({"Upstash-Signature": signature(app_url + "/api/jobs/send-confirmation")}, 401),
                ({"Upstash-Signature": signature(app_url + FLUSH, "sig_wrong_key_123456")}, 401),
                ({"Upstash-Signature": "x.y.z"}, 401),
                ({"Authorization": "Bearer wrong"}, 401),
                ({}, 401),
            ]
            for headers, status in cases:
                response = await client.get(FLUSH, headers=headers)
                assert response.status_code == status, (headers.keys(), response.text)
                if status == 200:
                    assert set(response.json()) >= {"published", "remaining"}
                else:
                    assert response.json()["error"]
            document = (await client.get("/api/openapi.json")).json()
            flush = document["paths"][FLUSH]["get"]
            assert flush["security"] == [{"cronSecret": []}, {"qstashSignature": []}]


async def test_flushed_jobs_carry_the_flow_control_key(
    fast_stack: dict[str, Any], qstash: QStash, admin: QStashAdmin, sink: Sink
) -> None:
    """Jobs a flush publishes (QStash's batch API) carry the flow-control key too: all three
    count in the key's rate window."""
    key = f"flush-{uuid.uuid4().hex[:8]}"
    redis = Redis(str(fast_stack["redis_rest_url"]), str(fast_stack["redis_rest_token"]))
    outbox = Outbox(redis, qstash, flow_control=FlowControl(key, rate=100, period="1d"))
    path = f"/flushed-{key}"
    jobs = [
        Job(id=uuid.uuid4().hex, url=sink.url(path), body={"n": n}, dedup_id=uuid.uuid4().hex)
        for n in range(3)
    ]
    await redis.hset(OUTBOX_KEY, {job.id: job.to_json() for job in jobs})
    report = await outbox.flush()
    assert report.published >= 3
    await sink.wait_for(path, 3)
    info = await admin.flow_control(key)
    assert (info.rate_max, info.rate_count, info.rate_period) == (100, 3, 86_400)
