"""`devstack up --regions N`: independent Redis regions, each behind its own REST URL."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import start_devstack, stop_devstack

pytestmark = pytest.mark.integration


def test_regions_are_independent_and_a_region_can_be_slow() -> None:
    """--regions 2 announces two REST URLs over two Valkey servers (a write to one is not
    in the other), and --region-latency-ms delays only the region it names."""
    stack = start_devstack("--regions", "2", "--region-latency-ms", "0,200")
    try:
        regions = stack.raw["regions"]
        assert [r["latency_ms"] for r in regions] == [0, 200]
        assert regions[0]["redis_rest_url"] == stack.redis_rest_url
        assert len({r["redis_rest_url"] for r in regions}) == 2
        assert len({r["redis_url"] for r in regions}) == 2
        auth = {"Authorization": f"Bearer {stack.redis_rest_token}"}
        with httpx.Client(headers=auth, timeout=10) as http:
            first, second = (r["redis_rest_url"] for r in regions)
            assert http.post(first, json=["SET", "region-key", "one"]).json() == {"result": "OK"}
            assert http.post(second, json=["GET", "region-key"]).json() == {"result": None}
            started = time.perf_counter()
            http.post(first, json=["PING"])
            fast = time.perf_counter() - started
            started = time.perf_counter()
            assert http.post(second, json=["PING"]).json() == {"result": "PONG"}
            slow = time.perf_counter() - started
        assert slow >= 0.2 > fast
    finally:
        stop_devstack(stack.process)
        stack.stderr_path.unlink(missing_ok=True)


def test_bad_region_arguments_fail_fast() -> None:
    """A region count out of range or a malformed latency list stops the devstack."""
    for args in (("--regions", "0"), ("--regions", "2", "--region-latency-ms", "x")):
        with pytest.raises(pytest.fail.Exception):
            start_devstack(*args)
