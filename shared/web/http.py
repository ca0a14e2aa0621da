"""The framework-neutral request and response the adapters convert to and from.

Input is bounded before it is parsed: `Request.json()` refuses a body nested deeper
than `MAX_JSON_DEPTH` (a cheap scan, no recursion) before `json.loads` sees it, and
`Headers` counts the fields and bytes it was built from so the app can answer 431.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qs

MAX_JSON_DEPTH = 32
# A JSON string, or an unterminated one running to the end (the parser fails there, so what
# follows is never parsed): every match ends where the next scan starts, so the scan is linear.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class HttpError(Exception):
    """An expected failure with its status: raised by handlers, answered as JSON.

    `report_throttled=True` marks a failure anyone can cause without credentials (e.g. a
    route whose secret is not configured): the app reports it at most once a minute per
    message and status instead of once per request.
    """

    def __init__(
        self,
        status: int,
        message: str,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        report_throttled: bool = False,
    ) -> None:
        self.status = status
        self.message = message
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})
        self.report_throttled = report_throttled
        super().__init__(message)


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than allowed."""


def json_depth(text: str) -> int:
    """The deepest array/object nesting of `text`, brackets inside strings not counted.

    Linear and recursion-free; for text that is not JSON it is an upper bound on what
    `json.loads` would descend into before failing.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=0))


def loads_bounded(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` of UTF-8 JSON nested at most `max_depth` deep.

    Raises `JsonTooDeep` before parsing a deeper document, `ValueError` for anything
    that is not UTF-8 JSON (a `RecursionError` included, defensively).
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if json_depth(text) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels") from None


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only header mapping (names stored lower-case).

    `field_count` and `byte_size` describe the fields it was built from (before
    repeated names were joined), for the app's header bounds.
    """

    __slots__ = ("_data", "byte_size", "field_count")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        data: dict[str, str] = {}
        count = size = 0
        for name, value in pairs:
            count += 1
            size += len(name) + len(value)
            key = name.lower()
            data[key] = f"{data[key]}, {value}" if key in data else value
        self._data = data
        self.field_count = count
        self.byte_size = size

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

    def evolve(
        self, *, request_id: str | None = None, path_params: Mapping[str, str] | None = None
    ) -> Request:
        """A copy with another request id or path parameters (what the app and the router
        set on every request; `dataclasses.replace` costs several times more)."""
        return Request(
            self.method,
            self.path,
            self.query_string,
            self.headers,
            self.body,
            self.client_ip,
            self.country,
            self.request_id if request_id is None else request_id,
            self.path_params if path_params is None else path_params,
        )

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def query_param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as UTF-8 JSON; `HttpError(400)` when it is not JSON or nests
        deeper than `MAX_JSON_DEPTH` (checked before parsing)."""
        try:
            return loads_bounded(self.body)
        except JsonTooDeep:
            raise HttpError(
                400, "JSON body is nested too deeply", {"max_depth": MAX_JSON_DEPTH}
            ) from None
        except ValueError:  # UnicodeDecodeError is a ValueError
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
