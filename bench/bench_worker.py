"""The Worker in real Pyodide (node, the tests' worker harness) vs two floors, one run.

Workers served side by side on the same devstack: ours (the staged `worker/` + `shared/`,
as wrangler uploads it), a Worker making one `pyfetch` to Redis per request (GET, Upstash's
one-command URL form: the target's floor), the same Worker POSTing the command as a JSON
body (the form every pipeline takes; shown for reference), our transport alone sending one
pipelined POST as the app does (no app around it) and a no-op Worker. The figure is
the node process's CPU per request, all threads, from each thread's scheduler clock
(/proc/PID/task/*/schedstat, nanoseconds): what Workers bill (and cap at 10 ms on the Free
plan). Every Worker first serves WARM_UP requests (V8 keeps tiering up JS and wasm for
hundreds of requests; a short warm-up flatters the JS-heavy floors' ratios), then ROUNDS of
PER_ROUND sequential requests each, the Workers alternating, medians of the rounds.
Nothing is asserted.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.measure import seed_order, table
from devstack.dev import app_env

REPO = Path(__file__).resolve().parent.parent
VERSION = "314"  # the Pyodide of Workers with a compatibility date from 2026-09-08
ROUNDS = 9
PER_ROUND = 300
WARM_UP = 600

ONE_FETCH = """
from pyodide.http import pyfetch
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = str(self.env.UPSTASH_REDIS_REST_URL) + "/get/bench-worker-key"
        token = str(self.env.UPSTASH_REDIS_REST_TOKEN)
        reply = await pyfetch(url, headers={"Authorization": "Bearer " + token})
        return Response.json(await reply.json())
"""

ONE_FETCH_POST = """
from pyodide.http import pyfetch
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = str(self.env.UPSTASH_REDIS_REST_URL)
        token = str(self.env.UPSTASH_REDIS_REST_TOKEN)
        reply = await pyfetch(
            url,
            method="POST",
            body='["GET","bench-worker-key"]',
            headers={"Authorization": "Bearer " + token},
        )
        return Response.json(await reply.json())
"""

# Our transport alone: one pipelined POST as the app sends it, its answer passed through.
TRANSPORT_ONLY = """
import js
from pyodide.ffi import to_js
from workers import WorkerEntrypoint

from js_fetch import JsFetchTransport
from shared.http.transport import HttpRequest

TRANSPORT = JsFetchTransport()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = str(self.env.UPSTASH_REDIS_REST_URL) + "/pipeline"
        headers = {
            "Authorization": "Bearer " + str(self.env.UPSTASH_REDIS_REST_TOKEN),
            "Content-Type": "application/json",
            "Upstash-Encoding": "base64",
        }
        body = b'[["GET","bench-worker-key"]]'
        answer = await TRANSPORT.send(HttpRequest("POST", url, headers, body, 5.0))
        init = to_js({"status": answer.status}, dict_converter=js.Object.fromEntries)
        return js.Response.new(answer.body.decode(), init)
"""

NO_OP = """
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response.json({"ok": True})
"""


def _node_pid(worker_dir: Path) -> int:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(worker_dir).encode() in cmdline and any(b"node" in a for a in cmdline[:1]):
            return int(proc.name)
    raise RuntimeError(f"no node process serves {worker_dir}")


def _cpu_ns(pid: int) -> int:
    """The process's CPU time so far, every thread, in nanoseconds (the scheduler's clock:
    /proc/PID/stat counts in 10 ms ticks). A thread that exits takes its share with it:
    node's threads (GC, the libuv pool) live as long as the process."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _cpu_per_request_ms(pid: int, client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    before = _cpu_ns(pid)
    for _ in range(PER_ROUND):
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return (_cpu_ns(pid) - before) / PER_ROUND / 1e6


