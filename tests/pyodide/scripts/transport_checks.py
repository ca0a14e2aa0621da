"""Inside Pyodide: `shared.http.FetchTransport` over `pyodide.http.pyfetch` and `workers.fetch`,
and the Worker's own `JsFetchTransport` (worker/js_fetch.py), against the CPython test's
loopback echo server (ENV: ECHO_URL, REFUSED_URL)."""

import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import workers
from pyodide.http import pyfetch
from pyodide_checks import Checks

from shared.errors import TransportError, TransportTimeout
from shared.http import FetchTransport, HttpRequest, Transport

sys.path.insert(0, "/repo/worker")  # the Worker's modules sit at its bundle root
from js_fetch import HEADER_SETS_KEPT, JsFetchTransport

ENV: dict[str, str] = globals()["ENV"]
ECHO = ENV["ECHO_URL"]
checks = Checks()

FETCHES: dict[str, Callable[..., Awaitable[Any]]] = {
    "pyfetch": pyfetch,
    "workers_fetch": workers.fetch,
}


def echoed(body: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    return data


def cases(transport: Transport) -> dict[str, Callable[[], Awaitable[None]]]:
    async def post_json() -> None:
        payload = json.dumps({"name": "café ☕", "n": 1}).encode()
        response = await transport.send(
            HttpRequest(
                "POST",
                f"{ECHO}/echo/path?q=1",
                headers={"Content-Type": "application/json", "X-Custom": "v1"},
                body=payload,
            )
        )
        assert response.status == 200, response
        assert response.header("X-Echo") == "yes", response.headers
        assert all(name == name.lower() for name in response.headers), response.headers
        echo = echoed(response.body)
        assert echo["method"] == "POST", echo
        assert echo["path"] == "/echo/path?q=1", echo
        assert echo["headers"]["x-custom"] == "v1", echo["headers"]
        assert echo["headers"]["content-type"] == "application/json", echo["headers"]
        assert base64.b64decode(echo["body_b64"]) == payload, echo

    async def get_without_body() -> None:
        response = await transport.send(HttpRequest("GET", f"{ECHO}/echo"))
        echo = echoed(response.body)
        assert (echo["method"], echo["body_b64"]) == ("GET", ""), echo

    async def binary_response_body() -> None:
        response = await transport.send(HttpRequest("GET", f"{ECHO}/bytes"))
        assert response.status == 200
        assert response.body == bytes(range(256)), response.body[:20]

    async def binary_request_body() -> None:
        payload = bytes(range(256))
        response = await transport.send(HttpRequest("POST", f"{ECHO}/echo", body=payload))
        got = base64.b64decode(echoed(response.body)["body_b64"])
        assert got == payload, f"sent {len(payload)} bytes, server got {len(got)}: {got[:40]!r}"

    async def times_out(path: str) -> None:
        started = time.monotonic()
        try:
            await transport.send(HttpRequest("GET", f"{ECHO}{path}", timeout=0.5))
        except TransportTimeout:
            elapsed = time.monotonic() - started
            assert elapsed < 2.0, elapsed
        else:
            raise AssertionError(f"no TransportTimeout for {path}")

    async def timeout_raises_transport_timeout() -> None:
        await times_out("/hang")

    async def timeout_bounds_the_body_too() -> None:
        await times_out("/drip")  # the head arrives, the body never ends

    async def header_sets_never_mix() -> None:
        # Every header set is its own (JsFetchTransport reuses the JS object per set), also
        # past the number of sets kept.
        for n in range(HEADER_SETS_KEPT + 3):
            response = await transport.send(
                HttpRequest("GET", f"{ECHO}/echo", headers={"X-N": str(n), "X-Same": "s"})
            )
            got = echoed(response.body)["headers"]
            assert (got["x-n"], got["x-same"]) == (str(n), "s"), got

    async def connection_refused_raises_transport_error() -> None:
        try:
            await transport.send(HttpRequest("GET", ENV["REFUSED_URL"], timeout=5))
        except TransportTimeout as exc:
            raise AssertionError("refused connection reported as a timeout") from exc
        except TransportError as exc:
            checks.data.setdefault("refused_errors", []).append(str(exc))
        else:
            raise AssertionError("no TransportError")

    return {
        fn.__name__: fn
        for fn in (
            post_json,
            get_without_body,
            binary_response_body,
            binary_request_body,
            timeout_raises_transport_timeout,
            timeout_bounds_the_body_too,
            header_sets_never_mix,
            connection_refused_raises_transport_error,
        )
    }


async def bytes_body_passed_as_is_roundtrips() -> None:
    # FetchTransport hands the body bytes to fetch unchanged; Pyodide's to_js turns them into
    # a Uint8Array, so every byte arrives (a str would turn bytes >= 0x80 into U+FFFD).
    payload = bytes(range(256))
    response = await pyfetch(f"{ECHO}/echo", method="POST", body=payload)
    got = base64.b64decode(echoed(await response.bytes())["body_b64"])
    assert got == payload, f"sent {len(payload)} bytes, server got {len(got)}"


checks.add("pyfetch:bytes_body_passed_as_is_roundtrips", bytes_body_passed_as_is_roundtrips)


async def cancelled_exchange_is_aborted() -> None:
    # A cancelled caller takes its exchange down: the fetch is aborted, not left running
    # (its deadline's timer is cleared with it).
    async def aborted() -> int:
        response = await pyfetch(f"{ECHO}/hang-stats")
        return int((await response.json())["aborted"])

    before = await aborted()
    task = asyncio.ensure_future(
        JsFetchTransport().send(HttpRequest("GET", f"{ECHO}/hang", timeout=30))
    )
    await asyncio.sleep(0.3)  # the request reaches the server
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 3
    while await aborted() == before:
        assert time.monotonic() < deadline, "the server never saw the client go away"
        await asyncio.sleep(0.05)


checks.add("js_fetch_transport:cancelled_exchange_is_aborted", cancelled_exchange_is_aborted)
TRANSPORTS: dict[str, Transport] = {
    **{name: FetchTransport(fetch_fn) for name, fetch_fn in FETCHES.items()},
    "js_fetch_transport": JsFetchTransport(),
}
for transport_name, transport in TRANSPORTS.items():
    for case_name, case_fn in cases(transport).items():
        checks.add(f"{transport_name}:{case_name}", case_fn)

await checks.run()  # noqa: F704
