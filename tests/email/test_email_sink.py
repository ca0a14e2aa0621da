"""The local email sink, driven by our EmailSender over HttpxTransport and by raw requests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack.email_sink.model import EmailDraft, parse_email
from devstack.email_sink.store import IDEMPOTENCY_TTL, EmailStore
from shared.http.httpx_transport import HttpxTransport
from shared.jobs.email import (
    EmailMessage,
    EmailSender,
    EmailSendError,
    OrderSummary,
    build_confirmation_email,
)

API_KEY = "re_devstack_test_key"
ORDER = OrderSummary(
    order_id="ord_5b1e0c",
    customer_email="ann@example.com",
    items=(("<b>SKU</b>", 3, 250),),
    currency="EUR",
    total_cents=750,
    created_at="2024-05-01T12:30:00+00:00",
)
MESSAGE = build_confirmation_email(ORDER, sender="Shop <orders@shop.example>")
VALID = {"from": "a@x.org", "to": "b@y.org", "subject": "Hi", "text": "hello"}


def sender_for(sink: Any, transport: HttpxTransport) -> EmailSender:
    return EmailSender(transport, sink.api_url, api_key=API_KEY)


async def emails(http: httpx.AsyncClient, sink: Any, **params: str) -> list[dict[str, Any]]:
    response = await http.get(f"{sink.api_url}/emails", params=params)
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_service_announces_its_urls(sink: Any) -> None:
    """start() returns exactly the API and inbox URLs on a loopback port."""
    assert set(sink.announced) == {"email_api_url", "email_inbox_url"}
    assert sink.api_url.startswith("http://127.0.0.1:")
    assert sink.inbox_url == sink.api_url + "/"


async def test_sent_email_is_captured(sink: Any, transport: HttpxTransport, http: Any) -> None:
    """An email sent by EmailSender appears in GET /emails and GET /emails/{id} with every field."""
    email_id = await sender_for(sink, transport).send(MESSAGE, idempotency_key="order/1")
    [stored] = await emails(http, sink)
    assert stored["id"] == email_id
    assert stored["from"] == MESSAGE.sender
    assert stored["to"] == [MESSAGE.to]
    assert stored["subject"] == MESSAGE.subject
    assert stored["html"] == MESSAGE.html and stored["text"] == MESSAGE.text
    assert stored["idempotency_key"] == "order/1"
    assert stored["created_at"].endswith("+00:00")
    one = await http.get(f"{sink.api_url}/emails/{email_id}")
    assert one.status_code == 200 and one.json() == stored


async def test_same_key_twice_stores_once(sink: Any, transport: HttpxTransport, http: Any) -> None:
    """Sending twice with one idempotency key returns the same id and stores one email."""
    sender = sender_for(sink, transport)
    first = await sender.send(MESSAGE, idempotency_key="order/2")
    second = await sender.send(MESSAGE, idempotency_key="order/2")
    assert first == second
    assert len(await emails(http, sink)) == 1
    replay = await http.post(
        f"{sink.api_url}/emails",
        json={"from": MESSAGE.sender, "to": [MESSAGE.to], "subject": MESSAGE.subject,
              "html": MESSAGE.html, "text": MESSAGE.text},
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "order/2"},
    )  # fmt: skip
    assert replay.json() == {"id": first}
    assert replay.headers["idempotent-replayed"] == "true"


async def test_same_key_other_payload_is_a_permanent_409(
    sink: Any, transport: HttpxTransport, http: Any
) -> None:
    """Reusing a key for a different payload answers 409 invalid_idempotent_request."""
    sender = sender_for(sink, transport)
    await sender.send(MESSAGE, idempotency_key="order/3")
    other = EmailMessage(MESSAGE.sender, MESSAGE.to, "Another subject", "t", "<p>h</p>")
    with pytest.raises(EmailSendError) as info:
        await sender.send(other, idempotency_key="order/3")
    assert info.value.status == 409 and not info.value.retryable
    assert info.value.code == "invalid_idempotent_request"
    assert len(await emails(http, sink)) == 1


async def test_distinct_keys_store_distinct_emails(
    sink: Any, transport: HttpxTransport, http: Any
) -> None:
    """Different idempotency keys are different emails, listed oldest first."""
    sender = sender_for(sink, transport)
    first = await sender.send(MESSAGE, idempotency_key="a")
    second = await sender.send(MESSAGE, idempotency_key="b")
    assert first != second
    assert [e["id"] for e in await emails(http, sink)] == [first, second]


async def test_missing_api_key_is_401(sink: Any, http: httpx.AsyncClient) -> None:
    """A send without a bearer key answers 401 in Resend's error shape and stores nothing."""
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        response = await http.post(f"{sink.api_url}/emails", json=VALID, headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "statusCode": 401,
            "name": "missing_api_key",
            "message": "Missing API key in the authorization header.",
        }
    assert await emails(http, sink) == []


