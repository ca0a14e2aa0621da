"""The publish protocol (pure builders, response parsing) and the client's retry rule, on fakes."""

from __future__ import annotations

import json

import pytest

from shared.errors import ConfigError, QStashError, QStashRateLimited, TransportError
from shared.http.transport import HttpRequest, HttpResponse
from shared.qstash import (
    PublishOptions,
    QStash,
    build_publish_request,
    parse_publish_response,
    publish_headers,
)

TOKEN = "tok_secret_value"
DEST = "https://app.example.com/api/jobs/send-confirmation"

HEADER_TABLE: list[tuple[PublishOptions, dict[str, str]]] = [
    (PublishOptions(), {}),
    (PublishOptions(retries=3), {"Upstash-Retries": "3"}),
    (PublishOptions(retries=0), {"Upstash-Retries": "0"}),
    (PublishOptions(delay="5s"), {"Upstash-Delay": "5s"}),
    (PublishOptions(delay="1d10h30m"), {"Upstash-Delay": "1d10h30m"}),
    (PublishOptions(delay=90), {"Upstash-Delay": "1m30s"}),
    (PublishOptions(delay="250ms"), {"Upstash-Delay": "1s"}),
    (PublishOptions(delay="10 s"), {"Upstash-Delay": "10s"}),
    (PublishOptions(not_before=1_750_000_000), {"Upstash-Not-Before": "1750000000"}),
    (PublishOptions(deduplication_id="order-42"), {"Upstash-Deduplication-Id": "order-42"}),
    (
        PublishOptions(content_based_deduplication=True),
        {"Upstash-Content-Based-Deduplication": "true"},
    ),
    (PublishOptions(callback=DEST + "/cb"), {"Upstash-Callback": DEST + "/cb"}),
    (PublishOptions(failure_callback=DEST + "/f"), {"Upstash-Failure-Callback": DEST + "/f"}),
    (PublishOptions(headers={"X-Trace": "t1"}), {"Upstash-Forward-X-Trace": "t1"}),
    (PublishOptions(headers={"Upstash-Forward-A": "1"}), {"Upstash-Forward-A": "1"}),
    (PublishOptions(method="PUT"), {"Upstash-Method": "PUT"}),
    (PublishOptions(timeout="30s"), {"Upstash-Timeout": "30s"}),
    (PublishOptions(retry_delay="1000 * retried"), {"Upstash-Retry-Delay": "1000 * retried"}),
    (PublishOptions(label="emails"), {"Upstash-Label": "emails"}),
    (PublishOptions(content_type="text/plain"), {"Content-Type": "text/plain"}),
]


@pytest.mark.parametrize(("options", "expected"), HEADER_TABLE)
def test_options_map_to_headers(options: PublishOptions, expected: dict[str, str]) -> None:
    """Each publish option becomes exactly its Upstash-* header."""
    assert publish_headers(options) == expected


@pytest.mark.parametrize(
    "options",
    [
        PublishOptions(retries=-1),
        PublishOptions(delay="5 parsecs"),
        PublishOptions(delay=-1),
        PublishOptions(callback="ftp://x"),
        PublishOptions(callback="/relative"),
        PublishOptions(headers={"Bad Name": "v"}),
        PublishOptions(headers={"X-A": "line\r\nInjected: 1"}),
        PublishOptions(method="TRACE"),  # type: ignore[arg-type]
        PublishOptions(deduplication_id=""),
    ],
)
def test_invalid_options_raise_value_error(options: PublishOptions) -> None:
    """Malformed options are rejected before anything is sent."""
    with pytest.raises(ValueError):
        publish_headers(options)


def test_publish_request_appends_the_destination_raw() -> None:
    """The destination URL follows /v2/publish/ unencoded, with the bearer token."""
    request = build_publish_request("https://q.local", TOKEN, DEST, b"{}", PublishOptions())
    assert request.url == f"https://q.local/v2/publish/{DEST}"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    with pytest.raises(ValueError):
        build_publish_request("https://q.local", TOKEN, "not a url", b"", PublishOptions())


def test_responses_parse_into_results_and_typed_errors() -> None:
    """200 is new, 202 deduplicated, 4xx/5xx typed errors with the server's message."""
    ok = parse_publish_response(HttpResponse(200, {}, b'{"messageId":"msg_1"}'))
    assert ok.message_id == "msg_1" and not ok.deduplicated
    dup = parse_publish_response(HttpResponse(202, {}, b'{"messageId":"msg_1"}'))
    assert dup.deduplicated
    with pytest.raises(QStashError) as info:
        parse_publish_response(HttpResponse(400, {}, b'{"error":"invalid destination"}'))
    assert info.value.status == 400 and info.value.message == "invalid destination"
    with pytest.raises(QStashError, match="502"):
        parse_publish_response(HttpResponse(502, {}, b"<html>bad gateway</html>"))
    limited = HttpResponse(
        429,
        {"ratelimit-limit": "500", "ratelimit-remaining": "0", "other": "x"},
        b'{"error":"daily limit"}',
    )
    with pytest.raises(QStashRateLimited) as rl:
        parse_publish_response(limited)
    assert rl.value.headers == {"ratelimit-limit": "500", "ratelimit-remaining": "0"}


