"""The README cannot drift: its Python blocks compile, its main example runs against the
devstack, and its settings table matches what the code reads."""

from __future__ import annotations

import re
import textwrap
import uuid
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Devstack

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_python_blocks_compile() -> None:
    """Every Python block in the README is valid Python (top-level await allowed)."""
    assert len(BLOCKS) >= 5
    for block in BLOCKS:
        body = textwrap.indent(block, "    ")
        compile(f"async def _block():\n{body}\n    pass\n", "README.md", "exec")


async def test_core_example_runs(devstack: Devstack) -> None:
    """The 'Using the core on its own' example runs as written against the local stack."""
    block = next(b for b in BLOCKS if "def handler" in b)
    env = {
        "UPSTASH_REDIS_REST_URL": devstack.redis_rest_url,
        "UPSTASH_REDIS_REST_TOKEN": devstack.redis_rest_token,
        "QSTASH_TOKEN": devstack.raw["qstash_token"],
        "QSTASH_URL": devstack.raw["qstash_url"],
    }
    calls: list[str] = []

    async def load_order(order_id: str) -> dict[str, Any]:
        calls.append(order_id)
        return {"id": order_id}

    class FakeOs:  # the example reads os.environ; hand it the devstack's settings
        environ = env

    namespace: dict[str, Any] = {"load_order": load_order, "APP_URL": "http://127.0.0.1:9"}
    source = block.replace("import os\n", "")
    namespace["os"] = FakeOs
    exec(compile(source, "README.md", "exec"), namespace)
    order_id = f"readme-{uuid.uuid4().hex}"
    status, body, headers = await namespace["handler"](f"10.9.{uuid.uuid4().int % 250}.1", order_id)
    assert status == 200 and body == {"id": order_id} and "X-RateLimit-Limit" in headers
    again = await namespace["handler"]("10.8.0.1", order_id)
    assert again[1] == {"id": order_id} and calls == [order_id]  # the second read was a hit


def _table_variables() -> set[str]:
    section = README.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, re.MULTILINE))


def _code_variables() -> set[str]:
    sources = [
        p.read_text()
        for p in [REPO_ROOT / "shared" / "settings.py", *(REPO_ROOT / "shared").rglob("*.py")]
    ]
    sources.append((REPO_ROOT / "vercel_api" / "index.py").read_text())
    text = "\n".join(sources)
    return set(re.findall(r'"([A-Z][A-Z0-9_]{2,})"', text))


def test_settings_table_matches_the_code() -> None:
    """Every variable in the README table is read by the code, and the defaults agree."""
    table = _table_variables()
    missing = {v for v in table if v not in _code_variables()}
    assert not missing, f"documented but never read: {missing}"
    from shared.settings import Settings

    base = {
        "UPSTASH_REDIS_REST_URL": "https://x.upstash.io",
        "UPSTASH_REDIS_REST_TOKEN": "t",
        "QSTASH_TOKEN": "q",
        "QSTASH_CURRENT_SIGNING_KEY": "c",
        "QSTASH_NEXT_SIGNING_KEY": "n",
        "APP_URL": "https://app.example",
        "RESEND_API_KEY": "r",
        "EMAIL_FROM": "a@b.co",
        "ORDER_TOKEN_SECRET": "o" * 32,
    }
    settings = Settings.from_env(base)
    section = README.split("## Environment variables", 1)[1]
    assert f"(default `{settings.rate_limit.tokens}/10s`)" in section
    assert "default `3/1h`" in section and settings.email_rate_limit.tokens == 3
    assert f"(default `{settings.cache_ttl_s}s`)" in section
    assert f"(default {settings.max_body_bytes})" in section


@pytest.mark.parametrize("name", [".env.example", ".dev.vars.example"])
def test_env_examples_only_name_known_variables(name: str) -> None:
    """The example env files list variables the code reads."""
    text = (REPO_ROOT / name).read_text()
    names = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))
    assert names and not names - _code_variables()
