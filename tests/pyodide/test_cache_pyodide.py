"""The cache inside real Pyodide (both versions) against the devstack."""

from __future__ import annotations

import uuid

import pytest
from runner import SCRIPTS, EchoServer, assert_checks_passed, run_in_pyodide

from tests.conftest import Devstack

pytestmark = pytest.mark.pyodide


def test_cache_in_pyodide(
    pyodide_version: str, devstack: Devstack, echo_server: EchoServer
) -> None:
    """Hits, falsy values, single flight, the Redis lock across instances, negative caching,
    SWR through background().drain(), and BYPASS on a refused or hanging Redis work in Pyodide."""
    env = {
        "REDIS_URL": devstack.redis_rest_url,
        "REDIS_TOKEN": devstack.redis_rest_token,
        "NAMESPACE": f"pyo-cache-{uuid.uuid4().hex[:12]}-",
        "REFUSED_URL": echo_server.refused_url,
        "HANG_URL": echo_server.url + "/hang",
    }
    assert_checks_passed(run_in_pyodide(pyodide_version, SCRIPTS / "cache_checks.py", env))
