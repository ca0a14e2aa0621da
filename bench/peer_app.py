"""The peer app for `make bench`: FastAPI with the official upstash-redis and upstash-ratelimit
SDKs doing what our `GET /api/orders/{id}` does on a cache hit: rate limit the caller,
cache-aside read of the order, JSON answer. `GET /api/health` pings Redis, like ours.

Run with `uvicorn bench.peer_app:app`; reads UPSTASH_REDIS_REST_URL/_TOKEN.
"""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from upstash_ratelimit.asyncio import Ratelimit, SlidingWindow
from upstash_redis.asyncio import Redis

redis = Redis(
    url=os.environ["UPSTASH_REDIS_REST_URL"], token=os.environ["UPSTASH_REDIS_REST_TOKEN"]
)
limiter = Ratelimit(
    redis=redis, limiter=SlidingWindow(max_requests=1_000_000_000, window=10), prefix="peer"
)
app = FastAPI()


@app.get("/api/health")
async def health() -> dict[str, Any]:
    return {"status": "ok", "redis": {"ok": bool(await redis.ping())}}


@app.get("/api/orders/{order_id}")
async def get_order(order_id: str, request: Request) -> Any:
    ip = request.client.host if request.client else "unknown"
    decision = await limiter.limit(f"ip:{ip}")
    if not decision.allowed:
        raise HTTPException(status_code=429, detail="Too many requests")
    cache_key = f"peer-cache:order:{order_id}"
    cached = await redis.get(cache_key)
    if cached:
        return json.loads(cached)
    stored = await redis.get(f"order:{order_id}")
    if stored is None:
        raise HTTPException(status_code=404, detail="Order not found")
    await redis.set(cache_key, stored, ex=300)
    return json.loads(stored)
