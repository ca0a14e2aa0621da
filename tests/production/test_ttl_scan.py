"""Every key the app writes expires: a full flow on a PRIVATE devstack, then a SCAN of its Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from shared.qstash.signing import delivery_claims, sign_jwt
from tests.conftest import Devstack, running_devstack
from tests.launcher.app_client import running_api
from tests.support.identities import fresh_address
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.launcher, pytest.mark.integration]

QSTASH_KEYS = "devstack:qstash:"  # the local QStash's own state, not the app's
RETENTION_S = 30 * 86400


@pytest.fixture(scope="module")
def private_stack() -> Iterator[Devstack]:
    """A devstack only this module uses, so the scan sees this flow's keys alone."""
    with running_devstack() as stack:
        yield stack


def test_every_key_the_app_writes_has_a_ttl(private_stack: Devstack) -> None:
    """Create with an Idempotency-Key, the job delivered, MISS/HIT reads, a 429, a deletion, a
    smoke record: afterwards every app key has a TTL, the order its ORDER_RETENTION."""
    direct = redis.Redis.from_url(private_stack.redis_url, decode_responses=True)
    with running_api(private_stack, ORDER_RETENTION="30d") as api:
        email = f"ttl-{uuid.uuid4().hex[:8]}@example.com"
        key = {"Idempotency-Key": f"ttl-{uuid.uuid4().hex}"}
        created = api.create_order(email, **key)
        assert created.status_code == 201, created.text
        assert api.create_order(email, **key).headers["idempotent-replayed"] == "true"
        oid, token = created.json()["order"]["id"], created.json()["access_token"]
        wait_for(lambda: api.emails_to(email), what="the confirmation email")
        wait_for(lambda: direct.exists(f"email:sent:{oid}"), what="the sent marker")

        auth = {"Authorization": f"Bearer {token}"}
        reads = [api.request("GET", f"/api/orders/{oid}", headers=auth) for _ in range(2)]
        assert [r.headers["x-cache"] for r in reads] == ["MISS", "HIT"]

        ip = fresh_address()
        statuses = [api.request("GET", "/api/health", ip=ip).status_code for _ in range(8)]
        assert 429 in statuses, statuses

        doomed = api.create_order(f"gone-{uuid.uuid4().hex[:8]}@example.com").json()
        doomed_auth = {"Authorization": f"Bearer {doomed['access_token']}"}
        doomed_id = doomed["order"]["id"]
        assert api.request("GET", f"/api/orders/{doomed_id}", headers=doomed_auth).is_success
        assert api.request("DELETE", f"/api/orders/{doomed_id}", headers=doomed_auth).is_success
        gone = api.request("GET", f"/api/orders/{doomed_id}", headers=doomed_auth)
        assert gone.status_code == 404  # a negative cache entry now

        nonce = uuid.uuid4().hex
        body = f'{{"nonce": "{nonce}"}}'.encode()
        claims = delivery_claims(
            api.env["APP_URL"] + "/api/jobs/smoke", body, now=time.time(), jwt_id=nonce
        )
        signature = sign_jwt(claims, api.env["QSTASH_CURRENT_SIGNING_KEY"])
        smoke = api.request(
            "POST", "/api/jobs/smoke", content=body, headers={"Upstash-Signature": signature}
        )
        assert smoke.status_code == 200

        last = api.request("GET", "/api/health")
        api.launcher.wait_for_end(api.edge.request_ids[last.headers["x-request-id"]])
        wait_for(lambda: not direct.exists("outbox:jobs"), what="an empty outbox")

    keys = [k for k in direct.scan_iter(count=500) if not k.startswith(QSTASH_KEYS)]
    without_ttl = {k: direct.pttl(k) for k in keys if direct.pttl(k) <= 0}
    assert not without_ttl, f"keys without a TTL: {without_ttl}"
    kinds = {k.split(":", 1)[0] for k in keys}
    # What the flow wrote: orders, idempotency, email marker and recipient limit, cache, the
    # API limiter, the smoke record.
    assert {"order", "idem", "email", "cache", "@upstash/ratelimit", "smoke"} <= kinds, kinds
    assert any(k.startswith("ratelimit:email") for k in keys), keys
    assert RETENTION_S - 120 < direct.ttl(f"order:{oid}") <= RETENTION_S
    assert not direct.exists(f"order:{doomed_id}")
