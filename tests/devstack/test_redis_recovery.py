"""Integration test: the REST server survives its Redis child dying (own instance)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Devstack, start_devstack, stop_devstack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def private_devstack() -> Iterator[Devstack]:
    """A separate devstack whose Redis we may kill (the shared one stays intact)."""
    stack = start_devstack("--redis-restart-delay", "1.0")
    try:
        yield stack
    finally:
        stop_devstack(stack.process)
        stack.stderr_path.unlink(missing_ok=True)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie counts as gone: its parent (the devstack) has not reaped it yet.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[1].startswith("Z")


def test_redis_down_is_500_json_then_recovers(private_devstack: Devstack) -> None:
    """While Redis is down requests get 500 JSON; after the restart they succeed again."""
    stack = private_devstack
    auth = {"Authorization": f"Bearer {stack.redis_rest_token}"}
    with httpx.Client(base_url=stack.redis_rest_url, headers=auth, timeout=10) as http:
        assert http.post("/", json=["SET", "recovery", "1"]).json() == {"result": "OK"}
        pid = int(stack.raw["redis_pid"])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while not _pid_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        down = http.post("/", json=["PING"])
        assert down.status_code == 500
        assert down.json()["error"].startswith("ERR ")
        assert "Traceback" not in down.text

        def back() -> httpx.Response | None:
            response = http.post("/", json=["PING"])
            if response.status_code == 200:
                return response
            assert response.status_code == 500 and "error" in response.json()
            return None

        assert wait_for(back, "Redis to come back", timeout=15).json() == {"result": "PONG"}


def test_sigterm_stops_redis_child(private_devstack: Devstack) -> None:
    """SIGTERM makes devstack exit 0 and take its Redis child down with it."""
    stack = private_devstack
    pid = int(stack.raw["redis_pid"])
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(10) == 0
    wait_for(lambda: _pid_gone(pid), "the Redis child to exit with devstack", timeout=5)
