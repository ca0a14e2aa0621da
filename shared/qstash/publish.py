"""The QStash publish protocol as pure functions of data: options -> headers -> `HttpRequest`,
and `HttpResponse` -> `PublishResult` or a typed `QStashError`. No client, transport or clock.

    request = build_publish_request(
        "https://qstash.upstash.io", token, "https://app.example.com/api/jobs/x",
        b'{"orderId": 42}', PublishOptions(retries=3, delay="5s", content_type="application/json"),
    )
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict
from urllib.parse import urlencode, urlsplit

from shared.durations import Duration, format_duration, parse_duration_ms
from shared.errors import QStashError, QStashRateLimited
from shared.http.transport import HttpRequest, HttpResponse
from shared.qstash.flow_control import FlowControl, flow_control_headers

Method = Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
METHODS: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name
_RATE_LIMIT_PREFIXES = ("ratelimit-", "burst-ratelimit-")
_MAX_ERROR_TEXT = 300
DEFAULT_TIMEOUT = 10.0  # of a built request, until a client sends it under its deadline


class PublishKwargs(TypedDict, total=False):
    """The keyword options of `QStash.publish_json` / `publish` (see `PublishOptions`)."""

    retries: int
    delay: Duration
    not_before: int
    deduplication_id: str
    content_based_deduplication: bool
    callback: str
    failure_callback: str
    headers: Mapping[str, str]
    method: Method
    timeout: Duration
    retry_delay: str
    label: str
    flow_control: FlowControl | None


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """How QStash should deliver one message; every field maps to one `Upstash-*` header.

    `delay`/`timeout` use the project's duration grammar ("5s", "1d10h30m", or seconds)
    and are sent in whole seconds, rounded up. `not_before` is unix seconds and wins
    over `delay`. `headers` are forwarded to the destination (`Upstash-Forward-<Name>`).
    `retry_delay` is QStash's millisecond expression over `retried` (e.g. "1000 * retried").
    """

    retries: int | None = None
    delay: Duration | None = None
    not_before: int | None = None
    deduplication_id: str | None = None
    content_based_deduplication: bool = False
    callback: str | None = None
    failure_callback: str | None = None
    headers: Mapping[str, str] | None = field(default=None, repr=False)  # may hold secrets
    method: Method | None = None
    timeout: Duration | None = None
    retry_delay: str | None = None
    label: str | None = None
    content_type: str | None = None
    flow_control: FlowControl | None = None

    @property
    def deduplicated(self) -> bool:
        """True when QStash can recognise a resend, which makes a retried publish safe."""
        return bool(self.deduplication_id) or self.content_based_deduplication


@dataclass(frozen=True, slots=True)
class PublishResult:
    """QStash accepted the message; `deduplicated` means an earlier identical one won."""

    message_id: str
    deduplicated: bool = False
    url: str | None = None


def check_destination(name: str, url: str) -> str:
    """An absolute http(s) URL with a host, or `ValueError` naming the argument."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or any(c.isspace() for c in url)
        or not url.isprintable()
    ):
        raise ValueError(f"{name} must be an absolute http(s) URL, got {url!r}")
    return url


