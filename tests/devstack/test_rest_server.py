"""Integration tests: the devstack REST server speaks Upstash's Redis REST protocol."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Devstack

pytestmark = pytest.mark.integration

LOCKING_SCRIPT = "#!lua flags=allow-key-locking\nreturn redis.call('INCR', KEYS[1])"


@pytest.fixture
async def client(devstack: Devstack) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client pointed at the REST server with the full token."""
    async with httpx.AsyncClient(
        base_url=devstack.redis_rest_url,
        headers={"Authorization": f"Bearer {devstack.redis_rest_token}"},
        timeout=10,
    ) as http:
        yield http


async def command(http: httpx.AsyncClient, *args: Any, **kwargs: Any) -> httpx.Response:
    return await http.post("/", json=list(args), **kwargs)


async def test_single_command_and_raw_replies(
    client: httpx.AsyncClient, unique_prefix: str
) -> None:
    """SET answers "OK", HGETALL a flat array, SCAN a nested ["cursor", [keys]]."""
    key, hkey = unique_prefix + "k", unique_prefix + "h"
    response = await command(client, "SET", key, "v", "EX", 100)
    assert response.status_code == 200
    assert response.json() == {"result": "OK"}
    assert response.headers["content-type"].startswith("application/json")
    assert (await command(client, "GET", key)).json() == {"result": "v"}
    assert (await command(client, "HSET", hkey, "f", "1", "g", "2")).json() == {"result": 2}
    assert (await command(client, "HGETALL", hkey)).json() == {"result": ["f", "1", "g", "2"]}
    scan = (await command(client, "SCAN", "0", "MATCH", unique_prefix + "*", "COUNT", 1000)).json()
    assert scan["result"][0] == "0"
    assert sorted(scan["result"][1]) == sorted([key, hkey])
    zkey = unique_prefix + "z"
    await command(client, "ZADD", zkey, 1.5, "a")
    assert (await command(client, "ZRANGE", zkey, 0, -1, "WITHSCORES")).json() == {
        "result": ["a", "1.5"]
    }
    assert (await command(client, "GET", unique_prefix + "missing")).json() == {"result": None}
    time_reply = (await command(client, "TIME")).json()["result"]
    assert all(isinstance(part, str) for part in time_reply)
    assert isinstance((await command(client, "INFO", "server")).json()["result"], str)


async def test_redis_errors_are_400_with_code(
    client: httpx.AsyncClient, unique_prefix: str
) -> None:
    """Redis errors keep their code as the first word: ERR, WRONGTYPE."""
    unknown = await command(client, "NOSUCHCOMMAND")
    assert unknown.status_code == 400
    assert unknown.json()["error"].startswith("ERR unknown command")
    key = unique_prefix + "list"
    await command(client, "LPUSH", key, "x")
    wrong = await command(client, "GET", key)
    assert wrong.status_code == 400
    assert wrong.json()["error"].startswith("WRONGTYPE")


async def test_pipeline_is_per_item(client: httpx.AsyncClient, unique_prefix: str) -> None:
    """A failing pipeline item does not stop the others."""
    key = unique_prefix + "p"
    response = await client.post("/pipeline", json=[["SET", key, "x"], ["INCR", key], ["GET", key]])
    assert response.status_code == 200
    body = response.json()
    assert body[0] == {"result": "OK"}
    assert body[1]["error"].startswith("ERR ")
    assert body[2] == {"result": "x"}


async def test_multi_exec(client: httpx.AsyncClient, unique_prefix: str) -> None:
    """Runtime errors stay per item; a discarded transaction is one 400 error object."""
    key = unique_prefix + "m"
    ok = await client.post("/multi-exec", json=[["SET", key, "x"], ["INCR", key], ["GET", key]])
    assert ok.status_code == 200
    body = ok.json()
    assert body[0] == {"result": "OK"}
    assert body[1]["error"].startswith("ERR ")
    assert body[2] == {"result": "x"}
    aborted = await client.post("/multi-exec", json=[["SET", key, "y"], ["NOSUCH"], ["GET", key]])
    assert aborted.status_code == 400
    assert aborted.json()["error"].startswith("EXECABORT")
    assert (await command(client, "GET", key)).json() == {"result": "x"}


