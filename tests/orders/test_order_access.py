"""Access tokens derived from the order id, idempotency scoped to the caller, replays after
`DELETE`, secret rotation and old records: in process (ASGI adapter + httpx.ASGITransport)
on a private devstack, so the jobs these orders publish disturb no other test."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from shared.errors import ConfigError
from shared.orders.models import OrderIn
from shared.orders.records import new_order_id, order_key
from shared.orders.service import idempotency_key
from shared.redis import Redis
from shared.settings import Settings
from tests.conftest import MINIMAL_ENV_NO_SECRET, Devstack, running_devstack
from tests.support.inprocess import AppClient, app_client, app_test_env

pytestmark = pytest.mark.integration
APP_URL = "http://127.0.0.1:9"  # nothing listens: jobs are published, never delivered
SECRET_A = "order-token-secret-a-" + "a" * 24
SECRET_B = "order-token-secret-b-" + "b" * 24
KEY_1 = "api-key-one-0123456789abcdef"
KEY_2 = "api-key-two-0123456789abcdef"


@pytest.fixture(scope="module")
def stack() -> Iterator[Devstack]:
    with running_devstack() as stack:
        yield stack


def client(stack: Devstack, **overrides: str) -> AbstractAsyncContextManager[AppClient]:
    """The app in process on `stack`, its tokens signed with SECRET_A unless overridden."""
    return app_client(app_test_env(stack, APP_URL, **{"ORDER_TOKEN_SECRET": SECRET_A, **overrides}))


def order_body(email: str | None = None) -> dict[str, Any]:
    return {
        "customer_email": email or f"access-{uuid.uuid4().hex[:8]}@example.com",
        "currency": "EUR",
        "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def raw_get(stack: Devstack, key: str) -> Any:
    redis = Redis(stack.redis_rest_url, stack.redis_rest_token)
    try:
        return await redis.get(key)
    finally:
        await redis.aclose()


async def test_replay_rebuilds_the_same_answer_from_the_order(stack: Devstack) -> None:
    """A replay answers the original 201 body and token (Idempotent-Replayed: true) while the
    idempotency record holds only state, digest, status and order id."""
    key = f"replay-{uuid.uuid4().hex}"
    body = order_body()
    async with client(stack) as c:
        first = await c.post("/api/orders", json=body, headers={"Idempotency-Key": key})
        second = await c.post("/api/orders", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert second.json() == first.json()
        oid, token = first.json()["order"]["id"], first.json()["access_token"]
        assert (await c.get(f"/api/orders/{oid}", headers=bearer(token))).status_code == 200
    stored = json.loads(await raw_get(stack, idempotency_key(key)))
    assert set(stored) == {"state", "since", "hash", "status", "order"}
    assert stored["order"] == oid and stored["state"] == "done"
    canonical = json.dumps(OrderIn.model_validate(body).model_dump(mode="json"), sort_keys=True)
    request_hash = hashlib.sha256(canonical.encode()).hexdigest()  # what api.py hashes
    assert stored["hash"] != request_hash  # keyed: a guessed email cannot be checked against it
    order = await raw_get(stack, order_key(oid))
    assert token not in order and "token" not in json.loads(order)


async def test_idempotency_keys_are_scoped_to_the_api_key(stack: Devstack) -> None:
    """With API_KEYS, a second key holder sending the same Idempotency-Key and body gets an
    order of its own, never the first holder's order, token or email."""
    key = f"scoped-{uuid.uuid4().hex}"
    body = order_body()
    async with client(stack, API_KEYS=f"{KEY_1},{KEY_2}") as c:
        mine = await c.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, "X-API-Key": KEY_1}
        )
        theirs = await c.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, "X-API-Key": KEY_2}
        )
        again = await c.post(
            "/api/orders", json=body, headers={"Idempotency-Key": key, "X-API-Key": KEY_1}
        )
        assert (mine.status_code, theirs.status_code, again.status_code) == (201, 201, 201)
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json()["order"]["id"] != mine.json()["order"]["id"]
        assert theirs.json()["access_token"] != mine.json()["access_token"]
        assert again.headers["idempotent-replayed"] == "true" and again.json() == mine.json()
        other = f"/api/orders/{theirs.json()['order']['id']}"
        assert (await c.get(other, headers=bearer(mine.json()["access_token"]))).status_code == 404


