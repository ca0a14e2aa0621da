"""Integration tests: bearer / query tokens and the read-only token."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Devstack

pytestmark = pytest.mark.integration


async def test_bearer_and_query_token(devstack: Devstack, unique_prefix: str) -> None:
    """Both Authorization: Bearer and ?_token= authenticate."""
    key = unique_prefix + "auth"
    async with httpx.AsyncClient(base_url=devstack.redis_rest_url) as http:
        bearer = await http.post(
            "/",
            json=["SET", key, "1"],
            headers={"Authorization": f"Bearer {devstack.redis_rest_token}"},
        )
        assert bearer.json() == {"result": "OK"}
        query = await http.get(f"/get/{key}", params={"_token": devstack.redis_rest_token})
        assert query.json() == {"result": "1"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
async def test_missing_or_wrong_token(devstack: Devstack, headers: dict[str, str]) -> None:
    """No token or a wrong one: 401 with a JSON error."""
    async with httpx.AsyncClient(base_url=devstack.redis_rest_url) as http:
        response = await http.post("/", json=["PING"], headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}
    assert "upstash-sync-token" in response.headers


async def test_read_only_token(devstack: Devstack, unique_prefix: str) -> None:
    """The read-only token reads but cannot write or run scripts."""
    key = unique_prefix + "ro"
    full = {"Authorization": f"Bearer {devstack.redis_rest_token}"}
    read_only = {"Authorization": f"Bearer {devstack.redis_rest_readonly_token}"}
    async with httpx.AsyncClient(base_url=devstack.redis_rest_url) as http:
        await http.post("/", json=["SET", key, "v"], headers=full)
        assert (await http.post("/", json=["GET", key], headers=read_only)).json() == {
            "result": "v"
        }
        for args in (["SET", key, "w"], ["DEL", key], ["EVAL", "return 1", 0]):
            refused = await http.post("/", json=args, headers=read_only)
            assert refused.status_code in (401, 403)
            assert refused.json()["error"].startswith("NOPERM")
        pipeline = await http.post(
            "/pipeline", json=[["GET", key], ["SET", key, "x"]], headers=read_only
        )
        assert pipeline.json()[0] == {"result": "v"}
        assert pipeline.json()[1]["error"].startswith("NOPERM")
        assert (await http.post("/", json=["GET", key], headers=full)).json() == {"result": "v"}
