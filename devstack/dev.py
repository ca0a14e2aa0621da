"""`make dev`: the local stack plus the API, wired together, in the foreground.

Starts `devstack up` (Redis REST, QStash, email sink) as a child, then serves the
API on http://127.0.0.1:8000 through the Vercel ASGI app (uvicorn), or with
`--worker` through the Worker adapter in Pyodide on port 8787. APP_URL points at
the API, so the local QStash really calls the job endpoint back. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import shutil
import signal
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
  a deployed Worker vendors pydantic.
"""


def banner(info: Mapping[str, Any], app_url: str, worker: bool = False) -> str:
    note = WORKER_NOTE if worker else ""
    return (
        note
        + f"""
  API            {app_url}   (health: {app_url}/api/health)
  Email inbox    {info["email_inbox_url"]}
  Redis REST     {info["redis_rest_url"]}   token {info["redis_rest_token"]}
  QStash         {info["qstash_url"]}

  Create an order:
    curl -s -X POST {app_url}/api/orders -H 'content-type: application/json' \\
      -H 'Idempotency-Key: demo-1' \\
      -d '{{"customer_email": "ada@example.com", "currency": "EUR",
           "items": [{{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}}]}}'
  Fetch it (id and access_token from the answer above):
    curl -s {app_url}/api/orders/ORDER_ID -H 'Authorization: Bearer ACCESS_TOKEN'
  The confirmation email shows up in the inbox a few seconds later.

  Ctrl-C stops everything.
"""
    )


def serve_vercel(env: Mapping[str, str], port: int) -> int:
    """uvicorn serving vercel_api.index:app, the same ASGI app Vercel's launcher serves."""
    child_env = {**os.environ, **env}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "vercel_api.index:app",
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
    port = port or (8787 if worker else 8000)
    app_url = f"http://127.0.0.1:{port}"
    print("starting the devstack (Redis REST, QStash, email sink)...", flush=True)
    stack: DevstackProcess = start_devstack()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        print(banner(stack.info, app_url, worker), flush=True)
        env = app_env(stack.info, app_url)
        return serve_worker(env, port) if worker else serve_vercel(env, port)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        print("stopped.", flush=True)