async def test_without_api_keys_a_replay_needs_the_same_body(stack: Devstack) -> None:
    """Without API_KEYS the key is global: another body under the same key is a 422 that
    reveals nothing of the first order."""
    key = f"global-{uuid.uuid4().hex}"
    async with client(stack) as c:
        first = await c.post("/api/orders", json=order_body(), headers={"Idempotency-Key": key})
        other = await c.post("/api/orders", json=order_body(), headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert other.status_code == 422
    assert first.json()["access_token"] not in other.text
    assert first.json()["order"]["id"] not in other.text


async def test_replay_after_delete_returns_nothing_of_the_order(stack: Devstack) -> None:
    """Once the order is DELETEd, replaying its creation is a 410 JSON error without the
    order's id, email or token."""
    key = f"deleted-{uuid.uuid4().hex}"
    body = order_body()
    async with client(stack) as c:
        created = await c.post("/api/orders", json=body, headers={"Idempotency-Key": key})
        oid, token = created.json()["order"]["id"], created.json()["access_token"]
        gone = await c.delete(f"/api/orders/{oid}", headers=bearer(token))
        assert gone.status_code == 204
        replay = await c.post("/api/orders", json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 410, replay.text
    assert replay.json() == {"error": "The order created with this Idempotency-Key was deleted"}
    assert replay.headers["content-type"].startswith("application/json")
    for secret in (oid, token, body["customer_email"]):
        assert secret not in replay.text


async def test_rotation_keeps_tokens_of_the_previous_secret(stack: Devstack) -> None:
    """A token issued under the current secret still opens the order after the secret moves to
    ORDER_TOKEN_SECRET_NEXT; new answers carry the new secret's token; once dropped, it fails."""
    key = f"rotate-{uuid.uuid4().hex}"
    body = order_body()
    async with client(stack) as before:
        created = await before.post("/api/orders", json=body, headers={"Idempotency-Key": key})
    oid, old_token = created.json()["order"]["id"], created.json()["access_token"]
    path = f"/api/orders/{oid}"
    async with client(
        stack, ORDER_TOKEN_SECRET=SECRET_B, ORDER_TOKEN_SECRET_NEXT=SECRET_A
    ) as rotated:
        assert (await rotated.get(path, headers=bearer(old_token))).status_code == 200
        replay = await rotated.post("/api/orders", json=body, headers={"Idempotency-Key": key})
        assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
        new_token = replay.json()["access_token"]
        assert new_token != old_token
        assert (await rotated.get(path, headers=bearer(new_token))).status_code == 200
    async with client(stack, ORDER_TOKEN_SECRET=SECRET_B) as after:
        assert (await after.get(path, headers=bearer(old_token))).status_code == 404
        assert (await after.get(path, headers=bearer(new_token))).status_code == 200


async def test_an_order_stored_by_an_older_release_still_opens(stack: Devstack) -> None:
    """A record with the old `token_sha256` field reads without error, opens with its old
    token and with the derived one, and never shows the digest."""
    oid = new_order_id()
    old_token = secrets.token_urlsafe(32)
    record = {
        "id": oid,
        "customer_email": "legacy@example.com",
        "items": [{"sku": "BOOK-1", "quantity": 1, "unit_price_cents": 100}],
        "currency": "EUR",
        "total_cents": 100,
        "created_at": "2026-01-01T00:00:00+00:00",
        "token_sha256": hashlib.sha256(old_token.encode()).hexdigest(),
    }
    redis = Redis(stack.redis_rest_url, stack.redis_rest_token)
    await redis.set(order_key(oid), json.dumps(record), ex=600)
    await redis.aclose()
    async with client(stack) as c:
        for _ in range(2):  # MISS, then from the cache
            opened = await c.get(f"/api/orders/{oid}", headers=bearer(old_token))
            assert opened.status_code == 200, opened.text
            assert "token_sha256" not in opened.json()
        wrong = await c.get(f"/api/orders/{oid}", headers=bearer(secrets.token_urlsafe(32)))
        assert wrong.status_code == 404


BASE = MINIMAL_ENV_NO_SECRET


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "ORDER_TOKEN_SECRET"),
        ({"ORDER_TOKEN_SECRET": "short-secret-value"}, "ORDER_TOKEN_SECRET"),
        (
            {"ORDER_TOKEN_SECRET": SECRET_A, "ORDER_TOKEN_SECRET_NEXT": "short-secret-value"},
            "ORDER_TOKEN_SECRET_NEXT",
        ),
    ],
)
def test_order_token_secret_is_required_and_long(env: dict[str, str], variable: str) -> None:
    """A missing or short secret is a ConfigError naming the variable, never echoing it."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE, **env})
    assert info.value.variable == variable
    assert "short-secret-value" not in str(info.value)


def test_order_token_secrets_stay_out_of_the_repr() -> None:
    """Both secrets are read and hidden from the settings' repr."""
    settings = Settings.from_env(
        {**BASE, "ORDER_TOKEN_SECRET": SECRET_A, "ORDER_TOKEN_SECRET_NEXT": SECRET_B}
    )
    assert (settings.order_token_secret, settings.order_token_secret_next) == (SECRET_A, SECRET_B)
    assert SECRET_A not in repr(settings) and SECRET_B not in repr(settings)
