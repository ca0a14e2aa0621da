"""``python -m devstack up [--json]``: run the local stack until SIGINT/SIGTERM.

With ``--json`` exactly one line goes to stdout once every service is ready::

    {"redis_rest_url": "http://127.0.0.1:PORT", "redis_rest_token": "devstack-token",
     "redis_rest_readonly_token": "devstack-readonly-token",
     "redis_url": "redis://127.0.0.1:RPORT", "redis_pid": 1234, "pid": 1233}

``--regions 3`` adds ``"regions": [{"redis_rest_url", "redis_url", "redis_pid",
"latency_ms"}, ...]`` (three independent Redis servers, the first being the one above);
``--region-latency-ms 0,0,150`` delays each region's REST answers (a far-away region).

Logs go to stderr only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from devstack.console.service import ConsoleOptions, ConsoleService
from devstack.email_sink import EmailSinkOptions, EmailSinkService
from devstack.qstash import QStashOptions, QStashService
from devstack.redis_process import default_binary
from devstack.services import (
    RedisRestService,
    RedisService,
    RegionsService,
    RestOptions,
    Service,
)

log = logging.getLogger("devstack")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Redis and the Upstash-compatible REST server")
    up.add_argument("--json", action="store_true", help="print one JSON line when ready")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=0, help="REST port (default: a free one)")
    up.add_argument("--data-dir", type=Path, default=None, help="persist Redis data here")
    up.add_argument("--token", default="devstack-token")
    up.add_argument("--readonly-token", default="devstack-readonly-token")
    up.add_argument("--max-request-bytes", type=int, default=1024 * 1024)
    up.add_argument(
        "--redis-restart-delay",
        type=float,
        default=0.5,
        help="seconds to wait before restarting a Redis child that died",
    )
    up.add_argument("--qstash-port", type=int, default=0, help="QStash port (default: a free one)")
    up.add_argument(
        "--qstash-time-scale",
        type=float,
        default=1.0,
        help="multiply QStash delays and retry backoff (devstack only; tests use 0.001)",
    )
    up.add_argument("--email-port", type=int, default=0, help="email sink port (default: free)")
    up.add_argument(
        "--regions",
        type=int,
        default=1,
        help="independent Redis regions (each its own Valkey and REST URL; JSON key `regions`)",
    )
    up.add_argument(
        "--region-latency-ms",
        default="",
        help="comma-separated delay added to each region's REST answers, e.g. 0,0,150",
    )
    up.add_argument("--console-port", type=int, default=0, help="console port (default: free)")
    up.add_argument("-v", "--verbose", action="store_true")
    dev = sub.add_parser("dev", help="the stack plus the API (make dev / make dev-worker)")
    dev.add_argument("--worker", action="store_true", help="serve the Worker (Pyodide) on 8787")
    dev.add_argument("--port", type=int, default=None, help="API port (8000; Worker 8787)")
    return parser.parse_args(argv)


def _latencies(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(
            f"--region-latency-ms: numbers separated by commas, got {text!r}"
        ) from None
    if any(value < 0 for value in values):
        raise SystemExit("--region-latency-ms must not be negative")
    return values


def build_services(args: argparse.Namespace) -> list[Service]:
    if not 1 <= args.regions <= 16:
        raise SystemExit("--regions must be between 1 and 16")
    latencies = _latencies(args.region_latency_ms)
    options = RestOptions(
        host=args.host,
        port=args.port,
        token=args.token,
        readonly_token=args.readonly_token,
        max_request_bytes=args.max_request_bytes,
        latency_s=(latencies[0] if latencies else 0.0) / 1000,
    )
    binary = default_binary()
    regions: list[Service] = []
    if args.regions > 1 or latencies:
        regions.append(
            RegionsService(args.regions, binary, args.redis_restart_delay, options, latencies)
        )
    return [
        RedisService(binary, args.data_dir, args.redis_restart_delay),
        RedisRestService(options),
        *regions,
        QStashService(
            QStashOptions(host=args.host, port=args.qstash_port, time_scale=args.qstash_time_scale)
        ),
        EmailSinkService(EmailSinkOptions(host=args.host, port=args.email_port)),
        ConsoleService(ConsoleOptions(host=args.host, port=args.console_port)),
    ]


def announce(info: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info), flush=True)
        return
    lines = ["devstack is up (Ctrl-C to stop):"]
    lines += [f"  {key:<28} {value}" for key, value in info.items()]
    lines += [
        "",
        f"  export UPSTASH_REDIS_REST_URL={info.get('redis_rest_url')}",
        f"  export UPSTASH_REDIS_REST_TOKEN={info.get('redis_rest_token')}",
    ]
    print("\n".join(lines), flush=True)


async def run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    info: dict[str, object] = {}
    try:
        for service in build_services(args):
            info.update(await service.start(info))
            started.append(service)
        info["pid"] = os.getpid()
        announce(info, args.json)
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        for service in reversed(started):
            with contextlib.suppress(Exception):
                await service.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "dev":
        from devstack.dev import run as run_dev

        return run_dev(worker=args.worker, port=args.port)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return asyncio.run(run(args))
    except Exception as exc:
        log.error("devstack failed: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
