"""QStash operations from the command line (credentials from the environment or --env-file).

    python -m tools.qstash schedule-flush [--cron "*/5 * * * *"]   # APP_URL's flush schedule
    python -m tools.qstash schedules                               # list schedules
    python -m tools.qstash unschedule SCHEDULE_ID
    python -m tools.qstash dlq [--url URL]                         # list dead letters
    python -m tools.qstash dlq-show DLQ_ID
    python -m tools.qstash dlq-retry DLQ_ID [DLQ_ID ...]           # publish them again
    python -m tools.qstash dlq-delete DLQ_ID [DLQ_ID ...]
    python -m tools.qstash log MESSAGE_ID                          # a message's state changes
    python -m tools.qstash flow KEY                                # a flow-control key's state

Reads QSTASH_TOKEN and QSTASH_URL (default the public endpoint); `schedule-flush` also
reads APP_URL (or VERCEL_URL) and forwards VERCEL_AUTOMATION_BYPASS_SECRET when set.
`make qstash ARGS="dlq"` runs the same. Exit 2 for a usage or configuration error, 1 when
QStash refuses a call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.errors import ConfigError, UpstashError
from shared.jobs import operations as ops
from shared.qstash import QStashAdmin
from shared.routes import FLUSH_OUTBOX, public_url
from shared.settings import app_url_from


def read_env_file(path: str) -> dict[str, str]:
    """`KEY=VALUE` lines (a `.env`); blank lines and `#` comments skipped, quotes removed."""
    values: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.qstash", description=__doc__.split("\n")[0])
    p.add_argument("--env-file", help="read variables from this file (over the environment)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub = p.add_subparsers(dest="command", required=True)
    flush = sub.add_parser("schedule-flush", help="create or replace the outbox flush schedule")
    flush.add_argument("--cron", default=ops.FLUSH_CRON)
    sub.add_parser("schedules", help="list schedules")
    unschedule = sub.add_parser("unschedule", help="delete a schedule")
    unschedule.add_argument("schedule_id")
    dlq = sub.add_parser("dlq", help="list dead-lettered messages")
    dlq.add_argument("--url", help="only those for this destination URL")
    show = sub.add_parser("dlq-show", help="one dead letter with its last response")
    show.add_argument("dlq_id")
    retry = sub.add_parser("dlq-retry", help="publish dead letters again")
    retry.add_argument("dlq_ids", nargs="+")
    delete = sub.add_parser("dlq-delete", help="delete dead letters")
    delete.add_argument("dlq_ids", nargs="+")
    log = sub.add_parser("log", help="a message's log (oldest first)")
    log.add_argument("message_id")
    flow = sub.add_parser("flow", help="a flow-control key's wait list and counters")
    flow.add_argument("key")
    return p


def emit(args: argparse.Namespace, data: object, lines: Sequence[str]) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        for line in lines:
            print(line)


async def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    admin = QStashAdmin.from_env(env)
    try:
        if args.command == "schedule-flush":
            app_url = app_url_from(env)
            flush_url = public_url(app_url, FLUSH_OUTBOX)
            bypass = str(env.get("VERCEL_AUTOMATION_BYPASS_SECRET") or "").strip()
            forward = {"x-vercel-protection-bypass": bypass} if bypass else {}
            schedule_id = await ops.create_flush_schedule(
                admin, app_url, cron=args.cron, forward_headers=forward
            )
            emit(
                args,
                {"scheduleId": schedule_id, "cron": args.cron},
                [f"{schedule_id}: GET {flush_url} on '{args.cron}' (signed)"],
            )
        elif args.command == "schedules":
            schedules = await admin.list_schedules()
            emit(
                args,
                [vars_of(s) for s in schedules],
                [
                    f"{s.schedule_id}  {s.cron!r}  {s.method} {s.destination}"
                    f"{'  (paused)' if s.paused else ''}  next {when(s.next_schedule_time)}"
                    for s in schedules
                ],
            )
        elif args.command == "unschedule":
            await admin.delete_schedule(args.schedule_id)
            emit(args, {"deleted": args.schedule_id}, [f"deleted {args.schedule_id}"])
        elif args.command == "dlq":
            dead = await ops.dead_letters(admin, url=args.url)
            emit(
                args,
                [vars_of(d) for d in dead],
                [
                    f"{d.dlq_id}  message {d.message.message_id}  {d.message.url}  "
                    f"-> {d.response_status}  created {when(d.message.created_at)}"
                    for d in dead
                ]
                or ["the DLQ is empty"],
            )
        elif args.command == "dlq-show":
            d = await admin.get_dlq(args.dlq_id)
            emit(
                args,
                vars_of(d),
                [
                    f"dlq id       {d.dlq_id}",
                    f"message id   {d.message.message_id}",
                    f"destination  {d.message.method} {d.message.url}",
                    f"body         {d.message.body if d.message.body is not None else '(binary)'}",
                    f"last answer  {d.response_status} {d.response_body or ''}",
                ],
            )
        elif args.command == "dlq-retry":
            retried = await ops.retry_dead_letters(admin, args.dlq_ids)
            emit(args, retried, [f"{k} -> new message {v}" for k, v in retried.items()])
        elif args.command == "dlq-delete":
            count = await ops.delete_dead_letters(admin, args.dlq_ids)
            emit(args, {"deleted": count}, [f"deleted {count}"])
        elif args.command == "log":
            events = await ops.message_log(admin, args.message_id)
            emit(
                args,
                [vars_of(e) for e in events],
                [
                    f"{when(e.time)}  {e.state:<16} {e.url or ''}"
                    + (f"  status {e.response_status}" if e.response_status else "")
                    + (f"  error {e.error}" if e.error else "")
                    + (f"  next {when(e.next_delivery_time)}" if e.next_delivery_time else "")
                    for e in events
                ]
                or [f"no log for {args.message_id}"],
            )
        elif args.command == "flow":
            info = await admin.flow_control(args.key)
            emit(
                args,
                vars_of(info),
                [
                    f"key          {info.key}",
                    f"waiting      {info.wait_list_size}",
                    f"in flight    {info.parallelism_count} of {info.parallelism_max or '-'}",
                    f"rate         {info.rate_count} of {info.rate_max or '-'}"
                    f" per {info.rate_period or '-'}s",
                ],
            )
        return 0
    finally:
        await admin.aclose()


def vars_of(value: object) -> object:
    """A dataclass (with nested ones) as plain data for --json."""
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = dict(os.environ)
    if args.env_file:
        env.update(read_env_file(args.env_file))
    try:
        return asyncio.run(run(args, env))
    except (ConfigError, ValueError) as exc:
        print(f"qstash: {exc}", file=sys.stderr)
        return 2
    except UpstashError as exc:
        print(f"qstash: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
