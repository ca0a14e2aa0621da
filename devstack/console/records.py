"""What the console knows about one API request, and the bounded log of recent ones (pure).

A `RequestRecord` is built by the dev entrypoint (`devstack.console.observer`) while the
app handles a request, then sent to the console as JSON. It never holds a query string,
a header value other than the few listed, a request body or a Redis value: only command
names and their first key.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_RECORDS = 500
MAX_KEY_CHARS = 80
MAX_EXCERPT_CHARS = 300


@dataclass(slots=True)
class RoundTrip:
    """One HTTP request to the Redis REST server: `mode` single / pipeline / multi-exec."""

    mode: str
    commands: list[str]
    status: int = 0
    ms: float = 0.0


@dataclass(slots=True)
class Publish:
    """One QStash publish the request made (or tried): `message_id` empty when it failed."""

    destination: str
    status: int
    message_id: str = ""


@dataclass(slots=True)
class RequestRecord:
    """One request the app answered, with what it sent to Redis, QStash and the email API."""

    id: str
    method: str
    path: str
    started_ms: int
    status: int = 0
    duration_ms: float = 0.0
    total_ms: float = 0.0
    cache: str = ""
    ratelimit_remaining: str = ""
    qstash_message_id: str = ""
    qstash_retried: str = ""
    excerpt: str = ""
    redis: list[RoundTrip] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)
    emails: list[int] = field(default_factory=list)

    @property
    def command_count(self) -> int:
        return sum(len(trip.commands) for trip in self.redis)

    @property
    def round_trips(self) -> int:
        return len(self.redis)

    @property
    def rate_limited(self) -> bool:
        """Whether the rate limiter decided this request (allowed or denied)."""
        return bool(self.ratelimit_remaining) or self.status == 429

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RequestRecord:
        """Rebuilds a record from its JSON form; `ValueError` when it does not fit."""
        try:
            raw = dict(data)
            raw["redis"] = [RoundTrip(**trip) for trip in raw.get("redis", [])]
            raw["publishes"] = [Publish(**item) for item in raw.get("publishes", [])]
            return cls(**raw)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"not a request record: {exc}") from None


def describe_command(command: Iterable[object]) -> str:
    """`SET order:ord_1`: the command name and its first argument (a key), never values."""
    parts = [str(part) for part in command]
    if not parts:
        return "?"
    name = parts[0].upper()
    if len(parts) == 1 or name in {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"}:
        if name.startswith("EVAL") and len(parts) > 3:
            script = parts[1][:12] if name.startswith("EVALSHA") else "<script>"
            return f"{name} {script} {_short(parts[3])}"
        return name
    return f"{name} {_short(parts[1])}"


def _short(text: str) -> str:
    return text if len(text) <= MAX_KEY_CHARS else text[: MAX_KEY_CHARS - 1] + "…"


def excerpt(body: bytes) -> str:
    text = body[: MAX_EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return text if len(text) <= MAX_EXCERPT_CHARS else text[: MAX_EXCERPT_CHARS - 1] + "…"


class RequestLog:
    """The last `MAX_RECORDS` requests, newest last."""

    def __init__(self, limit: int = MAX_RECORDS) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=limit)

    def add(self, record: RequestRecord) -> None:
        self._records.append(record)

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def newest_first(self, limit: int = 100) -> list[RequestRecord]:
        return list(reversed(self._records))[:limit]

    def attempts(self) -> dict[str, list[RequestRecord]]:
        """QStash deliveries the app received, by message id, oldest attempt first."""
        by_message: dict[str, list[RequestRecord]] = {}
        for record in self._records:
            if record.qstash_message_id:
                by_message.setdefault(record.qstash_message_id, []).append(record)
        return by_message

    def publishers(self) -> dict[str, RequestRecord]:
        """The request that published each QStash message id."""
        found: dict[str, RequestRecord] = {}
        for record in self._records:
            for publish in record.publishes:
                if publish.message_id:
                    found[publish.message_id] = record
        return found
