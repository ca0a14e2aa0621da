"""The rate limiter (single- and multi-region, protection lists, concurrency limit) inside
real Pyodide (both versions) against the devstack."""

from __future__ import annotations

import uuid

import pytest
from runner import SCRIPTS, EchoServer, assert_checks_passed, run_in_pyodide

from tests.conftest import Devstack

pytestmark = pytest.mark.pyodide


def test_ratelimit_in_pyodide(
    pyodide_version: str, devstack: Devstack, echo_server: EchoServer
) -> None:
    """Limits, headers, a frozen-clock block_until_ready and fail-closed work through pyfetch."""
    env = {
        "REDIS_URL": devstack.redis_rest_url,
        "REDIS_TOKEN": devstack.redis_rest_token,
        "PREFIX": f"pyo-rl:{uuid.uuid4().hex}:",
        "REFUSED_URL": echo_server.refused_url,
    }
    assert_checks_passed(run_in_pyodide(pyodide_version, SCRIPTS / "ratelimit_checks.py", env))