async def run(stack: dict[str, str]) -> str:
    sys.path.insert(0, str(REPO / "tests" / "pyodide"))
    sys.path.insert(0, str(REPO / "tools"))
    from runner import serve_worker  # the tests' harness: real Pyodide under node
    from stage_worker import stage

    order_id, auth = await seed_order(stack, "bench-worker-key")

    env = {**app_env(stack, "http://127.0.0.1:1"), "RATE_LIMIT": "1000000000/10s"}
    env["LOG_LEVEL"] = "WARNING"
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp, ExitStack() as stack_:
        root = Path(tmp)
        ours_dir = root / "ours"
        stage(ours_dir)
        stage(root / "transport-only")  # its own copy: a node process is found by its folder
        (root / "transport-only" / "entry.py").write_text(TRANSPORT_ONLY)
        dirs = {
            "ours": ours_dir,
            "transport-only": root / "transport-only",
            "one-fetch": root / "one-fetch",
            "one-fetch-post": root / "one-fetch-post",
            "no-op": root / "no-op",
        }
        sources = (("one-fetch", ONE_FETCH), ("one-fetch-post", ONE_FETCH_POST), ("no-op", NO_OP))
        for name, source in sources:
            dirs[name].mkdir()
            (dirs[name] / "entry.py").write_text(source)
        targets: dict[str, tuple[int, str, dict[str, str]]] = {}
        for name, folder in dirs.items():
            base = stack_.enter_context(serve_worker(VERSION, folder, env, startup_timeout=120))
            targets[name] = (_node_pid(folder), base, {})
        client = stack_.enter_context(httpx.Client(timeout=30))
        plan = [
            ("ours: cached GET /api/orders/{id}", "ours", f"/api/orders/{order_id}", auth),
            ("ours: GET /api/health", "ours", "/api/health", {}),
            ("one-fetch Worker", "one-fetch", "/", {}),
            ("one-fetch Worker, POST body", "one-fetch-post", "/", {}),
            ("our transport alone, one pipelined POST", "transport-only", "/", {}),
            ("no-op Worker", "no-op", "/", {}),
        ]
        for label, name, path, headers in plan:  # warm: first requests build; V8 tiers up
            pid, base, _ = targets[name]
            for _ in range(WARM_UP):
                client.get(base + path, headers=headers).raise_for_status()
            samples[label] = []
        started = time.perf_counter()
        for n in range(ROUNDS):
            for label, name, path, headers in plan[:: 1 if n % 2 == 0 else -1]:
                pid, base, _ = targets[name]
                samples[label].append(_cpu_per_request_ms(pid, client, base + path, headers))
        seconds = time.perf_counter() - started
    medians = {label: statistics.median(values) for label, values in samples.items()}
    one, noop = medians["one-fetch Worker"], medians["no-op Worker"]
    order, health = medians["ours: cached GET /api/orders/{id}"], medians["ours: GET /api/health"]
    rows: list[tuple[object, ...]] = [
        (label, value, "", "", "") for label, value in medians.items()
    ]
    rows.append(
        (
            "cached order read / one-fetch",
            "",
            f"{order / one:.2f}x",
            "<= 1.20x",
            "met" if order / one <= 1.20 else "not met",
        )
    )
    rows.append(
        (
            "health / one-fetch",
            "",
            f"{health / one:.2f}x",
            "<= 1.10x",
            "met" if health / one <= 1.10 else "not met",
        )
    )
    post = medians["one-fetch Worker, POST body"]
    alone = medians["our transport alone, one pipelined POST"]
    rows.append(("our transport alone / one-fetch", "", f"{alone / one:.2f}x", "", ""))
    for label, value in (("cached order read", order), ("health", health)):
        # Reference only: the command as a JSON body, as both official SDKs send every one.
        rows.append((f"{label} / one-fetch POST", "", f"{value / post:.2f}x", "", ""))
    rows.append(("no-op floor share of a cached read", "", f"{noop / order:.2f}", "", ""))
    return table(
        f"Worker in Pyodide {VERSION} (node CPU per request, all threads, ms; {WARM_UP} warm-up, "
        f"{ROUNDS}x{PER_ROUND} requests, {seconds:.0f} s)",
        ("measure", "ms", "ratio", "target", ""),
        rows,
    )