@pytest.mark.parametrize(
    "payload",
    [
        {k: v for k, v in VALID.items() if k != "from"},
        {**VALID, "to": []},
        {**VALID, "to": ["ok@x.org", 3]},
        {**VALID, "to": "not-an-address"},
        {k: v for k, v in VALID.items() if k != "subject"},
        {"from": "a@x.org", "to": "b@y.org", "subject": "Hi"},
        {**VALID, "text": 42},
        ["not", "an", "object"],
    ],
)
async def test_invalid_payload_is_422(sink: Any, http: httpx.AsyncClient, payload: Any) -> None:
    """A body missing from/to/subject or both bodies answers 422 validation_error."""
    response = await http.post(
        f"{sink.api_url}/emails", json=payload, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["statusCode"] == 422 and body["name"] == "validation_error" and body["message"]


async def test_422_is_a_permanent_send_error(sink: Any, transport: HttpxTransport) -> None:
    """EmailSender turns the sink's 422 into EmailSendError(retryable=False)."""
    bad = EmailMessage(MESSAGE.sender, "nobody", MESSAGE.subject, MESSAGE.text, MESSAGE.html)
    with pytest.raises(EmailSendError) as info:
        await sender_for(sink, transport).send(bad, idempotency_key="order/4")
    assert info.value.status == 422 and not info.value.retryable
    assert info.value.code == "validation_error"


async def test_too_long_idempotency_key_is_400(sink: Any, http: httpx.AsyncClient) -> None:
    """An Idempotency-Key over 256 characters answers 400 invalid_idempotency_key."""
    response = await http.post(
        f"{sink.api_url}/emails",
        json=VALID,
        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": "k" * 257},
    )
    assert response.status_code == 400
    assert response.json()["name"] == "invalid_idempotency_key"


async def test_fail_next_500_is_retryable_and_the_retry_succeeds(
    sink: Any, transport: HttpxTransport, http: httpx.AsyncClient
) -> None:
    """An injected 500 raises a retryable error, stores nothing, and a retry then succeeds."""
    armed = await http.post(f"{sink.api_url}/_devstack/fail-next", json={"count": 2, "status": 500})
    assert armed.json() == {"count": 2, "status": 500}
    sender = sender_for(sink, transport)
    for _ in range(2):
        with pytest.raises(EmailSendError) as info:
            await sender.send(MESSAGE, idempotency_key="order/5")
        assert info.value.status == 500 and info.value.retryable
    assert await emails(http, sink) == []
    email_id = await sender.send(MESSAGE, idempotency_key="order/5")
    assert [e["id"] for e in await emails(http, sink)] == [email_id]


async def test_fail_next_429_carries_retry_after(
    sink: Any, transport: HttpxTransport, http: httpx.AsyncClient
) -> None:
    """An injected 429 with retry_after is retryable and exposes the delay."""
    await http.post(
        f"{sink.api_url}/_devstack/fail-next", json={"count": 1, "status": 429, "retry_after": 3}
    )
    with pytest.raises(EmailSendError) as info:
        await sender_for(sink, transport).send(MESSAGE, idempotency_key="order/6")
    assert info.value.retryable and info.value.retry_after == 3.0


@pytest.mark.parametrize(
    "spec", [{"count": -1}, {"status": 200}, {"status": "500"}, {"retry_after": -2}, [1]]
)
async def test_fail_next_validates_its_body(
    sink: Any, http: httpx.AsyncClient, spec: object
) -> None:
    """A malformed fail-next request answers 422 and arms nothing."""
    response = await http.post(f"{sink.api_url}/_devstack/fail-next", json=spec)
    assert response.status_code == 422
    assert sink.service.server.failures.remaining == 0


async def test_to_filter(sink: Any, transport: HttpxTransport, http: httpx.AsyncClient) -> None:
    """GET /emails?to= keeps emails for that address, matching any case and display names."""
    sender = sender_for(sink, transport)
    await sender.send(MESSAGE, idempotency_key="x1")
    other = EmailMessage(MESSAGE.sender, "Bob <bob@example.com>", "s", "t", "<p>h</p>")
    await sender.send(other, idempotency_key="x2")
    assert [e["to"] for e in await emails(http, sink, to="BOB@example.com")] == [
        ["Bob <bob@example.com>"]
    ]
    assert len(await emails(http, sink, to="ann@example.com")) == 1
    assert await emails(http, sink, to="nobody@example.com") == []


async def test_inbox_escapes_a_malicious_email(
    sink: Any, transport: HttpxTransport, http: httpx.AsyncClient
) -> None:
    """The inbox page escapes the subject and shows the HTML body only in a sandboxed iframe."""
    evil = EmailMessage(
        sender='"<img src=x onerror=alert(1)>" <evil@x.org>',
        to="ann@example.com",
        subject="<script>alert('subject')</script>",
        text="</pre><script>alert('text')</script>",
        html='<script>alert("body")</script><p>hi</p>',
    )
    await sender_for(sink, transport).send(evil, idempotency_key="evil")
    page = await http.get(sink.inbox_url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;alert(&#x27;subject&#x27;)&lt;/script&gt;" in text
    assert "<iframe sandbox " in text
    assert 'srcdoc="&lt;script&gt;alert(&quot;body&quot;)&lt;/script&gt;&lt;p&gt;hi' in text


async def test_html_body_route_is_sandboxed(
    sink: Any, transport: HttpxTransport, http: httpx.AsyncClient
) -> None:
    """GET /emails/{id}/html serves the body as HTML under a sandboxing CSP."""
    email_id = await sender_for(sink, transport).send(MESSAGE, idempotency_key="order/7")
    response = await http.get(f"{sink.api_url}/emails/{email_id}/html")
    assert response.status_code == 200 and response.text == MESSAGE.html
    assert response.headers["content-security-policy"].startswith("sandbox;")


async def test_unknown_routes_and_ids_answer_json_404(sink: Any, http: httpx.AsyncClient) -> None:
    """An unknown email id or path answers 404 in Resend's error shape."""
    for path in ("/emails/missing", "/emails/missing/html", "/nope"):
        response = await http.get(f"{sink.api_url}{path}")
        assert response.status_code == 404
        assert response.json()["statusCode"] == 404


async def test_delete_forgets_emails_and_keys(
    sink: Any, transport: HttpxTransport, http: httpx.AsyncClient
) -> None:
    """DELETE /emails empties the sink, so a later send with an old key is stored again."""
    sender = sender_for(sink, transport)
    first = await sender.send(MESSAGE, idempotency_key="order/8")
    cleared = await http.delete(f"{sink.api_url}/emails")
    assert cleared.json() == {"deleted": 1}
    assert await emails(http, sink) == []
    second = await sender.send(MESSAGE, idempotency_key="order/8")
    assert second != first and len(await emails(http, sink)) == 1


def draft(subject: str = "Hi") -> EmailDraft:
    """A valid parsed draft with the given subject."""
    return parse_email(json.dumps({**VALID, "subject": subject}).encode())


def test_idempotency_keys_expire_after_24_hours() -> None:
    """A key is honoured for 24 h of the store's clock and forgotten after, without sleeping."""
    now = [1_000_000.0]
    store = EmailStore(clock=lambda: now[0])
    first, created = store.add(draft(), "k")
    assert created
    now[0] += IDEMPOTENCY_TTL - 1
    assert store.add(draft(), "k") == (first, False)
    now[0] += 1
    second, created = store.add(draft("Other"), "k")  # a new payload is fine once expired
    assert created and second.id != first.id
    assert [e.id for e in store.list()] == [first.id, second.id]
