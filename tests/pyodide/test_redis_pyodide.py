"""The Redis REST client inside real Pyodide (both versions) against the devstack."""

from __future__ import annotations

import uuid

import pytest
from runner import SCRIPTS, EchoServer, assert_checks_passed, run_in_pyodide

from tests.conftest import Devstack

pytestmark = pytest.mark.pyodide


def test_redis_client_in_pyodide(
    pyodide_version: str, devstack: Devstack, echo_server: EchoServer
) -> None:
    """Commands, auto-pipelining, pipelines, scripts and errors work through pyfetch."""
    env = {
        "REDIS_URL": devstack.redis_rest_url,
        "REDIS_TOKEN": devstack.redis_rest_token,
        "PREFIX": f"pyo:{uuid.uuid4().hex}:",
        "REFUSED_URL": echo_server.refused_url,
    }
    assert_checks_passed(run_in_pyodide(pyodide_version, SCRIPTS / "redis_checks.py", env))
