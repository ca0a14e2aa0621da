"""Production features end to end on Vercel's real launcher behind the edge stand-in, on the
devstack: CORS and preflight, API keys, Deployment Protection bypass, preview URLs, deletion."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from shared.qstash.signing import delivery_claims, sign_jwt
from tests.conftest import Devstack
from tests.launcher.app_client import Api, ProtectedEdgeProxy, running_api
from tests.support.identities import fresh_address, unique_email
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.launcher, pytest.mark.integration]

SHOP = "https://shop.example.com"
KEY_A = "key-a-" + uuid.uuid4().hex
KEY_B = "key-b-" + uuid.uuid4().hex
KEY_BUDGET = "key-budget-" + uuid.uuid4().hex
BYPASS = "bypass-" + uuid.uuid4().hex
JOB_PATH = "/api/jobs/send-confirmation"


@pytest.fixture(scope="module")
def api(devstack: Devstack) -> Iterator[Api]:
    """A protected deployment with CORS for one origin, three API keys and the bypass secret."""
    with running_api(
        devstack,
        protection_bypass=BYPASS,
        CORS_ALLOW_ORIGINS=f"{SHOP},http://localhost:3000",
        API_KEYS=f"{KEY_A},{KEY_B},{KEY_BUDGET}",
        VERCEL_AUTOMATION_BYPASS_SECRET=BYPASS,
    ) as api:
        yield api


def until_429(call: Callable[[], httpx.Response], attempts: int = 12) -> httpx.Response:
    """Calls until the limiter denies (bounded): the approximated sliding window may allow one
    more request when a window boundary falls inside the burst."""
    for _ in range(attempts):
        response = call()
        if response.status_code == 429:
            return response
        assert response.status_code in (200, 201), response.text
    raise AssertionError(f"no 429 within {attempts} requests")


def preflight(api: Api, origin: str, *, ip: str | None = None, path: str = "/api/orders"):  # type: ignore[no-untyped-def]
    return api.request(
        "OPTIONS",
        path,
        ip=ip,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )


# -- CORS ------------------------------------------------------------------------------------


def test_preflight_from_an_allowed_origin(api: Api) -> None:
    """A preflight answers 204 with the path's methods, the API's headers, Max-Age, Vary."""
    response = preflight(api, SHOP)
    assert response.status_code == 204, response.text
    h = response.headers
    assert h["access-control-allow-origin"] == SHOP
    assert {"POST", "OPTIONS"} <= {m.strip() for m in h["access-control-allow-methods"].split(",")}
    assert "x-api-key" in h["access-control-allow-headers"]
    assert "idempotency-key" in h["access-control-allow-headers"]
    assert int(h["access-control-max-age"]) > 0
    assert "Origin" in h["vary"]
    assert "access-control-allow-credentials" not in h  # off by default


def test_preflight_from_another_origin_is_403_without_cors_headers(api: Api) -> None:
    """A preflight from an origin not in the list is a 403 JSON answer with no CORS headers."""
    response = preflight(api, "https://evil.example.net")
    assert response.status_code == 403
    assert response.json() == {"error": "Origin not allowed"}
    assert not any(k.startswith("access-control-") for k in response.headers)


def test_preflights_are_not_rate_limited(api: Api) -> None:
    """Ten preflights from one address leave its whole budget for the real requests."""
    ip = fresh_address()
    assert {preflight(api, SHOP, ip=ip).status_code for _ in range(10)} == {204}
    response = api.request("GET", "/api/health", ip=ip, headers={"Origin": SHOP})
    assert response.status_code == 200
    assert response.headers["x-ratelimit-remaining"] == "4"


def test_allowed_origin_gets_cors_headers_on_every_answer(api: Api) -> None:
    """200, 401, 404 and 429 answers all carry the CORS headers for an allowed origin."""
    ip = fresh_address()
    origin = {"Origin": "http://localhost:3000"}
    ok = api.request("GET", "/api/health", ip=ip, headers=origin)
    unauthorized = api.request("POST", "/api/orders", ip=ip, headers=origin, json={})
    missing = api.request("GET", "/api/nothing", ip=ip, headers=origin)
    assert [r.status_code for r in (ok, unauthorized, missing)] == [200, 401, 404]
    denied = until_429(lambda: api.request("GET", "/api/health", ip=ip, headers=origin))
    for response in (ok, unauthorized, missing, denied):
        assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "Origin" in response.headers["vary"]
        exposed = response.headers["access-control-expose-headers"]
        assert "x-request-id" in exposed and "retry-after" in exposed


def test_other_origin_gets_no_cors_headers(api: Api) -> None:
    """A request from an origin not in the list is served, without CORS headers."""
    response = api.request("GET", "/api/health", headers={"Origin": "https://evil.example.net"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert "Origin" in response.headers["vary"]  # caches must not mix the two answers


def test_plain_options_is_204_with_allow(api: Api) -> None:
    """OPTIONS without preflight headers answers 204 with Allow on a known path, 404 otherwise."""
    known = api.request("OPTIONS", "/api/orders/ord_AAAAAAAAAAAAAAAAAAAAAA")
    assert known.status_code == 204
    assert {m.strip() for m in known.headers["allow"].split(",")} == {
        "GET",
        "HEAD",
        "DELETE",
        "OPTIONS",
    }
    assert api.request("OPTIONS", "/api/not-a-route").status_code == 404


# -- API keys --------------------------------------------------------------------------------


def test_order_creation_requires_a_valid_key(api: Api) -> None:
    """No key or a wrong key is 401 JSON; each configured key works (rotation)."""
    missing = api.create_order(unique_email())
    wrong = api.create_order(unique_email(), **{"X-API-Key": KEY_A + "x"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"error": "Missing or invalid API key"}
    assert "x-ratelimit-limit" in wrong.headers  # failed attempts count against the IP
    for key in (KEY_A, KEY_B):
        assert api.create_order(unique_email(), **{"X-API-Key": key}).status_code == 201


def test_reads_need_no_key(api: Api) -> None:
    """The access token alone reads an order; API keys guard creation only."""
    created = api.create_order(unique_email(), **{"X-API-Key": KEY_A}).json()
    oid, token = created["order"]["id"], created["access_token"]
    assert api.request("GET", f"/api/orders/{oid}?token={token}").status_code == 200


def test_a_valid_key_has_its_own_budget(api: Api) -> None:
    """An address out of budget can still create with a key; the key's budget is shared across
    addresses and runs out on its own."""
    ip = fresh_address()
    until_429(lambda: api.request("GET", "/api/health", ip=ip))
    with_key = api.create_order(unique_email(), ip=ip, **{"X-API-Key": KEY_BUDGET})
    assert with_key.status_code == 201, with_key.text
    denied = until_429(
        lambda: api.create_order(unique_email(), ip=fresh_address(), **{"X-API-Key": KEY_BUDGET}),
        attempts=6,
    )
    assert denied.json() == {"error": "Too many requests"}


def test_keys_never_reach_the_logs(api: Api) -> None:
    """No configured key appears in the function's logs."""
    api.create_order(unique_email(), **{"X-API-Key": KEY_B})
    logs = "\n".join(m.text for m in api.launcher.messages if m.type == "log")
    assert KEY_A not in logs and KEY_B not in logs and KEY_BUDGET not in logs
    assert BYPASS not in logs


