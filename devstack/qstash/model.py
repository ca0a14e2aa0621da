"""The local QStash's data: a stored message, publish-header parsing and retry timing (pure).

Times in a `Message` are real unix milliseconds. Waits computed here are in
QStash seconds; the scheduler multiplies them by the devstack time scale.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import ipaddress
import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from shared.durations import parse_duration_ms
from shared.qstash.flow_control import parse_flow_control_value

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
MAX_RETRIES = 20
DEFAULT_RETRIES = 3
MAX_BACKOFF_SECONDS = 86_400.0
FORWARD_PREFIX = "upstash-forward-"
FLOW_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,256}")


class PublishError(ValueError):
    """A publish request QStash would refuse with 400; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message (or callback) waiting to be delivered; JSON-serialized into Redis."""

    id: str
    url: str
    method: str
    body_b64: str
    headers: dict[str, str]  # delivered as-is: Content-Type and forwarded headers
    max_retries: int
    created_at: int
    not_before: int
    retried: int = 0
    timeout_s: float | None = None
    retry_delay: str | None = None
    callback: str | None = None
    failure_callback: str | None = None
    label: str | None = None
    kind: str = "message"  # "message" | "callback" | "failure-callback"
    last_status: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body_b64: str = ""
    flow_key: str | None = None
    flow_rate: int | None = None
    flow_period_s: int | None = None
    flow_parallelism: int | None = None
    schedule_id: str | None = None
    topic_name: str | None = None
    endpoint_name: str | None = None

    @property
    def body(self) -> bytes:
        return base64.b64decode(self.body_b64)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Message:
        return cls(**json.loads(text))

    def evolve(self, **changes: Any) -> Message:
        return replace(self, **changes)

    def api_view(self) -> dict[str, object]:
        """The `GET /v2/messages/<id>` shape the official SDKs read."""
        body = self.body
        view: dict[str, object] = {
            "messageId": self.id,
            "url": self.url,
            "method": self.method,
            "header": {k: [v] for k, v in self.headers.items()},
            "maxRetries": self.max_retries,
            "notBefore": self.not_before,
            "createdAt": self.created_at,
            "retried": self.retried,
        }
        try:
            view["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            view["bodyBase64"] = self.body_b64
        for key, value in (
            ("callback", self.callback),
            ("failureCallback", self.failure_callback),
            ("label", self.label),
            ("retryDelayExpression", self.retry_delay),
            ("flowControlKey", self.flow_key),
            ("rate", self.flow_rate),
            ("period", self.flow_period_s),
            ("parallelism", self.flow_parallelism),
            ("scheduleId", self.schedule_id),
            ("topicName", self.topic_name),
            ("endpointName", self.endpoint_name),
        ):
            if value is not None:
                view[key] = value
        return view


def check_destination(url: str, *, loopback_only: bool) -> str:
    """An absolute http(s) URL (on loopback unless allowed otherwise), else `PublishError`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PublishError(f"invalid destination url: {url!r} (want an absolute http(s) URL)")
    if any(c.isspace() for c in url) or not url.isprintable():
        raise PublishError("invalid destination url: contains whitespace or control characters")
    if loopback_only and not _is_loopback(parts.hostname):
        raise PublishError(
            f"destination host {parts.hostname!r} is not loopback; the local QStash only "
            "delivers to 127.0.0.1 / ::1 / localhost"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _duration_s(name: str, value: str) -> float:
    try:
        return parse_duration_ms(value) / 1000
    except ValueError:
        raise PublishError(
            f"invalid {name} header: {value!r} (want e.g. 10s, 1m, 1d10h30m)"
        ) from None


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise PublishError(f"invalid {name} header: {value!r} (want an integer)") from None
    if not low <= number <= high:
        raise PublishError(f"invalid {name} header: {number} (want {low}..{high})")
    return number


def parse_publish(
    message_id: str,
    destination: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_ms: int,
    loopback_only: bool,
) -> Message:
    """The stored message for one publish, or `PublishError` for a malformed header."""
    h = {k.lower(): v for k, v in headers.items()}
    check_destination(destination, loopback_only=loopback_only)
    delivered: dict[str, str] = {}
    if "content-type" in h:
        delivered["Content-Type"] = h["content-type"]
    for name, value in headers.items():
        if name.lower().startswith(FORWARD_PREFIX) and len(name) > len(FORWARD_PREFIX):
            delivered[name[len(FORWARD_PREFIX) :]] = value
    method = h.get("upstash-method", "POST").upper()
    if method not in METHODS:
        raise PublishError(f"invalid Upstash-Method header: {method!r}")
    retries = DEFAULT_RETRIES
    if "upstash-retries" in h:
        retries = _int("Upstash-Retries", h["upstash-retries"], 0, MAX_RETRIES)
    not_before = now_ms
    if "upstash-delay" in h:
        not_before = now_ms + round(_duration_s("Upstash-Delay", h["upstash-delay"]) * 1000)
    if "upstash-not-before" in h:  # wins over the delay
        not_before = _int("Upstash-Not-Before", h["upstash-not-before"], 0, 2**40) * 1000
    timeout = None
    if "upstash-timeout" in h:
        timeout = _duration_s("Upstash-Timeout", h["upstash-timeout"]) or None
    retry_delay = h.get("upstash-retry-delay")
    if retry_delay is not None:
        retry_delay_ms(retry_delay, 0)  # validate now: a 400 beats a silent DLQ later
    flow = parse_flow_headers(h)
    callbacks = {}
    for key in ("upstash-callback", "upstash-failure-callback"):
        if key in h:
            callbacks[key] = check_destination(h[key], loopback_only=loopback_only)
    return Message(
        id=message_id,
        url=destination,
        method=method,
        body_b64=base64.b64encode(body).decode("ascii"),
        headers=delivered,
        max_retries=retries,
        created_at=now_ms,
        not_before=not_before,
        timeout_s=timeout,
        retry_delay=retry_delay,
        callback=callbacks.get("upstash-callback"),
        failure_callback=callbacks.get("upstash-failure-callback"),
        label=h.get("upstash-label"),
        flow_key=flow.key,
        flow_rate=flow.rate,
        flow_period_s=flow.period,
        flow_parallelism=flow.parallelism,
    )


@dataclass(frozen=True, slots=True)
class FlowHeaders:
    """A publish's flow control: its key and limits (all None without the headers)."""

    key: str | None = None
    rate: int | None = None
    period: int | None = None  # seconds
    parallelism: int | None = None


def parse_flow_headers(h: Mapping[str, str]) -> FlowHeaders:
    """`Upstash-Flow-Control-Key/-Value` (lower-cased names) -> key, rate, period, parallelism.

    A rate without a period gets QStash's default period of 1s.
    """
    key = h.get("upstash-flow-control-key")
    value = h.get("upstash-flow-control-value")
    if key is None and value is None:
        return FlowHeaders()
    if not key or not FLOW_KEY.fullmatch(key):
        raise PublishError(f"invalid Upstash-Flow-Control-Key header: {key!r}")
    if value is None:
        raise PublishError("Upstash-Flow-Control-Key needs Upstash-Flow-Control-Value")
    try:
        parsed = parse_flow_control_value(value)
    except ValueError as exc:
        raise PublishError(f"invalid Upstash-Flow-Control-Value header: {exc}") from None
    if "period" in parsed and "rate" not in parsed:
        raise PublishError("invalid Upstash-Flow-Control-Value header: period needs a rate")
    rate = parsed.get("rate")
    period = parsed.get("period", 1 if rate is not None else None)
    return FlowHeaders(key, rate, period, parsed.get("parallelism"))


def dedup_key(headers: Mapping[str, str], destination: str, body: bytes) -> str | None:
    """The deduplication key of a publish: its id, or a hash of destination+body+headers."""
    h = {k.lower(): v for k, v in headers.items()}
    if h.get("upstash-deduplication-id"):
        return "id:" + h["upstash-deduplication-id"]
    if h.get("upstash-content-based-deduplication", "").strip().lower() == "true":
        digest = hashlib.sha256()
        digest.update(destination.encode() + b"\0" + body + b"\0")
        for name in sorted(n for n in h if n.startswith(("upstash-", "content-type"))):
            if name not in ("upstash-content-based-deduplication",):
                digest.update(f"{name}:{h[name]}\n".encode())
        return "content:" + digest.hexdigest()
    return None


def default_backoff_s(retry_number: int) -> float:
    """QStash's default: retry n (1-based) waits min(86400, e^(2.5*n)) seconds."""
    return min(MAX_BACKOFF_SECONDS, math.exp(2.5 * retry_number))


_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: lambda a, b: math.pow(a, min(b, 64)),
}
_FUNCS: dict[str, Callable[..., float]] = {
    "pow": lambda a, b: math.pow(a, min(b, 64)),
    "exp": lambda a: math.exp(min(a, 64)),
    "max": max,
    "min": min,
    "abs": abs,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
}