async def test_path_style(client: httpx.AsyncClient, unique_prefix: str) -> None:
    """GET /set/k/v, POST raw body as last argument, query parameters as arguments."""
    key = unique_prefix + "path"
    assert (await client.get(f"/set/{key}/v1/EX/100")).json() == {"result": "OK"}
    assert (await client.get(f"/get/{key}")).json() == {"result": "v1"}
    posted = await client.post(
        f"/set/{key}?EX=50", content=b'{"json": "doc"}', headers={"Content-Type": "text/plain"}
    )
    assert posted.json() == {"result": "OK"}
    assert (await client.get(f"/get/{key}")).json() == {"result": '{"json": "doc"}'}
    ttl = (await client.get(f"/ttl/{key}")).json()["result"]
    assert 0 < ttl <= 50


async def test_binary_round_trip(client: httpx.AsyncClient, unique_prefix: str) -> None:
    """Arbitrary bytes go in as a raw body and come back exactly via base64."""
    key = unique_prefix + "bin"
    value = bytes(range(256))
    assert (await client.post(f"/set/{key}", content=value)).json() == {"result": "OK"}
    got = await command(client, "GET", key, headers={"Upstash-Encoding": "base64"})
    assert base64.b64decode(got.json()["result"]) == value
    plain = (await command(client, "GET", key)).json()["result"]
    assert plain.encode("utf-8", "surrogateescape") == value


async def test_base64_encoding(client: httpx.AsyncClient, unique_prefix: str) -> None:
    """Strings are base64 (nested too), OK stays raw, ints and null untouched."""
    key = unique_prefix + "b64"
    headers = {"Upstash-Encoding": "base64"}
    assert (await command(client, "SET", key, "héllo", headers=headers)).json() == {"result": "OK"}
    got = (await command(client, "GET", key, headers=headers)).json()["result"]
    assert base64.b64decode(got).decode() == "héllo"
    body = (
        await client.post(
            "/pipeline",
            json=[["STRLEN", key], ["GET", unique_prefix + "none"], ["MGET", key, key]],
            headers=headers,
        )
    ).json()
    assert body[0] == {"result": len("héllo".encode())}
    assert body[1] == {"result": None}
    assert [base64.b64decode(v).decode() for v in body[2]["result"]] == ["héllo", "héllo"]
    error = await command(client, "INCR", key, headers=headers)
    assert error.json()["error"].startswith("ERR ")


@pytest.mark.parametrize(
    ("content", "content_type", "fragment"),
    [
        (b"not json", "application/json", "expected a JSON body"),
        (b'{"a": 1}', "application/json", "expected a JSON array"),
        (b"[]", "application/json", "non-empty"),
        (b'["SET", "k", ["nested"]]', "application/json", "expected each command argument"),
        (b'["GET", "k"]', "text/plain", "expected Content-Type: application/json"),
        (b'["GET", "k"]', "", "expected Content-Type: application/json"),
    ],
)
async def test_malformed_bodies(
    client: httpx.AsyncClient, content: bytes, content_type: str, fragment: str
) -> None:
    """Malformed JSON command bodies are 400 JSON errors saying what was expected."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/", content=content, headers=headers)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


async def test_charset_utf8_is_tolerated(client: httpx.AsyncClient) -> None:
    """application/json; charset=utf-8 is accepted for the JSON form."""
    response = await client.post(
        "/", content=b'["PING"]', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.json() == {"result": "PONG"}


async def test_pipeline_body_malformed(client: httpx.AsyncClient) -> None:
    """A pipeline body must be an array of arrays."""
    response = await client.post("/pipeline", json=["GET", "k"])
    assert response.status_code == 400
    assert "expected" in response.json()["error"]


async def test_method_not_allowed(client: httpx.AsyncClient) -> None:
    """Methods other than GET and POST answer 405 JSON."""
    response = await client.put("/set/k/v")
    assert response.status_code == 405
    assert "error" in response.json()


async def test_size_limit(client: httpx.AsyncClient, unique_prefix: str) -> None:
    """Bodies over 1 MB are refused with Upstash's wording."""
    big = "x" * (1024 * 1024 + 10)
    response = await command(client, "SET", unique_prefix + "big", big)
    assert response.status_code in (400, 413)
    assert "max request size exceeded" in response.json()["error"]
    raw = await client.post(f"/set/{unique_prefix}big", content=big.encode())
    assert "max request size exceeded" in raw.json()["error"]


