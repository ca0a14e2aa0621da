"""The console in a real browser: an order made through the API shows up, live, as a request
with its Redis round trips, a delivered job and an email; a failing job shows its attempts,
lands in the DLQ view, and the view's Retry button delivers it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.browser.conftest import ARTIFACTS, Stack

pytestmark = pytest.mark.browser

FEW_SECONDS_MS = 5000


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def create_order(stack: Stack, email: str) -> dict[str, Any]:
    answer = httpx.post(
        stack.api_url + "/api/orders",
        headers={"Idempotency-Key": uuid.uuid4().hex},
        json={
            "customer_email": email,
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    order: dict[str, Any] = answer.json()
    return order


def fail_next_sends(stack: Stack, count: int) -> None:
    answer = httpx.post(
        f"{stack.info['email_api_url']}/_devstack/fail-next",
        json={"count": count, "status": 500},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_order_shows_its_request_round_trips_delivered_job_and_email(
    stack: Stack, page: Any
) -> None:
    """Within a few seconds of POST /api/orders the console shows the request with its Redis
    round trips and the published message, the job delivered, and the email rendered."""
    expect = _expect()
    page.goto(stack.console_url + "/")
    order = create_order(stack, f"ada+{uuid.uuid4().hex[:6]}@example.com")
    order_id = order["order"]["id"]

    row = page.locator("tr.request", has_text="/api/orders").first
    expect(row).to_contain_text("201", timeout=FEW_SECONDS_MS)
    expect(row.locator(".roundtrips")).to_contain_text("round trip")
    expect(row.locator(".publishes")).to_contain_text("msg_")
    expect(row.locator(".publishes")).to_contain_text("/api/jobs/send-confirmation")
    job = page.locator("tr.request", has_text="/api/jobs/send-confirmation").first
    expect(job).to_contain_text("200", timeout=FEW_SECONDS_MS)
    expect(job).to_contain_text("QStash delivery msg_")
    shot(page, "requests")

    message_id = row.locator(".publishes .mono").first.inner_text().split(" ")[0]
    page.goto(stack.console_url + "/console/qstash")
    message = page.locator(f'tr.message[data-message-id="{message_id}"]')
    expect(message.locator(".state")).to_have_text("delivered", timeout=FEW_SECONDS_MS)
    expect(message.locator(".attempt")).to_have_count(1)
    expect(message.locator(".attempt")).to_contain_text("200")
    shot(page, "qstash")

    page.goto(stack.console_url + "/console/emails")
    expect(page.locator("#emails tr.email").first).to_be_visible(timeout=FEW_SECONDS_MS)
    page.reload()  # the viewer shows the newest email as the recipient sees it
    viewer = page.frame_locator("#viewer")
    expect(viewer.locator("body")).to_contain_text(order_id, timeout=FEW_SECONDS_MS)
    shot(page, "emails")

    read = httpx.get(
        f"{stack.api_url}/api/orders/{order_id}",
        headers={"Authorization": f"Bearer {order['access_token']}"},
        timeout=5,
    )
    assert read.status_code == 200
    page.goto(stack.console_url + "/console/redis")
    expect(page.locator("#cache")).to_contain_text("cache:", timeout=FEW_SECONDS_MS)
    expect(page.locator("#ratelimit")).to_contain_text("@upstash/ratelimit")
    expect(page.locator("#analytics rect.allowed").first).to_be_attached()
    shot(page, "redis")

    page.goto(stack.console_url + "/console/outbox")
    expect(page.locator("#outbox-empty")).to_be_visible(timeout=FEW_SECONDS_MS)
    shot(page, "outbox")


def test_a_failing_job_shows_attempts_lands_in_the_dlq_and_retry_delivers_it(
    stack: Stack, page: Any
) -> None:
    """A job whose every send fails shows each attempt, then sits in the DLQ view; its Retry
    button publishes it again and the retried message is delivered with its email."""
    expect = _expect()
    fail_next_sends(stack, 4)  # the job's first try and its 3 retries
    email = f"grace+{uuid.uuid4().hex[:6]}@example.com"
    order = create_order(stack, email)
    order_id = order["order"]["id"]

    page.goto(stack.console_url + "/console/qstash")
    dead = page.locator("#dlq tr.dlq").first
    expect(dead).to_be_visible(timeout=FEW_SECONDS_MS)
    message_id = dead.get_attribute("data-message-id")
    message = page.locator(f'tr.message[data-message-id="{message_id}"]')
    expect(message.locator(".state")).to_have_text("dead-lettered")
    expect(message.locator(".attempt")).to_have_count(4)
    for retried in range(4):
        expect(message.locator(".attempt").nth(retried)).to_contain_text(f"#{retried}")
        expect(message.locator(".attempt").nth(retried)).to_contain_text("503")
    shot(page, "dlq")

    dead.locator("button.retry").click()
    expect(page.locator("#dlq tr.dlq")).to_have_count(0, timeout=FEW_SECONDS_MS)
    retried_row = page.locator("tr.message", has_text=f"retry of {message_id}")
    expect(retried_row.locator(".state")).to_have_text("delivered", timeout=FEW_SECONDS_MS)
    expect(retried_row.locator(".attempt")).to_contain_text("200")
    expect(message.locator(".state")).to_have_text("dead-lettered, retried")
    shot(page, "dlq-retried")

    emails = httpx.get(f"{stack.info['email_api_url']}/emails", params={"to": email}, timeout=5)
    assert [order_id in e["text"] or order_id in e["html"] for e in emails.json()["data"]] == [True]


def test_the_dlq_delete_button_drops_the_dead_job(stack: Stack, page: Any) -> None:
    """Delete in the DLQ view removes the entry; the message shows as deleted and no email
    is sent for it."""
    expect = _expect()
    fail_next_sends(stack, 4)
    email = f"linus+{uuid.uuid4().hex[:6]}@example.com"
    create_order(stack, email)
    page.goto(stack.console_url + "/console/qstash")
    dead = page.locator("#dlq tr.dlq").first
    expect(dead).to_be_visible(timeout=FEW_SECONDS_MS)
    message_id = dead.get_attribute("data-message-id")
    dead.locator("button.delete").click()
    expect(page.locator("#dlq tr.dlq")).to_have_count(0, timeout=FEW_SECONDS_MS)
    message = page.locator(f'tr.message[data-message-id="{message_id}"]')
    expect(message.locator(".state")).to_have_text("dead-lettered, deleted")
    emails = httpx.get(f"{stack.info['email_api_url']}/emails", params={"to": email}, timeout=5)
    assert emails.json()["data"] == []


def test_the_outbox_view_shows_waiting_and_dead_jobs_with_attempts(stack: Stack, page: Any) -> None:
    """A job waiting in `outbox:jobs` shows its attempts and next attempt time, and a job in
    `outbox:dead` shows QStash's refusal (records written as the outbox writes them)."""
    import time

    import redis as redis_py

    from shared.jobs.outbox_records import DEAD_KEY, OUTBOX_KEY, DeadJob, Job

    expect = _expect()
    now = int(time.time() * 1000)
    waiting = Job(
        "job-wait", "http://127.0.0.1:9/api/jobs/x", {}, "d1", attempts=2, next_at_ms=now + 600_000
    )
    dead = DeadJob(
        Job("job-dead", "http://127.0.0.1:9/api/jobs/y", {}, "d2", attempts=1),
        400,
        "invalid destination",
        now,
    )
    direct = redis_py.Redis.from_url(stack.info["redis_url"])
    try:
        direct.hset(OUTBOX_KEY, waiting.id, waiting.to_json())
        direct.hset(DEAD_KEY, "job-dead", dead.to_json())
        page.goto(stack.console_url + "/console/outbox")
        jobs = page.locator("tr.job", has_text="job-wait")
        expect(jobs).to_contain_text("2", timeout=FEW_SECONDS_MS)
        expect(jobs).not_to_contain_text("now")
        expect(page.locator("tr.job", has_text="job-dead")).to_contain_text("invalid destination")
        shot(page, "outbox-jobs")
    finally:
        direct.hdel(OUTBOX_KEY, waiting.id)
        direct.hdel(DEAD_KEY, "job-dead")
        direct.close()
