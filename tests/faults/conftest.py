"""Fixtures for the fault-injection layer: a private devstack and the app behind proxies.

The devstack is private (not the session one) so the outbox, the email sink and the
QStash queue hold only this layer's jobs; its QStash waits are scaled 1000x shorter.
Both live for one module, so the app's log hooks never outlast the layer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Devstack, running_devstack
from tests.faults.harness import FaultyApp


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[Devstack]:
    """A devstack for this layer alone (Redis REST, QStash at time scale 0.001, email sink)."""
    with running_devstack() as stack:
        yield stack


@pytest.fixture(scope="module")
def faulty_app(fault_stack: Devstack) -> Iterator[FaultyApp]:
    """The real app served on loopback, with fault proxies before Redis, QStash and email."""
    with FaultyApp.running(fault_stack.raw) as app:
        yield app


@pytest.fixture
def app(faulty_app: FaultyApp) -> Iterator[FaultyApp]:
    """The shared faulty app, every proxy in pass mode before and after the test."""
    faulty_app.reset()
    try:
        yield faulty_app
    finally:
        faulty_app.reset()
