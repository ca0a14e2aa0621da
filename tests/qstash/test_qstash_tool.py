"""`python -m tools.qstash` as the README documents it: `--env-file` instead of the
environment, `flow KEY` (text and JSON), `schedule-flush` re-run replacing the deployment's
one schedule, and `make qstash ARGS=...` running the same module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.jobs.operations import flush_schedule_id
from shared.qstash import FlowControl, QStash, QStashAdmin
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def tool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The tool with only PATH and `env` in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "tools.qstash", *args],
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_env_file_and_flow_command(qstash_env: dict[str, str], tmp_path: Path) -> None:
    """Credentials from `--env-file` (export, quotes, comments) drive `flow KEY`, whose JSON
    and text show the key's limits; an unknown key exits 1 with QStash's 404."""
    key = f"tool-{uuid.uuid4().hex[:8]}"
    qstash = QStash.from_env(qstash_env)
    try:
        waiting = await qstash.publish_json(
            "http://127.0.0.1:9/never", {}, delay="1d", flow_control=FlowControl(key, parallelism=3)
        )
    finally:
        await qstash.aclose()
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# QStash for the tool\n"
        f'export QSTASH_URL="{qstash_env["QSTASH_URL"]}"\n\n'
        f"QSTASH_TOKEN='{qstash_env['QSTASH_TOKEN']}'\n",
        encoding="utf-8",
    )
    as_json = tool({}, "--env-file", str(env_file), "--json", "flow", key)
    assert as_json.returncode == 0, as_json.stderr
    info: dict[str, Any] = json.loads(as_json.stdout)
    assert (info["key"], info["parallelism_max"], info["parallelism_count"]) == (key, 3, 0)
    as_text = tool({}, "--env-file", str(env_file), "flow", key)
    assert as_text.returncode == 0 and f"key          {key}" in as_text.stdout
    assert "in flight    0 of 3" in as_text.stdout
    unknown = tool({}, "--env-file", str(env_file), "flow", f"none-{key}")
    assert unknown.returncode == 1 and "404" in unknown.stderr
    assert qstash_env["QSTASH_TOKEN"] not in unknown.stderr + as_text.stdout
    admin = QStashAdmin.from_env(qstash_env)
    try:
        await admin.cancel_message(waiting.message_id)
    finally:
        await admin.aclose()


async def test_schedule_flush_rerun_replaces_the_deployments_schedule(
    qstash_env: dict[str, str],
) -> None:
    """Running schedule-flush twice for one APP_URL leaves one schedule, with the new cron."""
    app_url = f"http://127.0.0.1:9/{uuid.uuid4().hex[:8]}"
    env = {**qstash_env, "APP_URL": app_url}
    first = tool(env, "--json", "schedule-flush", "--cron", "0 0 1 1 *")
    second = tool(env, "--json", "schedule-flush", "--cron", "0 0 2 1 *")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    schedule_id = json.loads(second.stdout)["scheduleId"]
    assert schedule_id == json.loads(first.stdout)["scheduleId"] == flush_schedule_id(app_url)
    admin = QStashAdmin.from_env(qstash_env)
    try:
        mine = [s for s in await admin.list_schedules() if s.schedule_id == schedule_id]
        assert [s.cron for s in mine] == ["0 0 2 1 *"]
        await admin.delete_schedule(schedule_id)
    finally:
        await admin.aclose()


def test_make_qstash_runs_the_tool_with_args() -> None:
    """`make qstash ARGS="dlq --url X"` runs `python -m tools.qstash dlq --url X`."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "qstash", "ARGS=dlq --url http://x"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    # Under `make test` this is a sub-make: only the recipe line counts, wherever it is.
    lines = dry.stdout.splitlines()
    assert any(line.endswith("-m tools.qstash dlq --url http://x") for line in lines), lines
