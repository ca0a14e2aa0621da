"""The whole app vs a FastAPI peer (official upstash-redis + upstash-ratelimit SDKs), one run.

Both serve a cached `GET /api/orders/{id}` (rate limit, cache-aside read, JSON answer) under
uvicorn on the same devstack; the sides alternate and each figure is the median of its
rounds. Measured:

- import of the entry module in a fresh interpreter, with byte code compiled (`.pyc`, what
  the Vercel build ships: see the README) and "as installed" (no `.pyc` for the project and
  its packages, as `uv sync` leaves them: every module compiles);
- time to first answer: process start to the first `GET /api/health` 200, and to the first
  cached `GET /api/orders/{id}` 200, in both states;
- the server process's CPU per request (user + system, from /proc) at concurrency 1, and
  throughput at concurrency 16.

Each ratio is printed beside its target (issue 13); nothing is asserted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.measure import seed_order, table
from devstack.dev import app_env

REPO = Path(__file__).resolve().parent.parent
OURS = "vercel_api.index"
PEER = "bench.peer_app"
ROUNDS = 5  # cold starts per side, state and endpoint
LOAD_ROUNDS = 5
C1_REQUESTS = 500
C16_REQUESTS = 800
# What both apps import, directly or on their first request (copied without byte code for
# the "as installed" state, so that they compile as after `uv sync`).
PACKAGES = (
    "uvicorn",
    "click",
    "h11",
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "idna",
    "certifi",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "fastapi",
    "starlette",
    "upstash_redis",
    "upstash_ratelimit",
    "pygments",
    "rich",
    "markdown_it",
    "mdurl",
)
PROJECT = ("shared", "vercel_api", "bench")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _site_packages() -> Path:
    import httpx as probe

    return Path(probe.__file__).resolve().parent.parent


def _no_bytecode_tree(root: Path) -> Path:
    """The project and its packages copied without any __pycache__ (as installed)."""
    site = _site_packages()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        elif (site / f"{name}.py").exists():
            shutil.copy2(site / f"{name}.py", root / f"{name}.py")
    for name in PROJECT:
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    return root


class Side:
    """One app, runnable from the repo (byte code compiled) or from a tree without it."""

    def __init__(self, name: str, module: str, env: dict[str, str]) -> None:
        self.name, self.module, self.env = name, module, env

    def child_env(self, tree: Path | None) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = str(tree or REPO)
        if tree is not None:
            env["PYTHONDONTWRITEBYTECODE"] = "1"  # every start compiles again, as on Lambda
        return env

    def import_ms(self, tree: Path | None) -> float:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", f"import {self.module}"],
            cwd=tree or REPO,
            env=self.child_env(tree),
            check=True,
            capture_output=True,
        )
        return (time.perf_counter() - started) * 1e3

    def serve(self, tree: Path | None, port: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "uvicorn", f"{self.module}:app", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
        return subprocess.Popen(
            command,
            cwd=tree or REPO,
            env=self.child_env(tree),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def first_answer_ms(self, tree: Path | None, path: str, headers: dict[str, str]) -> float:
        """Process start to the first 200 on `path` (polled every 2 ms)."""
        port = _free_port()
        started = time.perf_counter()
        process = self.serve(tree, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                while True:
                    try:
                        response = client.get(path, headers=headers)
                    except httpx.TransportError:
                        if process.poll() is not None:
                            raise RuntimeError(f"{self.name} exited") from None
                        time.sleep(0.002)
                        continue
                    if response.status_code != 200:
                        raise RuntimeError(f"{self.name} answered {response.status_code}")
                    return (time.perf_counter() - started) * 1e3
        finally:
            process.terminate()
            process.wait(10)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, headers: dict[str, str], total: int, concurrency: int) -> float:
    """Sends `total` GETs over `concurrency` keep-alive connections; returns the wall time.

    A raw HTTP/1.1 client on asyncio streams (the request bytes built once), so that the load
    generator, which shares the machine with both servers and the devstack, costs as little
    CPU per request as it can: httpx's client cost about as much as the server under test.
    """
    target = urlsplit(url)
    head = [f"GET {target.path or '/'} HTTP/1.1", f"Host: {target.netloc}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
    per_worker = total // concurrency

    async def worker(count: int) -> None:
        reader, writer = await asyncio.open_connection(target.hostname, target.port)
        try:
            for _ in range(count):
                writer.write(request)
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if status_line.split(b" ", 2)[1:2] != [b"200"]:
                    raise RuntimeError(f"load answered {status_line!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker(1) for _ in range(concurrency)))  # connections warm
    started = time.perf_counter()
    await asyncio.gather(*(worker(per_worker) for _ in range(concurrency)))
    return time.perf_counter() - started


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _alternate(
    rounds: int, ours: Callable[[], float], peer: Callable[[], float]
) -> tuple[float, float]:
    """Alternates which side goes first; each side's median."""
    a: list[float] = []
    b: list[float] = []
    for n in range(rounds):
        if n % 2 == 0:
            a.append(ours())
            b.append(peer())
        else:
            b.append(peer())
            a.append(ours())
    return _median(a), _median(b)


