"""The one-method transport protocol and its request/response values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One outgoing HTTP request; `timeout` is in seconds and always set."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP response; header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Transport(Protocol):
    """Sends one request and returns the whole response.

    Implementations raise `shared.errors.TransportTimeout` when `request.timeout`
    runs out and `shared.errors.TransportError` for every other failure to get a
    response; an HTTP error status is a response, not an exception.
    """

    async def send(self, request: HttpRequest) -> HttpResponse: ...
