"""The official @upstash/redis (npm) works against the devstack unchanged: a compatibility
oracle for our reading of the REST protocol."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, Devstack

SCRIPT = Path(__file__).with_name("oracle_upstash_redis.mjs")


def test_upstash_redis_npm_client(devstack: Devstack) -> None:
    """Commands, pipeline, transaction, EVAL, scripts, SCAN and auto-pipelining all work."""
    if not (REPO_ROOT / "node_modules" / "@upstash" / "redis").is_dir():
        pytest.fail("node_modules/@upstash/redis missing: run `make setup` (npm ci)")
    prefix = f"npm:{uuid.uuid4().hex}:"
    proc = subprocess.run(
        [
            shutil.which("node") or "node",
            str(SCRIPT),
            devstack.redis_rest_url,
            devstack.redis_rest_token,
            prefix,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["set"] == "OK" and out["get"] == "hello" and out["incr"] == 1
    assert out["hset"] == 2 and out["hgetall"] == ["f1", "v1", "f2", "v2"]
    assert out["zadd"] == 1 and out["zrange"] == ["m", "1.5"]
    assert out["pipeline"] == ["OK", 2, "2"]
    assert out["multi"] == [1, 2]
    assert out["eval"] == "from-lua"
    assert out["script"] == [2, 5]
    assert out["scan"][0] == "0" and len(out["scan"][1]) >= 6
    assert out["ping"] == "PONG"
    assert out["auto"] == [1, 2, 2]  # this client deserializes "2" to 2
