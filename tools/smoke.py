"""`make smoke`: check our clients against the REAL Upstash Redis and QStash.

Our client and our local stand-ins (devstack) encode our reading of the protocols;
this is how a user checks that reading against the real services, with credentials
from the environment:

- UPSTASH_REDIS_REST_URL / _TOKEN (or Vercel's KV_REST_API_URL / _TOKEN): our Redis
  client's commands (SET/GET/INCR, pipeline, MULTI/EXEC, EVAL/EVALSHA, PTTL) under a
  unique key prefix that is deleted afterwards, and one rate-limit decision.
- QSTASH_TOKEN (+ QSTASH_URL for a regional endpoint) and APP_URL (a deployment of
  this app using the SAME Redis): one signed round trip. A message with a nonce is
  published to {APP_URL}/api/jobs/smoke; the deployment verifies the signature and
  records `smoke:{nonce}`, which this script waits for (SMOKE_TIMEOUT, default 60 s).
  VERCEL_AUTOMATION_BYPASS_SECRET is forwarded when set (protected previews).

Without Redis credentials it prints why it skipped and exits 0. Exit 1 on a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.app.system_routes import smoke_key
from shared.errors import ConfigError, UpstashError
from shared.http import HttpxTransport
from shared.qstash import QStash
from shared.ratelimit import Ratelimit, sliding_window
from shared.redis import Redis, Script
from shared.redis.config import endpoint_from_env
from shared.routes import SMOKE_JOB, public_url

SKIP_MESSAGE = (
    "smoke: skipped: UPSTASH_REDIS_REST_URL/UPSTASH_REDIS_REST_TOKEN "
    "(or KV_REST_API_URL/KV_REST_API_TOKEN) not set"
)
ECHO = Script("return {KEYS[1], ARGV[1], redis.call('INCRBY', KEYS[1], ARGV[1])}")


class SmokeFailure(Exception):
    pass


def expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise SmokeFailure(f"{what}: expected {want!r}, got {got!r}")


async def check_redis(redis: Redis[str], prefix: str) -> None:
    key, counter = f"{prefix}value", f"{prefix}counter"
    expect("SET", await redis.set(key, "héllo ✓", ex=60), True)
    expect("GET (UTF-8 round trip)", await redis.get(key), "héllo ✓")
    expect("INCR", await redis.incr(counter), 1)
    ttl = await redis.pttl(key)
    if not 0 < ttl <= 60_000:
        raise SmokeFailure(f"PTTL: expected 0 < ttl <= 60000, got {ttl}")
    pipe = redis.pipeline()
    pipe.incr(counter)
    pipe.get(key)
    pipe.expire(counter, 60)
    expect("pipeline", await pipe.exec(), [2, "héllo ✓", True])
    tx = redis.multi()
    tx.incrby(counter, 10)
    tx.get(counter)
    expect("MULTI/EXEC", await tx.exec(), [12, "12"])
    expect("EVALSHA/EVAL", await ECHO.run(redis, [counter], [3]), [counter, "3", 15])
    loaded = await redis.evalsha(ECHO.sha, [counter], [0])
    expect("EVALSHA (script loaded)", loaded, [counter, "0", 15])


async def check_limiter(redis: Redis[str], prefix: str) -> None:
    limiter = Ratelimit(redis, sliding_window(2, "10s"), prefix=f"{prefix}ratelimit")
    first = await limiter.limit("smoke")
    await limiter.reset_used_tokens("smoke")
    if not first.success or first.reason is not None or first.remaining != 1:
        raise SmokeFailure(f"rate limit: expected an allowed decision with 1 left, got {first}")


async def check_round_trip(
    redis: Redis[str], qstash: QStash, app_url: str, env: Mapping[str, str], timeout: float
) -> str:
    nonce = secrets.token_urlsafe(18)
    bypass = (env.get("VERCEL_AUTOMATION_BYPASS_SECRET") or "").strip()
    headers = {"x-vercel-protection-bypass": bypass} if bypass else {}
    published = await qstash.publish_json(
        public_url(app_url, SMOKE_JOB), {"nonce": nonce}, retries=0, headers=headers
    )
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        if await redis.get(smoke_key(nonce)) is not None:
            await redis.delete(smoke_key(nonce))
            return published.message_id
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise SmokeFailure(
        f"QStash round trip: {smoke_key(nonce)} did not appear within {timeout:g}s "
        f"(message {published.message_id}). Does {app_url} run this app with the same "
        "Redis, signing keys and APP_URL? Check the QStash console's logs/DLQ."
    )


async def run(env: Mapping[str, str], out: Callable[[str], None] = print) -> int:
    try:
        endpoint = endpoint_from_env(env)
    except ConfigError:
        out(SKIP_MESSAGE)
        return 0
    transport = HttpxTransport()
    redis = Redis(endpoint.url, endpoint.token, transport=transport)
    prefix = f"smoke:{secrets.token_hex(8)}:"

    async def step(name: str, check: Awaitable[object]) -> object:
        result = await check
        out(f"smoke: ok   {name}")
        return result

    try:
        await step(f"redis commands against {endpoint.url}", check_redis(redis, prefix))
        await step("rate limiter decision", check_limiter(redis, prefix))
        app_url = (env.get("APP_URL") or "").strip().rstrip("/")
        token = (env.get("QSTASH_TOKEN") or "").strip()
        if app_url and token:
            qstash_url = (env.get("QSTASH_URL") or "").strip() or "https://qstash.upstash.io"
            qstash = QStash(token, url=qstash_url, transport=transport)
            timeout = float(env.get("SMOKE_TIMEOUT") or 60)
            message = await step(
                f"QStash round trip {qstash_url} -> {public_url(app_url, SMOKE_JOB)}",
                check_round_trip(redis, qstash, app_url, env, timeout),
            )
            out(f"smoke: message {message} delivered, signature verified by the deployment")
        else:
            out("smoke: skipped the QStash round trip: APP_URL and QSTASH_TOKEN are not both set")
    except (SmokeFailure, UpstashError) as exc:
        out(f"smoke: FAILED {type(exc).__name__}: {exc}")
        return 1
    finally:
        try:
            await redis.delete(f"{prefix}value", f"{prefix}counter")
        except UpstashError:
            out("smoke: warning: could not delete the smoke keys (they expire within 60 s)")
        await transport.aclose()
    out("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(os.environ)))