class FakeQStash:
    """Records requests; fails the first `fail_times` sends, then answers with `status`."""

    def __init__(self, fail_times: int = 0, status: int = 200) -> None:
        self.requests: list[HttpRequest] = []
        self.fail_times = fail_times
        self.status = status

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.fail_times:
            self.fail_times -= 1
            raise TransportError("connection reset")
        if request.url.endswith("/v2/batch"):
            items = json.loads(request.body)
            body = [{"messageId": f"msg_{i}"} for i, _ in enumerate(items)]
            return HttpResponse(200, {}, json.dumps(body).encode())
        if self.status >= 400:
            return HttpResponse(self.status, {}, b'{"error":"nope"}')
        return HttpResponse(self.status, {}, b'{"messageId":"msg_1"}')


async def test_publish_json_is_the_one_line_twin_of_the_seed() -> None:
    """publish_json(url, body, retries=3, delay="5s") sends JSON with those headers."""
    fake = FakeQStash()
    qstash = QStash.from_env(
        {"QSTASH_TOKEN": TOKEN, "QSTASH_URL": "http://q.local"}, transport=fake
    )
    body = {"orderId": 42, "email": "a@example.com"}
    result = await qstash.publish_json(DEST, body, retries=3, delay="5s")
    assert result.message_id == "msg_1"
    [sent] = fake.requests
    assert json.loads(sent.body) == body
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Upstash-Retries"] == "3" and sent.headers["Upstash-Delay"] == "5s"


async def test_publish_without_dedup_is_never_retried() -> None:
    """A transport failure without a deduplication id surfaces after one attempt."""
    fake = FakeQStash(fail_times=1)
    qstash = QStash(TOKEN, url="http://q.local", transport=fake)
    with pytest.raises(TransportError):
        await qstash.publish(DEST, "hi")
    assert len(fake.requests) == 1


async def test_publish_with_dedup_retries_transport_errors_bounded() -> None:
    """With a deduplication id a transport failure is retried, at most retry_attempts times."""
    fake = FakeQStash(fail_times=1)
    qstash = QStash(TOKEN, url="http://q.local", transport=fake)
    assert (await qstash.publish(DEST, "hi", deduplication_id="d1")).message_id == "msg_1"
    assert len(fake.requests) == 2
    always = FakeQStash(fail_times=10)
    qstash = QStash(TOKEN, url="http://q.local", transport=always, retry_attempts=2)
    with pytest.raises(TransportError):
        await qstash.publish(DEST, "hi", content_based_deduplication=True)
    assert len(always.requests) == 2


async def test_http_errors_are_not_retried_and_hide_the_token() -> None:
    """An error status raises QStashError once; neither message nor repr shows the token."""
    fake = FakeQStash(status=500)
    qstash = QStash(TOKEN, url="http://q.local", transport=fake)
    with pytest.raises(QStashError) as info:
        await qstash.publish_json(DEST, {}, deduplication_id="d")
    assert len(fake.requests) == 1
    assert TOKEN not in str(info.value) and TOKEN not in repr(qstash)


async def test_batch_json_returns_one_result_per_message() -> None:
    """batch_json sends one /v2/batch request with destination, headers and JSON body per item."""
    fake = FakeQStash()
    qstash = QStash(TOKEN, url="http://q.local", transport=fake)
    results = await qstash.batch_json(
        [{"url": DEST, "body": {"n": 1}, "retries": 0}, {"url": DEST + "/2", "body": [2]}]
    )
    assert [r.message_id for r in results] == ["msg_0", "msg_1"]
    items = json.loads(fake.requests[0].body)
    assert items[0]["destination"] == DEST and json.loads(items[0]["body"]) == {"n": 1}
    assert items[0]["headers"]["Upstash-Retries"] == "0"
    assert items[1]["headers"]["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        await qstash.batch_json([{"body": 1}])
    with pytest.raises(ValueError):
        await qstash.batch_json([{"url": DEST, "bogus": 1}])


def test_from_env_validates_and_defaults_the_url() -> None:
    """QSTASH_URL defaults to the public endpoint; a missing token names the variable."""
    assert QStash.from_env({"QSTASH_TOKEN": TOKEN}).url == "https://qstash.upstash.io"
    with pytest.raises(ConfigError, match="QSTASH_TOKEN"):
        QStash.from_env({})
    with pytest.raises(ConfigError, match="QSTASH_URL"):
        QStash.from_env({"QSTASH_TOKEN": TOKEN, "QSTASH_URL": "qstash.local"})