def _check_value(name: str, value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{name} must not contain CR, LF or NUL")
    return value


def _seconds(name: str, value: Duration) -> str:
    try:
        ms = parse_duration_ms(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return format_duration(math.ceil(ms / 1000) * 1000)


def publish_headers(options: PublishOptions) -> dict[str, str]:
    """The `Upstash-*` (and `Content-Type`) headers for `options`; `ValueError` when invalid."""
    o = options
    headers: dict[str, str] = {}
    if o.content_type is not None:
        headers["Content-Type"] = _check_value("content_type", o.content_type)
    if o.retries is not None:
        if isinstance(o.retries, bool) or not isinstance(o.retries, int) or o.retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {o.retries!r}")
        headers["Upstash-Retries"] = str(o.retries)
    if o.delay is not None:
        headers["Upstash-Delay"] = _seconds("delay", o.delay)
    if o.not_before is not None:
        if isinstance(o.not_before, bool) or not isinstance(o.not_before, int):
            raise ValueError("not_before must be unix seconds (int)")
        headers["Upstash-Not-Before"] = str(o.not_before)
    if o.deduplication_id is not None:
        if not o.deduplication_id:
            raise ValueError("deduplication_id must not be empty")
        headers["Upstash-Deduplication-Id"] = _check_value("deduplication_id", o.deduplication_id)
    if o.content_based_deduplication:
        headers["Upstash-Content-Based-Deduplication"] = "true"
    if o.callback is not None:
        headers["Upstash-Callback"] = check_destination("callback", o.callback)
    if o.failure_callback is not None:
        headers["Upstash-Failure-Callback"] = check_destination(
            "failure_callback", o.failure_callback
        )
    if o.method is not None:
        if o.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {o.method!r}")
        headers["Upstash-Method"] = o.method
    if o.timeout is not None:
        headers["Upstash-Timeout"] = _seconds("timeout", o.timeout)
    if o.retry_delay is not None:
        headers["Upstash-Retry-Delay"] = _check_value("retry_delay", o.retry_delay)
    if o.label is not None:
        headers["Upstash-Label"] = _check_value("label", o.label)
    headers.update(flow_control_headers(o.flow_control))
    for name, value in (o.headers or {}).items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        forwarded = (
            name if name.lower().startswith("upstash-forward-") else f"Upstash-Forward-{name}"
        )
        headers[forwarded] = _check_value(f"header {name}", str(value))
    return headers


def api_request(
    method: str,
    base_url: str,
    token: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> HttpRequest:
    """A request to QStash's API (`path` is `/v2/...`, appended raw): the bearer token, then
    `headers`. Its timeout is a default for direct use: the clients send every request with
    what is left of the call's deadline (`QStashConnection._send`), the one place it is set.
    """
    url = f"{base_url}{path}"
    if query:
        url += "?" + urlencode(dict(query))
    all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    return HttpRequest(method, url, all_headers, body, DEFAULT_TIMEOUT)


def build_publish_request(
    base_url: str, token: str, destination: str, body: bytes, options: PublishOptions
) -> HttpRequest:
    """`POST {base_url}/v2/publish/{destination}`; the destination URL is appended raw."""
    check_destination("url", destination)
    path = f"/v2/publish/{destination}"
    return api_request("POST", base_url, token, path, headers=publish_headers(options), body=body)


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """One message of a batch: its destination, raw body and options."""

    url: str
    body: bytes = b""
    options: PublishOptions = PublishOptions()


def build_batch_request(base_url: str, token: str, messages: Sequence[BatchMessage]) -> HttpRequest:
    """`POST {base_url}/v2/batch` with a JSON array of `{destination, headers, body}`."""
    if not messages:
        raise ValueError("a batch needs at least one message")
    items = []
    for message in messages:
        check_destination("url", message.url)
        try:
            text = message.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("batch bodies must be UTF-8 text (sent as JSON strings)") from None
        items.append(
            {"destination": message.url, "headers": publish_headers(message.options), "body": text}
        )
    headers = {"Content-Type": "application/json"}
    body = json.dumps(items).encode("utf-8")
    return api_request("POST", base_url, token, "/v2/batch", headers=headers, body=body)


def api_error(response: HttpResponse) -> QStashError:
    """The typed error for a non-2xx answer, carrying the server's message (never our token)."""
    message = response.body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(message)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        message = parsed["error"]
    message = message[:_MAX_ERROR_TEXT] or "(empty body)"
    if response.status == 429:
        limits = {
            name: value
            for name, value in response.headers.items()
            if name.lower().startswith(_RATE_LIMIT_PREFIXES)
        }
        return QStashRateLimited(response.status, message, limits)
    return QStashError(response.status, message)


def is_permanent(error: BaseException) -> bool:
    """True when QStash refused the request itself and sending it again cannot help: a 4xx
    other than 408 (timeout) and 429 (rate limit, quota): bad token, bad destination, a body
    or option it rejects. Transport failures and 5xx are transient."""
    return (
        isinstance(error, QStashError)
        and not isinstance(error, QStashRateLimited)
        and 400 <= error.status < 500
        and error.status not in (408, 429)
    )


def _result(item: object, status: int) -> PublishResult:
    if not isinstance(item, dict) or not isinstance(item.get("messageId"), str):
        raise QStashError(status, "response has no messageId")
    url = item.get("url")
    return PublishResult(
        message_id=item["messageId"],
        deduplicated=bool(item.get("deduplicated", False)) or status == 202,
        url=url if isinstance(url, str) else None,
    )


def json_body(data: object) -> bytes:
    """Compact UTF-8 JSON: the one encoding of every JSON body sent to QStash."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_payload(response: HttpResponse) -> Any:
    """The JSON body of a 2xx answer; any other status (or a body that is not JSON) is a
    `QStashError`. Every QStash answer parser starts here."""
    if not 200 <= response.status < 300:
        raise api_error(response)
    try:
        return json.loads(response.body)
    except ValueError:
        raise QStashError(response.status, "response is not JSON") from None


def parse_publish_response(response: HttpResponse) -> PublishResult:
    """200/201 -> a new message; 202 -> deduplicated (the original id); else a `QStashError`."""
    return _result(json_payload(response), response.status)


def parse_batch_response(response: HttpResponse, count: int) -> list[PublishResult]:
    """One `PublishResult` per batch message, in order."""
    payload = json_payload(response)
    if not isinstance(payload, list) or len(payload) != count:
        raise QStashError(response.status, f"expected a list of {count} results")
    return [_result(item, 200) for item in payload]
