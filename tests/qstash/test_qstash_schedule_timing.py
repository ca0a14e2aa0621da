"""The local QStash's schedule clock (pure): cron ticks in cron time, real runs at the same
intervals times the time scale, no drift, missed runs skipped, CRON_TZ honoured; and a run's
bookkeeping racing a delete, a pause or a replacement (on the devstack's Redis)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.qstash.delivery import following_run, next_cron_ms
from devstack.qstash.store import QStashStore


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("*/5 * * * *", "2026-01-01T12:03:10", "2026-01-01T12:05:00"),
        ("*/5 * * * *", "2026-01-01T12:05:00", "2026-01-01T12:10:00"),
        ("0 3 * * *", "2026-01-01T12:00:00", "2026-01-02T03:00:00"),
        ("CRON_TZ=Europe/Paris 0 9 * * *", "2026-01-01T00:00:00", "2026-01-01T08:00:00"),
    ],
)
def test_next_cron_tick(cron: str, after: str, expected: str) -> None:
    """The first tick strictly after a time, in UTC unless CRON_TZ names a zone."""
    assert next_cron_ms(cron, ms(after)) == ms(expected)


@pytest.mark.parametrize("cron", ["", "* * * *", "61 * * * *", "CRON_TZ=Nowhere/City * * * * *"])
def test_bad_cron_is_a_value_error(cron: str) -> None:
    """An expression croniter rejects (or an unknown zone) raises ValueError."""
    with pytest.raises(ValueError):
        next_cron_ms(cron, 0)


def test_real_time_runs_exactly_on_the_cron_without_drift() -> None:
    """At scale 1, firing a few ms late does not move the following run."""
    due = ms("2026-01-01T12:05:00")
    virtual, real = following_run("*/5 * * * *", virtual=due, real=due, now=due + 7, time_scale=1)
    assert (virtual, real) == (ms("2026-01-01T12:10:00"), ms("2026-01-01T12:10:00"))


def test_scaled_time_shrinks_the_interval() -> None:
    """At scale 0.001 a five-minute cron runs every 300 ms of real time."""
    due_virtual, due_real = ms("2026-01-01T12:05:00"), 1_000_000
    virtual, real = following_run(
        "*/5 * * * *", virtual=due_virtual, real=due_real, now=due_real + 2, time_scale=0.001
    )
    assert virtual == ms("2026-01-01T12:10:00") and real == due_real + 300


def test_missed_runs_are_skipped() -> None:
    """After a long stop, the next run is the first tick still ahead, not a backlog."""
    due = ms("2026-01-01T12:05:00")
    now = ms("2026-01-01T14:02:00")
    virtual, real = following_run("*/5 * * * *", virtual=due, real=due, now=now, time_scale=1)
    assert (virtual, real) == (ms("2026-01-01T14:05:00"), ms("2026-01-01T14:05:00"))


@pytest.mark.integration
async def test_a_run_never_resurrects_or_unpauses_a_schedule(fast_stack: dict[str, Any]) -> None:
    """A schedule deleted or paused while it fired stays deleted or paused; a replaced one
    keeps its new timing; an untouched one gets its next run."""
    store = QStashStore(str(fast_stack["redis_url"]), prefix=f"test:{uuid.uuid4().hex}:")
    try:
        base = {"scheduleId": "s", "cron": "* * * * *", "virtualNext": 100, "isPaused": False}
        timing = {"previousVirtual": 100, "virtualNext": 160}
        await store.put_schedule({**base, "nextScheduleTime": 10}, 10)
        await store.delete_schedule("s")
        await store.record_run("s", {"lastScheduleTime": 11}, timing, 70)
        assert await store.get_schedule("s") is None and await store.due_schedules(10**12) == []

        await store.put_schedule({**base, "nextScheduleTime": 10, "isPaused": True}, None)
        await store.record_run("s", {"lastScheduleTime": 11}, timing, 70)
        paused = await store.get_schedule("s")
        assert paused is not None and paused["isPaused"] and paused["lastScheduleTime"] == 11
        assert await store.due_schedules(10**12) == []

        await store.put_schedule({**base, "virtualNext": 500, "nextScheduleTime": 50}, 50)
        await store.record_run("s", {"lastScheduleTime": 12}, timing, 70)
        replaced = await store.get_schedule("s")
        assert replaced is not None and replaced["nextScheduleTime"] == 50
        assert replaced["virtualNext"] == 500

        await store.put_schedule({**base, "nextScheduleTime": 10}, 10)
        await store.record_run("s", {"lastScheduleTime": 13}, timing, 70)
        ran = await store.get_schedule("s")
        assert ran is not None and (ran["virtualNext"], ran["nextScheduleTime"]) == (160, 70)
        assert await store.due_schedules(70) == ["s"]
    finally:
        await store.close()
