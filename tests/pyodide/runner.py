"""Run Python inside real Pyodide under Node from a CPython test.

    result = run_in_pyodide("314", SCRIPTS / "transport_checks.py", {"ECHO_URL": url})
    assert_checks_passed(result)

    answers = run_worker_requests("0.28", worker_dir, [{"path": "/"}], env)
    with serve_worker("314", worker_dir, env) as base_url: ...

A script reports through `pyodide_checks.Checks` (one `@@RESULT {...}` line). Missing
`node_modules` is an error, never a skip: `make setup` runs `npm ci`.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SCRIPTS = HERE / "scripts"
FIXTURES = HERE / "fixtures"
HARNESS = HERE / "harness.mjs"
WORKER_HARNESS = HERE / "worker_harness.mjs"
RESULT_PREFIX = "@@RESULT "

PYODIDE_VERSIONS = ("0.28", "314")
PYODIDE_PACKAGES = {"0.28": "pyodide-0.28", "314": "pyodide-314"}
# The CPython each Pyodide embeds (0.28: Workers before 2026-09-08; 314: from that date).
PYTHON_OF = {"0.28": (3, 13), "314": (3, 14)}

DEFAULT_TIMEOUT = 120.0


class PyodideSetupError(RuntimeError):
    """Node or the npm packages are missing."""


class PyodideRunError(RuntimeError):
    """The harness failed before the script reported a result."""


@dataclass
class EchoServer:
    """An aiohttp server on 127.0.0.1 in its own thread (so blocking `node` runs can call it),
    started by the `echo_server` fixture in conftest.py.

    /echo...  answers {method, path, headers, body_b64} with `x-echo: yes`
    /bytes    answers bytes 0..255 as application/octet-stream
    /hang     never answers (for timeouts); /hang-stats counts the clients that went away
    /drip     answers its head and a first body chunk, then never finishes the body
    /record   stores a JSON body in `records`
    """

    url: str
    refused_url: str
    records: list[dict[str, Any]] = field(default_factory=list)


def require_pyodide(version: str) -> None:
    """Raises a clear error when node or the Pyodide npm package is not installed."""
    if shutil.which("node") is None:
        raise PyodideSetupError("`node` is not on PATH: the Pyodide tests need Node >= 20")
    package = REPO_ROOT / "node_modules" / PYODIDE_PACKAGES[version] / "pyodide.mjs"
    if not package.is_file():
        raise PyodideSetupError(
            f"{package.relative_to(REPO_ROOT)} is missing: run `make setup` (it runs `npm ci`)"
        )


def _parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    return None


def _run_node(args: Sequence[str], timeout: float) -> tuple[dict[str, Any], str, str]:
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            ["node", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise PyodideRunError(
            f"node {' '.join(args[:4])} timed out after {timeout:g}s\n"
            f"--- stdout ---\n{exc.stdout}\n--- stderr ---\n{exc.stderr}"
        ) from exc
    result = _parse_result(proc.stdout)
    if result is None:
        raise PyodideRunError(
            f"node {' '.join(args[:4])} exited {proc.returncode} without a result line\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    result["returncode"] = proc.returncode
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result, proc.stdout, proc.stderr


def run_in_pyodide(
    version: str,
    script_path: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Runs `script_path` in Pyodide `version` with `ENV = env`; returns the reported result.

    The dict has `passed` (names), `failed` ([{name, error}]), `data`, `timings_ms`, plus
    `returncode`, `seconds`, `stdout` and `stderr` of the node process.
    """
    require_pyodide(version)
    args = [str(HARNESS), "--pyodide", version, "--script", str(Path(script_path).resolve())]
    args += ["--env-json", json.dumps(dict(env or {}))]
    result, stdout, stderr = _run_node(args, timeout)
    result["stdout"], result["stderr"] = stdout, stderr
    return result


def assert_checks_passed(result: Mapping[str, Any]) -> None:
    """Fails with every failed check's traceback (and the output) when anything failed."""
    failed = result.get("failed") or []
    if failed or result.get("returncode"):
        details = "\n".join(f"--- {f['name']} ---\n{f['error']}" for f in failed)
        raise AssertionError(
            f"{len(failed)} Pyodide check(s) failed (rc={result.get('returncode')}):\n{details}\n"
            f"--- stderr ---\n{result.get('stderr', '')}"
        )
    assert result.get("passed"), "the script ran no checks"


def run_worker_requests(
    version: str,
    worker_dir: str | os.PathLike[str],
    requests: Sequence[Mapping[str, Any]],
    env: Mapping[str, str] | None = None,
    *,
    main: str = "entry",
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Serves `requests` ({method?, path, headers?, body?} or {scheduled: True, cron?}) with the
    Worker in `worker_dir`; returns {boot_ms, responses: [{status, headers, body, wait_until,
    ms} | {error, ...}], seconds}. waitUntil work is awaited after each request."""
    require_pyodide(version)
    args = [str(WORKER_HARNESS), "--pyodide", version, "--worker-dir", str(worker_dir)]
    args += ["--main", main, "--env-json", json.dumps(dict(env or {}))]
    args += ["--requests-json", json.dumps(list(requests))]
    result, _, stderr = _run_node(args, timeout)
    result["stderr"] = stderr
    return result


@contextmanager
def serve_worker(
    version: str,
    worker_dir: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *,
    main: str = "entry",
    port: int = 0,
    startup_timeout: float = 60.0,
) -> Iterator[str]:
    """Serves the Worker over HTTP on loopback (worker_harness.mjs --serve); yields its URL."""
    require_pyodide(version)
    args = [str(WORKER_HARNESS), "--pyodide", version, "--worker-dir", str(worker_dir)]
    args += ["--main", main, "--env-json", json.dumps(dict(env or {})), "--serve"]
    args += ["--port", str(port)]
    proc = subprocess.Popen(
        ["node", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    stderr_lines: list[str] = []

    def pump_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_stderr() -> None:
        assert proc.stderr is not None
        stderr_lines.extend(proc.stderr)

    threading.Thread(target=pump_stdout, daemon=True).start()
    threading.Thread(target=pump_stderr, daemon=True).start()
    try:
        deadline = time.monotonic() + startup_timeout
        url = None
        while url is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                proc.kill()
                proc.wait()
                raise PyodideRunError(f"the worker server did not start:\n{''.join(stderr_lines)}")
            if line.startswith("{"):
                url = json.loads(line).get("url")
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
