"""Inside Pyodide: the rate limiter over FetchTransport(pyfetch) against the devstack
(ENV: REDIS_URL, REDIS_TOKEN, PREFIX, REFUSED_URL). Standard library + our core only."""

from pyodide.http import pyfetch
from pyodide_checks import Checks

from shared.http import FetchTransport
from shared.ratelimit import (
    ConcurrencyLimit,
    MultiRegionRatelimit,
    Protection,
    Ratelimit,
    fixed_window,
    sliding_window,
    token_bucket,
)
from shared.redis import Redis, RetryPolicy
from shared.scope import request_scope

ENV: dict[str, str] = globals()["ENV"]
P = ENV["PREFIX"]
checks = Checks()
redis = Redis(
    ENV["REDIS_URL"],
    ENV["REDIS_TOKEN"],
    transport=FetchTransport(pyfetch),
    retry=RetryPolicy.never(),
)


class FrozenClock:
    """Workers freeze the clock during a request: time moves only when we say so."""

    def __init__(self) -> None:
        self.now = 1_699_963_200_000
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += round(seconds * 1000)


@checks.case
async def sliding_window_admits_the_limit() -> None:
    clock = FrozenClock()  # a real clock could cross a window edge mid-check
    rl = Ratelimit(redis, sliding_window(3, "10 s"), P + "sw", timeout=10, clock=clock)
    async with request_scope():
        results = [await rl.limit("ip") for _ in range(4)]
    assert [r.success for r in results] == [True, True, True, False], results
    assert [r.remaining for r in results] == [2, 1, 0, 0], results
    headers = rl.headers(results[-1])
    assert "Retry-After" in headers and headers["RateLimit-Policy"] == '"default";q=3;w=10'


@checks.case
async def token_bucket_with_a_frozen_clock() -> None:
    clock = FrozenClock()
    rl = Ratelimit(
        redis, token_bucket(1, "1s", 2), P + "tb", timeout=10, clock=clock, sleep=clock.sleep
    )
    assert (await rl.limit("u", 2)).success
    assert not (await rl.limit("u")).success
    result = await rl.block_until_ready("u", "5s")
    assert result.success and clock.slept == [1.0], (result, clock.slept)


@checks.case
async def concurrent_calls_share_one_request_in_a_scope() -> None:
    import asyncio

    rl = Ratelimit(redis, fixed_window(5, "1m"), P + "fw", timeout=10)
    async with request_scope():
        results = await asyncio.gather(*(rl.limit("x") for _ in range(8)))
    assert sum(r.success for r in results) == 5, results


@checks.case
async def unreachable_redis_fails_closed_with_a_reason() -> None:
    dead = Redis(
        ENV["REFUSED_URL"], "t", transport=FetchTransport(pyfetch), retry=RetryPolicy.never()
    )
    result = await Ratelimit(dead, fixed_window(1, "1s"), on_error="deny").limit("x")
    assert (result.success, result.reason) in ((False, "error"), (False, "timeout")), result


@checks.case
async def multi_region_limit_and_its_synchronisation() -> None:
    other = Redis(
        ENV["REDIS_URL"], ENV["REDIS_TOKEN"], transport=FetchTransport(pyfetch), timeout=10
    )  # a second region on the same database: each request id counts once
    rl = MultiRegionRatelimit([redis, other], fixed_window(2, "1m"), P + "mr", timeout=10)
    results = []
    for _ in range(3):
        result = await rl.limit("mr")
        if result.pending is not None:
            await result.pending
        results.append(result)
    assert [r.success for r in results] == [True, True, False], results


@checks.case
async def protection_denies_a_listed_user_agent() -> None:
    protection = Protection(redis, P + "pr", deny_countries=["XX"])
    rl = Ratelimit(redis, fixed_window(5, "1m"), P + "pr", timeout=10, protection=protection)
    await protection.deny("EvilBot/1")
    async with request_scope():
        agent = await rl.limit("who", user_agent="EvilBot/1")
        country = await rl.limit("who", country="xx")
        fine = await rl.limit("who", user_agent="curl/8", country="FR")
    assert (agent.success, agent.reason) == (False, "deny_user_agent"), agent
    assert (country.success, country.reason) == (False, "deny_country"), country
    assert fine.success, fine


@checks.case
async def concurrency_limit_acquire_release() -> None:
    slots = ConcurrencyLimit(redis, 1, lease="10 s", prefix=P + "cc", timeout=10)
    first = await slots.acquire("key")
    second = await slots.acquire("key")
    assert first.success and not second.success, (first, second)
    assert "Retry-After" in slots.headers(second)
    assert await slots.release(first)
    assert (await slots.acquire("key")).success


await checks.run()  # noqa: F704