# -- Deployment Protection and previews ------------------------------------------------------


def test_bypass_secret_reaches_the_protected_job_endpoint(api: Api) -> None:
    """With the bypass secret set, QStash forwards it and the protected deployment gets the job:
    the email arrives, and the protection refused no delivery."""
    email = unique_email()
    assert api.create_order(email, **{"X-API-Key": KEY_A}).status_code == 201
    wait_for(lambda: api.emails_to(email), what="the confirmation email")
    assert isinstance(api.edge, ProtectedEdgeProxy)
    assert JOB_PATH not in api.edge.refused


def test_without_the_bypass_secret_protection_refuses_the_job(devstack: Devstack) -> None:
    """Control: without VERCEL_AUTOMATION_BYPASS_SECRET the protection answers QStash 401."""
    with running_api(devstack, protection_bypass=BYPASS) as api:
        assert api.create_order(unique_email()).status_code == 201
        assert isinstance(api.edge, ProtectedEdgeProxy)
        edge = api.edge
        wait_for(lambda: JOB_PATH in edge.refused, what="the refused delivery")


def test_preview_url_is_derived_from_vercel_url(devstack: Devstack) -> None:
    """Without APP_URL, signatures are checked against https://$VERCEL_URL (the preview's own
    URL) and the OpenAPI server is that URL."""
    preview = "my-app-git-feature-team.vercel.app"
    with running_api(devstack, APP_URL="", VERCEL_URL=preview) as api:
        body = b'{"orderId": "ord_AAAAAAAAAAAAAAAAAAAAAA"}'

        def deliver(url: str) -> int:
            claims = delivery_claims(url, body, now=time.time(), jwt_id=uuid.uuid4().hex)
            token = sign_jwt(claims, api.env["QSTASH_CURRENT_SIGNING_KEY"])
            headers = {"Upstash-Signature": token}
            return api.request("POST", JOB_PATH, content=body, headers=headers).status_code

        assert deliver(f"https://{preview}{JOB_PATH}") == 489  # verified; unknown order
        assert deliver(f"{api.url}{JOB_PATH}") == 401  # the edge URL is not this deployment's
        servers = api.request("GET", "/api/openapi.json").json()["servers"]
        assert servers == [{"url": f"https://{preview}"}]


# -- Deletion --------------------------------------------------------------------------------


def test_delete_erases_the_order_and_its_cache_entry(api: Api, devstack: Devstack) -> None:
    """DELETE with the access token answers 204 and removes the order and its cache entry;
    a wrong token and a second delete are 404."""
    created = api.create_order(unique_email(), **{"X-API-Key": KEY_A}).json()
    oid, token = created["order"]["id"], created["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert api.request("GET", f"/api/orders/{oid}", headers=auth).headers["x-cache"] == "MISS"
    direct = redis.Redis.from_url(devstack.redis_url)
    assert direct.exists(f"order:{oid}", f"cache:order:{oid}") == 2
    wrong = api.request("DELETE", f"/api/orders/{oid}", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 404
    deleted = api.request("DELETE", f"/api/orders/{oid}", headers=auth)
    assert deleted.status_code == 204, deleted.text
    assert direct.exists(f"order:{oid}", f"cache:order:{oid}") == 0
    assert api.request("GET", f"/api/orders/{oid}", headers=auth).status_code == 404
    assert api.request("DELETE", f"/api/orders/{oid}", headers=auth).status_code == 404
