"""Fixtures for the email tests: a private email sink in-process and an httpx transport.

No ``__init__.py`` here on purpose: a package named ``email`` would shadow the
standard library's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from devstack.email_sink import EmailSinkService
from shared.http.httpx_transport import HttpxTransport

API_KEY = "re_devstack_test_key"


@dataclass(frozen=True)
class Sink:
    """A running sink: its service object and the URLs it announced."""

    service: EmailSinkService
    api_url: str
    inbox_url: str
    announced: dict[str, object]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A fresh email sink on a free loopback port, through the devstack Service interface."""
    service = EmailSinkService()
    info = await service.start({})
    try:
        yield Sink(service, str(info["email_api_url"]), str(info["email_inbox_url"]), info)
    finally:
        await service.stop()


@pytest.fixture
async def transport() -> AsyncIterator[HttpxTransport]:
    """The CPython transport the sender uses in production."""
    result = HttpxTransport()
    try:
        yield result
    finally:
        await result.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A raw client for requests our sender would never make."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client
