"""The framework-neutral request and response the adapters convert to and from."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only header mapping (names stored lower-case)."""

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        data: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            data[key] = f"{data[key]}, {value}" if key in data else value
        self._data = data

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Headers({sorted(self._data)})"  # names only: values may be secrets


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as data; `path` has no query string, `client_ip` is the adapter's
    best knowledge of the caller (CF-Connecting-IP, first X-Forwarded-For), `country` the
    platform's ISO code for it (Workers `request.cf.country`, Vercel `x-vercel-ip-country`)."""

    method: str
    path: str
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    client_ip: str | None = None
    country: str | None = None
    request_id: str = ""
    path_params: Mapping[str, str] = field(default_factory=dict)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def query_param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON; raises `HttpError(400)` when it is not JSON."""
        from shared.app.errors import HttpError

        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "Malformed JSON body") from None


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        merged = {"content-type": "application/json"}
        if headers:
            merged.update({k.lower(): v for k, v in headers.items()})
        return cls(status, body, merged)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode("utf-8"), {"content-type": f"{content_type}; charset=utf-8"})

    def with_headers(self, headers: Mapping[str, str]) -> Response:
        for name, value in headers.items():
            self.headers[name.lower()] = value
        return self