async def test_blocked_commands(client: httpx.AsyncClient) -> None:
    """Blocking, transaction and connection commands are not available over REST."""
    for args in (["BLPOP", "k", "0"], ["SUBSCRIBE", "c"], ["SELECT", "1"], ["WATCH", "k"]):
        response = await command(client, *args)
        assert response.status_code == 400
        assert response.json()["error"].startswith("ERR Command is not available")
    assert (await command(client, "ECHO", "hi")).json() == {"result": "hi"}


async def test_sync_token_header(client: httpx.AsyncClient) -> None:
    """Every response, errors included, carries an increasing upstash-sync-token."""
    first = await command(client, "PING", headers={"upstash-sync-token": "whatever"})
    second = await command(client, "NOSUCH")
    assert int(second.headers["upstash-sync-token"]) > int(first.headers["upstash-sync-token"])


async def test_scripts_with_allow_key_locking(
    client: httpx.AsyncClient, unique_prefix: str
) -> None:
    """The Upstash-only flag is stripped and EVALSHA works with the original's SHA."""
    key = unique_prefix + "script"
    sha = hashlib.sha1(LOCKING_SCRIPT.encode()).hexdigest()
    assert (await command(client, "EVAL", LOCKING_SCRIPT, 1, key)).json() == {"result": 1}
    assert (await command(client, "EVALSHA", sha, 1, key)).json() == {"result": 2}
    flagged = "#!lua flags=allow-key-locking,no-writes\nreturn redis.call('GET', KEYS[1])"
    loaded = (await command(client, "SCRIPT", "LOAD", flagged)).json()["result"]
    assert loaded == hashlib.sha1(flagged.encode()).hexdigest()
    assert (await command(client, "EVALSHA", loaded, 1, key)).json() == {"result": "2"}
    body = (
        await client.post(
            "/pipeline", json=[["EVAL", LOCKING_SCRIPT, 1, key], ["EVALSHA", sha, 1, key]]
        )
    ).json()
    assert body == [{"result": 3}, {"result": 4}]
    multi = (await client.post("/multi-exec", json=[["EVALSHA", sha, 1, key]])).json()
    assert multi == [{"result": 5}]


async def test_noscript_passthrough(client: httpx.AsyncClient) -> None:
    """EVALSHA of an unknown SHA is a 400 NOSCRIPT error."""
    response = await command(client, "EVALSHA", "0" * 40, 0)
    assert response.status_code == 400
    assert response.json()["error"].startswith("NOSCRIPT")


async def test_stats_endpoint(client: httpx.AsyncClient) -> None:
    """The devstack-only stats count HTTP requests, commands and round trips."""
    # Other tests may run concurrently on the same server; only check growth.
    before = (await client.get("/_devstack/stats")).json()
    await client.post("/pipeline", json=[["PING"], ["PING"], ["PING"]])
    after = (await client.get("/_devstack/stats")).json()
    assert after["http_requests"] >= before["http_requests"] + 1
    assert after["commands"] >= before["commands"] + 3
    assert after["redis_round_trips"] >= before["redis_round_trips"] + 1
    assert (await client.get("/_devstack/stats", headers={"Authorization": ""})).status_code == 401


async def test_200_concurrent_clients(devstack: Devstack, unique_prefix: str) -> None:
    """200 separate clients at once all get answers."""
    # One shared SSL context: building one per client costs ~60 ms of CPU each.
    tls = ssl.create_default_context()

    async def one(i: int) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30, verify=tls) as http:
            response = await http.post(
                devstack.redis_rest_url,
                json=["INCR", unique_prefix + "counter"],
                headers={"Authorization": f"Bearer {devstack.redis_rest_token}"},
            )
            assert response.status_code == 200, response.text
            return response.json()

    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert sorted(r["result"] for r in results) == list(range(1, 201))
