"""Nothing is lost: with `--data-dir`, a devstack stopped in the middle of a retry sequence
resumes it after a restart and ends in delivery, or in the DLQ."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from qstash_sink import Sink, message_finished_async, stack_on

from shared.qstash import QStash, Receiver
from tests.conftest import qstash_env_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def publish(info: dict[str, Any], url: str, **options: Any) -> str:
    client = QStash.from_env(qstash_env_of(info))
    try:
        return (await client.publish_json(url, {"job": url}, **options)).message_id
    finally:
        await client.aclose()


async def attempts_recorded(
    info: dict[str, Any], message_id: str, retried: int, timeout: float = 10.0
) -> None:
    """Waits (bounded) until the devstack has recorded `retried` failed attempts of a message.

    The sink records a request when it arrives, before it answers; the scheduler records
    the attempt (retried + 1, persisted) only once the answer is back. A stop in between
    cuts the attempt short, and the devstack rightly makes it again after the restart with
    the same `Upstash-Retried`. A test that needs the attempt counted waits for this.
    """
    env = qstash_env_of(info)
    url = f"{env['QSTASH_URL']}/v2/messages/{message_id}"
    headers = {"Authorization": f"Bearer {env['QSTASH_TOKEN']}"}
    async with httpx.AsyncClient() as client:

        async def recorded() -> bool:
            response = await client.get(url, headers=headers)
            return response.status_code == 200 and response.json()["retried"] >= retried

        await eventually(recorded, f"attempt {retried} of {message_id} recorded", timeout=timeout)


async def test_restart_mid_retry_sequence_still_delivers(tmp_path: Path, sink: Sink) -> None:
    """A message failing when the devstack stops is delivered after the restart."""
    down = True
    sink.scripts["/resume"] = lambda n: (503, {"Retry-After": "2000"}) if down else (200, {})
    async with stack_on(tmp_path) as first:
        message_id = await publish(first, sink.url("/resume"), retries=3)
        await sink.wait_for("/resume", 1)
        await attempts_recorded(first, message_id, retried=1)
    down = False
    async with stack_on(tmp_path) as second:
        attempts = await sink.wait_for("/resume", 2, timeout=15)
        assert [a.headers["Upstash-Message-Id"] for a in attempts] == [message_id] * 2
        assert attempts[1].headers["Upstash-Retried"] == "1"
        receiver = Receiver.from_env(qstash_env_of(second))
        receiver.verify(
            attempts[1].headers["Upstash-Signature"], attempts[1].body, url=sink.url("/resume")
        )


async def test_restart_with_destination_still_down_ends_in_the_dlq(
    tmp_path: Path, sink: Sink
) -> None:
    """A message whose destination stays down through a restart ends in the DLQ, with its id."""
    sink.scripts["/down"] = lambda n: (503, {"Retry-After": "1500"})
    async with stack_on(tmp_path) as first:
        message_id = await publish(first, sink.url("/down"), retries=2)
        await sink.wait_for("/down", 1)
        await attempts_recorded(first, message_id, retried=1)
    async with stack_on(tmp_path) as second:
        await sink.wait_for("/down", 3, timeout=15)
        env = qstash_env_of(second)
        async with httpx.AsyncClient() as client:

            async def in_dlq() -> bool:
                response = await client.get(
                    f"{env['QSTASH_URL']}/v2/dlq",
                    headers={"Authorization": f"Bearer {env['QSTASH_TOKEN']}"},
                )
                return message_id in [m["messageId"] for m in response.json()["messages"]]

            await eventually(in_dlq, "the message to reach the DLQ", timeout=5)
        await message_finished_async(qstash_env_of(second), message_id)
        assert len(sink.at("/down")) == 3


async def test_attempt_cut_short_by_a_stop_runs_again_after_restart(
    tmp_path: Path, sink: Sink
) -> None:
    """An attempt in flight when the devstack stops is made again after the restart."""
    sink.holds["/inflight"] = asyncio.Event()
    async with stack_on(tmp_path) as first:
        message_id = await publish(first, sink.url("/inflight"), retries=1)
        await sink.wait_for("/inflight", 1)
    sink.holds["/inflight"].set()
    async with stack_on(tmp_path) as second:
        attempts = await sink.wait_for("/inflight", 2, timeout=15)
        assert [a.headers["Upstash-Message-Id"] for a in attempts] == [message_id] * 2
        await message_finished_async(qstash_env_of(second), message_id)
        assert len(sink.at("/inflight")) == 2
