"""`make dev`: the local stack plus the API, wired together, in the foreground.

Checks the API port first (a taken port is a clear error before anything starts),
starts `devstack up` (Redis REST, QStash, email sink, console) as a child with its log
in `.state/logs/devstack.log`, then serves the API on http://127.0.0.1:8000 (`--port`)
through the Vercel ASGI app (uvicorn, observed for the console), or with `--worker`
through the Worker adapter in Pyodide on port 8787. The console (8100) and the inbox
(8125) keep their ports across runs unless those are taken. APP_URL points at the API,
so the local QStash really calls the job endpoint back. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from devstack.launch import REPO_ROOT, DevstackProcess, start_devstack

DEV_EMAIL_KEY = "re_devstack"
DEV_CRON_SECRET = "devstack-cron-secret"
DEV_ORDER_TOKEN_SECRET = "devstack-order-token-secret-not-for-production"


def app_env(info: Mapping[str, Any], app_url: str) -> dict[str, str]:
    """The environment the app reads, pointing every service at the devstack."""
    return {
        "UPSTASH_REDIS_REST_URL": str(info["redis_rest_url"]),
        "UPSTASH_REDIS_REST_TOKEN": str(info["redis_rest_token"]),
        "QSTASH_URL": str(info["qstash_url"]),
        "QSTASH_TOKEN": str(info["qstash_token"]),
        "QSTASH_CURRENT_SIGNING_KEY": str(info["qstash_current_signing_key"]),
        "QSTASH_NEXT_SIGNING_KEY": str(info["qstash_next_signing_key"]),
        "EMAIL_API_URL": str(info["email_api_url"]),
        "RESEND_API_KEY": DEV_EMAIL_KEY,
        "EMAIL_FROM": "Orders <orders@example.com>",
        "APP_URL": app_url,
        "CRON_SECRET": DEV_CRON_SECRET,
        "ORDER_TOKEN_SECRET": DEV_ORDER_TOKEN_SECRET,
    }


WORKER_NOTE = """
  This is the Worker adapter in offline Pyodide: pydantic cannot load here, so
  POST /api/orders answers 503 (every other route works). `make dev` runs the full flow;
  a deployed Worker vendors pydantic. The console shows QStash, the outbox, emails and
  Redis, but not the Worker's requests (only the uvicorn path reports them).
"""

API_PORT = 8000
WORKER_PORT = 8787
CONSOLE_PORT = 8100
INBOX_PORT = 8125
STATE_DIR = REPO_ROOT / ".state"
LOG_PATH = STATE_DIR / "logs" / "devstack.log"
CRON_HEADER = f"Authorization: Bearer {DEV_CRON_SECRET}"


class PortTaken(RuntimeError):
    """The API port is in use: `make dev` stops before starting anything."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def check_api_port(port: int) -> None:
    """`PortTaken` with a message saying what to do, before the banner."""
    if not 0 < port < 65536:
        raise PortTaken(f"PORT={port} is not a TCP port (1..65535)")
    if not port_is_free(port):
        raise PortTaken(
            f"port {port} is already in use on 127.0.0.1 (another `make dev`?).\n"
            f"Stop it, or pick another port: make dev PORT={port + 1}"
        )


def stable_port(preferred: int) -> int:
    """`preferred` when free (bookmarks keep working across runs), else 0 (any free one)."""
    return preferred if port_is_free(preferred) else 0


def example_email() -> str:
    """A fresh address per run: the per-recipient email limit (3 per hour) never bites."""
    return f"ada+{secrets.token_hex(3)}@example.com"


def banner(info: Mapping[str, Any], app_url: str, worker: bool = False) -> str:
    note = WORKER_NOTE if worker else ""
    email = example_email()
    key = f"demo-{secrets.token_hex(4)}"
    return (
        note
        + f"""
  Console        {info["console_url"]}/   (requests, Redis, QStash, outbox, emails: live)
  API            {app_url}   (health: {app_url}/api/health)
  Email inbox    {info["email_inbox_url"]}
  Redis REST     {info["redis_rest_url"]}   token {info["redis_rest_token"]}
  QStash         {info["qstash_url"]}
  Cron secret    {DEV_CRON_SECRET}   (CRON_SECRET; flush the outbox by hand:)
                 curl -s {app_url}/api/cron/flush-outbox -H '{CRON_HEADER}'
  Logs           {LOG_PATH.relative_to(REPO_ROOT)} (the devstack's; the API logs here)

  Create an order (a fresh address each run: at most 3 emails per recipient per hour):
    curl -s -X POST {app_url}/api/orders -H 'content-type: application/json' \\
      -H 'Idempotency-Key: {key}' \\
      -d '{{"customer_email": "{email}", "currency": "EUR",
           "items": [{{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}}]}}'
  Fetch it (id and access_token from the answer above):
    curl -s {app_url}/api/orders/ORDER_ID -H 'Authorization: Bearer ACCESS_TOKEN'
  The confirmation email shows up in the console and the inbox a few seconds later.
  Rate limit: 10 requests per 10 s per client address (429 after that; RATE_LIMIT).

  Ctrl-C stops everything.
"""
    )


def serve_vercel(env: Mapping[str, str], port: int) -> int:
    """uvicorn serving the app Vercel serves (`build_app` over httpx), wrapped by
    `devstack.console.observer` so each request is reported to the console."""
    child_env = {**os.environ, **env}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "devstack.console.observer:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    return subprocess.call(cmd, cwd=REPO_ROOT, env=child_env)


def serve_worker(env: Mapping[str, str], port: int) -> int:
    """The staged Worker (worker/ + shared/) in Pyodide with the real workers SDK."""
    stage = ".build/dev-worker"
    subprocess.run([sys.executable, "tools/stage_worker.py", stage], cwd=REPO_ROOT, check=True)
    node = shutil.which("node") or "node"
    cmd = [
        node,
        "tests/pyodide/worker_harness.mjs",
        "--pyodide",
        "314",
        "--worker-dir",
        stage,
        "--env-json",
        _json(env),
        "--serve",
        "--port",
        str(port),
    ]
    return subprocess.call(cmd, cwd=REPO_ROOT)


def _json(env: Mapping[str, str]) -> str:
    import json

    return json.dumps(dict(env))


def run(worker: bool = False, port: int | None = None) -> int:
    port = port or (WORKER_PORT if worker else API_PORT)
    try:
        check_api_port(port)
    except PortTaken as exc:
        print(f"make dev: {exc}", file=sys.stderr, flush=True)
        return 2
    app_url = f"http://127.0.0.1:{port}"
    print("starting the devstack (Redis REST, QStash, email sink, console)...", flush=True)
    stack: DevstackProcess = start_devstack(
        "--console-port",
        str(stable_port(CONSOLE_PORT)),
        "--email-port",
        str(stable_port(INBOX_PORT)),
        log_path=LOG_PATH,
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print(banner(stack.info, app_url, worker), flush=True)
        env = app_env(stack.info, app_url)
        if worker:
            return serve_worker(env, port)
        return serve_vercel({**env, "DEVSTACK_CONSOLE_URL": str(stack.info["console_url"])}, port)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        print("stopped.", flush=True)