def retry_delay_ms(expression: str, retried: int) -> float:
    """Evaluates an `Upstash-Retry-Delay` expression (ms) over `retried`; `PublishError` if bad."""
    if len(expression) > 200:
        raise PublishError("invalid Upstash-Retry-Delay header: longer than 200 characters")

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            if isinstance(node.value, bool):
                raise PublishError(f"invalid Upstash-Retry-Delay header: {expression!r}")
            return float(node.value)
        if isinstance(node, ast.Name) and node.id == "retried":
            return float(retried)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCS
            and not node.keywords
        ):
            return float(_FUNCS[node.func.id](*[ev(a) for a in node.args]))
        raise PublishError(f"invalid Upstash-Retry-Delay header: {expression!r}")

    try:
        value = ev(ast.parse(expression, mode="eval"))
    except (SyntaxError, ArithmeticError, TypeError, ValueError) as exc:
        if isinstance(exc, PublishError):
            raise
        raise PublishError(f"invalid Upstash-Retry-Delay header: {expression!r}") from None
    if not math.isfinite(value):
        raise PublishError("invalid Upstash-Retry-Delay header: not a finite number")
    return max(0.0, min(value, MAX_BACKOFF_SECONDS * 1000))


def next_wait_s(message: Message, retry_after: str | None) -> float:
    """Seconds (QStash time) before the next attempt, after `message.retried` failures."""
    if retry_after is not None and retry_after.strip().isdigit():
        return min(float(retry_after.strip()), MAX_BACKOFF_SECONDS)
    if message.retry_delay is not None:
        try:
            return retry_delay_ms(message.retry_delay, message.retried - 1) / 1000
        except PublishError:
            pass
    return default_backoff_s(message.retried)
