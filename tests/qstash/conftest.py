"""Fixtures for the local QStash: a private devstack with a fast clock, and a destination sink.

The shared `devstack` fixture runs QStash at real speed; ours passes
`--qstash-time-scale 0.001` so retry n waits e^(2.5n) milliseconds instead of seconds.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from shared.qstash import QStash, QStashAdmin
from tests.conftest import qstash_env_of, running_devstack
from tests.support.loopback import loopback

# The helper module sits next to this file; no __init__.py here, since a package named
# `qstash` would shadow the official SDK the tests compare against.
sys.path.insert(0, str(Path(__file__).parent))
from qstash_sink import Sink


@pytest.fixture(scope="session")
def fast_stack() -> Iterator[dict[str, Any]]:
    """A private devstack whose QStash waits are scaled by TIME_SCALE (0.001)."""
    with running_devstack() as stack:
        yield stack.raw


@pytest.fixture(scope="session")
def qstash_env(fast_stack: dict[str, Any]) -> dict[str, str]:
    """The environment our QStash client and Receiver read."""
    return qstash_env_of(fast_stack)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A fresh destination server on a free loopback port."""
    result = Sink()
    async with loopback(result.handle) as url:
        result.base_url = url
        yield result


@pytest.fixture
async def admin(qstash_env: dict[str, str]) -> AsyncIterator[QStashAdmin]:
    """Our QStash management client on the fast stack."""
    async with aclosing(QStashAdmin.from_env(qstash_env)) as client:
        yield client


@pytest.fixture
async def qstash(qstash_env: dict[str, str]) -> AsyncIterator[QStash]:
    """Our QStash publisher on the fast stack."""
    async with aclosing(QStash.from_env(qstash_env)) as client:
        yield client