def _row(measure: str, ours: float, peer: float, target: str, unit: str = "") -> tuple[object, ...]:
    value = ours / peer if peer > 0 else float("nan")
    verdict = "" if not target else ("met" if _met(value, target) else "not met")
    return (measure + unit, ours, peer, f"{value:.2f}x", target, verdict)


def _met(value: float, target: str) -> bool:
    if target.startswith("<="):
        return value <= float(target[2:].strip(" x"))
    if target.startswith(">="):
        return value >= float(target[2:].strip(" x"))
    return False


async def run(stack: dict[str, str]) -> str:
    url, token = stack["redis_rest_url"], stack["redis_rest_token"]
    env = {**app_env(stack, "http://127.0.0.1:1"), "RATE_LIMIT": "1000000000/10s"}
    env["LOG_LEVEL"] = "WARNING"
    order_id, auth = await seed_order(stack)
    order_path = f"/api/orders/{order_id}"
    ours = Side("ours", OURS, env)
    peer = Side("peer", PEER, {"UPSTASH_REDIS_REST_URL": url, "UPSTASH_REDIS_REST_TOKEN": token})

    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-installed-") as tmp:
        tree = _no_bytecode_tree(Path(tmp))
        for side in (ours, peer):  # compile the repo's .pyc; warm both caches in Redis
            side.import_ms(None)
            side.first_answer_ms(None, order_path, auth)
        for label, where in ((".pyc", None), ("as installed", tree)):
            i_ours, i_peer = _alternate(
                ROUNDS, lambda w=where: ours.import_ms(w), lambda w=where: peer.import_ms(w)
            )
            rows.append(_row(f"import of the entry, {label}", i_ours, i_peer, "<= 0.30x", ", ms"))
            for what, path, headers in (
                ("first GET /api/health", "/api/health", {}),
                ("first cached GET /api/orders/{id}", order_path, auth),
            ):
                f_ours, f_peer = _alternate(
                    ROUNDS,
                    lambda w=where, p=path, h=headers: ours.first_answer_ms(w, p, h),
                    lambda w=where, p=path, h=headers: peer.first_answer_ms(w, p, h),
                )
                rows.append(_row(f"start to {what}, {label}", f_ours, f_peer, "<= 0.40x", ", ms"))

    cpu: dict[str, dict[int, list[float]]] = {"ours": {1: [], 16: []}, "peer": {1: [], 16: []}}
    rate: dict[str, dict[int, list[float]]] = {"ours": {1: [], 16: []}, "peer": {1: [], 16: []}}
    servers = {}
    try:
        for side in (ours, peer):
            port = _free_port()
            process = side.serve(None, port)
            servers[side.name] = (process, f"http://127.0.0.1:{port}{order_path}")
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(servers[side.name][1], headers=auth).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        for n in range(LOAD_ROUNDS):
            order = ("ours", "peer") if n % 2 == 0 else ("peer", "ours")
            for concurrency, total in ((1, C1_REQUESTS), (16, C16_REQUESTS)):
                for name in order:
                    process, target = servers[name]
                    before = _cpu_s(process.pid)
                    wall = await _load(target, auth, total, concurrency)
                    used = _cpu_s(process.pid) - before
                    cpu[name][concurrency].append(used / total * 1e3)
                    rate[name][concurrency].append(total / wall)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)
    for concurrency in (1, 16):
        rows.append(
            _row(
                f"app CPU per cached read, concurrency {concurrency}",
                _median(cpu["ours"][concurrency]),
                _median(cpu["peer"][concurrency]),
                "<= 0.50x" if concurrency == 1 else "",
                ", ms",
            )
        )
    rows.append(
        _row(
            "throughput, concurrency 16",
            _median(rate["ours"][16]),
            _median(rate["peer"][16]),
            ">= 2x",
            ", req/s",
        )
    )
    return table(
        "The app vs FastAPI + official SDKs (uvicorn, same devstack, medians)",
        ("measure", "ours", "peer", "ours/peer", "target", ""),
        rows,
    )
