"""Starting `python -m devstack up --json` as a child process (tests, benchmarks, `make dev`).

with running_devstack() as stack:
    print(stack["redis_rest_url"])
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0


class DevstackStartError(RuntimeError):
    """The devstack exited or stayed silent before announcing itself."""


@dataclass
class DevstackProcess:
    info: dict[str, Any]
    process: subprocess.Popen[str]
    stderr_path: Path

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, kill on timeout."""
        proc = self.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start_devstack(
    *extra_args: str, timeout: float = STARTUP_TIMEOUT, log_path: Path | None = None
) -> DevstackProcess:
    """Starts a devstack and waits (bounded) for its JSON line.

    Its log (stderr) goes to `log_path` (`make dev`: `.state/logs/devstack.log`, replaced
    on each run) or, without one, to a fresh temporary file (tests).
    """
    # stderr goes to a file: an unread pipe would fill up and block the server.
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        stderr_path = log_path
    else:
        fd, name = tempfile.mkstemp(prefix="devstack-", suffix=".log")
        stderr_path = Path(name)
    with open(fd, "w") as stderr_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "up", "--json", *extra_args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
    if proc.stdout is None:
        raise DevstackStartError("no stdout pipe")
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and not line:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            line = proc.stdout.readline()
            if not line:
                break
    selector.close()
    handle = DevstackProcess({}, proc, stderr_path)
    if not line:
        handle.stop()
        raise DevstackStartError(
            f"devstack did not start (exit {proc.returncode}):\n{handle.stderr_text()}"
        )
    handle.info = json.loads(line)
    return handle


@contextmanager
def running_devstack(*extra_args: str) -> Iterator[dict[str, Any]]:
    handle = start_devstack(*extra_args)
    try:
        yield handle.info
    finally:
        handle.stop()
        handle.stderr_path.unlink(missing_ok=True)
