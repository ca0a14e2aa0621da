"""Inside Pyodide with the real `workers` SDK: the Worker adapter's conversions both ways
(worker/worker_adapter.py), on real JS `Request`/`Response` objects."""

import sys
from urllib.parse import urlsplit

import js
import workers
from pyodide.ffi import to_js
from pyodide_checks import Checks

from shared.web.http import Response

sys.path.insert(0, "/repo/worker")  # the Worker's modules sit at its bundle root
from worker_adapter import _path_and_query, to_shared_request, to_worker_response

checks = Checks()
URLS = [
    "http://127.0.0.1:8787/api/orders/ord_1?token=a&b=c",
    "https://example.com/",
    "https://example.com",
    "http://[::1]:8787/a/b?q#frag",
    "https://example.com/a#f?x",
    "https://example.com/?",
    "http://example.com/a%20b?x=%2F&y=caf%C3%A9",
    "https://user:pw@example.com:8443/p;params?q=1",
]


def js_request(url: str, headers: dict[str, str], method: str = "GET", body: str | None = None):
    init = {"method": method, "headers": to_js(headers, dict_converter=js.Object.fromEntries)}
    if body is not None:
        init["body"] = body
    return workers.python_from_rpc(
        js.Request.new(url, to_js(init, dict_converter=js.Object.fromEntries))
    )


def header(js_response, name: str) -> str | None:
    value = js_response.headers.get(name)
    return value if isinstance(value, str) else None  # JS null is not None in every Pyodide


@checks.case
async def path_and_query_as_urlsplit_reads_them() -> None:
    for url in URLS:
        parts = urlsplit(url)
        assert _path_and_query(url) == (parts.path or "/", parts.query), url


@checks.case
async def request_read_from_the_js_request() -> None:
    request = js_request(
        "https://example.com/api/orders/ord_1?token=t",
        {"CF-Connecting-IP": "203.0.113.9", "X-Two": "a", "Content-Type": "application/json"},
        method="post",
        body='{"k": "v"}',
    )
    shared = await to_shared_request(request, 1024)
    assert (shared.method, shared.path, shared.query_string) == (
        "POST",
        "/api/orders/ord_1",
        "token=t",
    )
    assert shared.client_ip == "203.0.113.9", shared.client_ip
    assert shared.headers["x-two"] == "a" and shared.body == b'{"k": "v"}', shared
    assert shared.country is None  # no request.cf outside workerd


@checks.case
async def json_answer_keeps_its_bytes_and_headers() -> None:
    answer = Response.json({"name": "café ☕"}, 201, {"X-Request-Id": "r1"})
    js_response = to_worker_response(answer)
    assert js_response.status == 201
    assert header(js_response, "content-type") == "application/json"
    assert header(js_response, "x-request-id") == "r1"
    assert (await js_response.arrayBuffer()).to_bytes() == answer.body


@checks.case
async def binary_or_untyped_body_is_sent_as_bytes() -> None:
    for answer in (
        Response(200, bytes(range(256)), {"content-type": "application/octet-stream"}),
        Response(200, b"no type", {}),
    ):
        js_response = to_worker_response(answer)
        assert (await js_response.arrayBuffer()).to_bytes() == answer.body
        assert header(js_response, "content-type") == answer.headers.get("content-type")


@checks.case
async def no_content_has_no_body() -> None:
    js_response = to_worker_response(Response(204, b"", {"x-request-id": "r2"}))
    assert js_response.status == 204
    assert (await js_response.arrayBuffer()).byteLength == 0


await checks.run()  # noqa: F704
