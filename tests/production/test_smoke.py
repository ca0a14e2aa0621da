"""`make smoke`: the skip path, the whole check against the devstack, and the smoke route."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from shared.qstash.signing import delivery_claims, sign_jwt
from tests.conftest import REPO_ROOT, Devstack
from tests.launcher.app_client import Api, running_api

SMOKE_PATH = "/api/jobs/smoke"
BYPASS = "bypass-" + uuid.uuid4().hex
CREDENTIAL_VARS = ("UPSTASH_REDIS_REST", "KV_REST_API", "QSTASH_", "APP_URL")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_VARS)}


def run_smoke(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`tools/smoke.py` with no credential from this process's environment, only `env`'s."""
    return subprocess.run(
        [sys.executable, "tools/smoke.py"],
        cwd=REPO_ROOT,
        env={**clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_make_smoke_skips_without_credentials() -> None:
    """`make smoke` without Upstash credentials exits 0 and says what is missing."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", "setup", "smoke"],  # setup: `make test`'s job
        cwd=REPO_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped: UPSTASH_REDIS_REST_URL/UPSTASH_REDIS_REST_TOKEN" in result.stdout


@pytest.fixture(scope="module")
def api(devstack: Devstack) -> Iterator[Api]:
    """A protected deployment (bypass secret set) that the smoke check calls back."""
    with running_api(
        devstack, protection_bypass=BYPASS, VERCEL_AUTOMATION_BYPASS_SECRET=BYPASS
    ) as api:
        yield api


@pytest.mark.integration
@pytest.mark.launcher
def test_smoke_passes_against_the_devstack(api: Api, devstack: Devstack) -> None:
    """With credentials and APP_URL, every check passes, the QStash round trip included."""
    env = {
        "UPSTASH_REDIS_REST_URL": devstack.redis_rest_url,
        "UPSTASH_REDIS_REST_TOKEN": devstack.redis_rest_token,
        "QSTASH_URL": api.env["QSTASH_URL"],
        "QSTASH_TOKEN": api.env["QSTASH_TOKEN"],
        "APP_URL": api.url,
        "VERCEL_AUTOMATION_BYPASS_SECRET": BYPASS,
        "SMOKE_TIMEOUT": "30",
    }
    result = run_smoke(env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ok   redis commands" in out and "ok   rate limiter decision" in out
    assert "ok   QStash round trip" in out and "all checks passed" in out
    assert BYPASS not in out


@pytest.mark.integration
def test_smoke_fails_loudly_on_a_wrong_token(devstack: Devstack) -> None:
    """A wrong Redis token is a failure (exit 1) that names the error, not a skip."""
    env = {
        "UPSTASH_REDIS_REST_URL": devstack.redis_rest_url,
        "UPSTASH_REDIS_REST_TOKEN": "not-the-token",
    }
    result = run_smoke(env, timeout=60)
    assert result.returncode == 1
    assert "FAILED RedisAuthError" in result.stdout
    assert "not-the-token" not in result.stdout


@pytest.mark.integration
@pytest.mark.launcher
def test_smoke_route_verifies_and_records(api: Api, devstack: Devstack) -> None:
    """The smoke route records `smoke:{nonce}` (short TTL) for a signed call, 401 otherwise,
    489 for a payload without a nonce, and is exempt from the rate limit."""
    nonce = uuid.uuid4().hex
    body = f'{{"nonce": "{nonce}"}}'.encode()

    def call(payload: bytes, url: str, ip: str) -> int:
        claims = delivery_claims(url, payload, now=time.time(), jwt_id=uuid.uuid4().hex)
        token = sign_jwt(claims, api.env["QSTASH_CURRENT_SIGNING_KEY"])
        return api.request(
            "POST", SMOKE_PATH, ip=ip, content=payload, headers={"Upstash-Signature": token}
        ).status_code

    smoke_url = api.env["APP_URL"] + SMOKE_PATH
    assert call(body, smoke_url.replace("127.0.0.1", "localhost"), "198.18.0.1") == 401
    assert call(b'{"nonce": "x"}', smoke_url, "198.18.0.1") == 489
    assert [call(body, smoke_url, "198.18.0.1") for _ in range(7)] == [200] * 7
    ttl = redis.Redis.from_url(devstack.redis_url).pttl(f"smoke:{nonce}")
    assert 0 < ttl <= 600_000
