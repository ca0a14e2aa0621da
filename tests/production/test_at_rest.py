"""Nothing in Redis grants access: a full order flow on a PRIVATE devstack, then EVERY key read
back with the READ-ONLY REST token and every string in it tried as the order's access token."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Devstack, running_devstack
from tests.launcher.app_client import running_api
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.launcher, pytest.mark.integration]

API_KEY = "at-rest-api-key-0123456789"
_SEPARATORS = re.compile(r"[\s:,;/=&?\"'{}\[\]]+")


@pytest.fixture(scope="module")
def private_stack() -> Iterator[Devstack]:
    """A devstack only this module uses, so the dump holds this flow's keys alone."""
    with running_devstack() as stack:
        yield stack


def read_only(stack: Devstack, http: httpx.Client, *command: str | int) -> Any:
    """One Redis command over REST with the read-only token."""
    response = http.post(
        stack.redis_rest_url,
        json=[str(c) for c in command],
        headers={"Authorization": f"Bearer {stack.redis_rest_readonly_token}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["result"]


def dump(stack: Devstack, http: httpx.Client) -> dict[str, list[str]]:
    """Every key of the database and every string stored under it, read with the read-only token."""
    reads = {
        "string": ("GET",),
        "hash": ("HGETALL",),
        "list": ("LRANGE", 0, -1),
        "set": ("SMEMBERS",),
        "zset": ("ZRANGE", 0, -1, "WITHSCORES"),
    }
    keys: list[str] = []
    cursor = "0"
    while True:
        cursor, batch = read_only(stack, http, "SCAN", cursor, "COUNT", 500)
        keys.extend(batch)
        if str(cursor) == "0":
            break
    out: dict[str, list[str]] = {}
    for key in dict.fromkeys(keys):
        kind = read_only(stack, http, "TYPE", key)
        if kind == "stream":
            entries = read_only(stack, http, "XRANGE", key, "-", "+")
            values = [json.dumps(entries)]
        else:
            assert kind in reads, f"{key}: unexpected type {kind}"
            command, *args = reads[kind]
            result = read_only(stack, http, command, key, *args)
            values = result if isinstance(result, list) else [result]
        out[key] = [str(v) for v in values if v is not None]
    return out


def strings_in(text: str) -> set[str]:
    """`text`, its pieces between separators and, when it is JSON, every nested string."""
    found = {text, *(p for p in _SEPARATORS.split(text) if p)}
    try:
        data = json.loads(text)
    except ValueError:
        return found
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found |= strings_in(item) if item != text else {item}
        elif item is not None:
            found.add(str(item))
    return found


def test_a_read_only_dump_opens_no_order(private_stack: Devstack) -> None:
    """After create, replay, delivered job, MISS and HIT reads, no key name, value, hash field or
    JSON string in the whole database opens the order, and the access token appears nowhere."""
    email = f"at-rest-{uuid.uuid4().hex[:8]}@example.com"
    http = httpx.Client(timeout=30)
    with running_api(private_stack, API_KEYS=API_KEY, RATE_LIMIT="100000/10s") as api:
        headers = {"Idempotency-Key": f"rest-{uuid.uuid4().hex}", "X-API-Key": API_KEY}
        created = api.create_order(email, **headers)
        assert created.status_code == 201, created.text
        replay = api.create_order(email, **headers)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == created.json()
        oid, token = created.json()["order"]["id"], created.json()["access_token"]
        wait_for(lambda: api.emails_to(email), what="the confirmation email")
        path = f"/api/orders/{oid}"
        auth = {"Authorization": f"Bearer {token}"}
        reads = [api.request("GET", path, headers=auth) for _ in range(2)]
        assert [r.headers["x-cache"] for r in reads] == ["MISS", "HIT"]
        wait_for(lambda: not read_only(private_stack, http, "EXISTS", "outbox:jobs"), what="outbox")

        database = dump(private_stack, http)
        kinds = {k.split(":", 1)[0] for k in database}
        assert {"order", "idem", "email", "cache"} <= kinds, kinds  # the flow is all there
        everything = "\n".join([*database, *(v for vs in database.values() for v in vs)])
        assert token not in everything
        idem = [v for k, vs in database.items() if k.startswith("idem:") for v in vs]
        assert idem and not any(email in v for v in idem)  # no personal data either

        candidates: set[str] = set()
        for key, values in database.items():
            candidates |= strings_in(key)
            for value in values:
                candidates |= strings_in(value)
        tried = sorted(c for c in candidates if c.isascii() and c.isprintable() and c.strip())
        assert len(tried) > 50, tried  # the dump really was read
        opened = []
        for candidate in tried:
            answer = api.request("GET", path, headers={"Authorization": f"Bearer {candidate}"})
            if answer.status_code != 404:
                opened.append((candidate, answer.status_code))
        assert not opened, opened
        assert api.request("GET", path, headers=auth).status_code == 200  # the token still works
    http.close()
