"""Run an ASGI module through the real ``vercel-runtime`` launcher, on loopback.

What production does (``@vercel/python`` 25 with ``vercel-runtime`` 0.23.2):
the build writes ``/var/task/vc__handler__python.py`` (the "trampoline") and
vendors the dependencies, ``vercel-runtime`` included, into ``/var/task/_vendor``.
The functions runtime sets ``VERCEL_IPC_PATH`` to a Unix socket it listens on,
and the Python bootstrap imports ``vc__handler__python`` with the task root first
on ``sys.path`` (cwd ``/var/task``). The trampoline exports the
``__VC_HANDLER_*`` variables, adds ``_vendor`` as a site dir (``.pth`` files
processed) and moves it right after the script dir, then imports
``vercel_runtime.vc_init``. In IPC mode that import never returns: vc_init
imports the user module, binds uvicorn to 127.0.0.1 on an ephemeral port, sends
``server-started`` and serves. Every request must carry
``x-vercel-internal-invocation-id`` / ``x-vercel-internal-request-id``;
vc_init's ASGI middleware strips them, sends ``handler-started``, relays
print/logging output as ``log`` messages and sends ``end`` when the ASGI call
returns (after ``wait_until`` work, see ``ASGIMiddleware.finish_request``).

What :class:`VercelLauncher` does, per instance:

* ``<tmp>/_vendor/``: a copy of the installed ``vercel_runtime`` package and its
  ``dist-info`` (the launcher of record is what ``.venv`` has installed, 0.23.2).
  The child imports the launcher from this copy, as production imports it from
  ``/var/task/_vendor``; the venv's own copy is shadowed.
* ``<tmp>/trampoline/vc__handler__python.py``: the production trampoline text
  (``createRuntimeTrampoline`` in ``@vercel/python``), with one change: ``_here``
  is the task root instead of ``os.path.dirname(__file__)``, because the file
  lives outside the task root (the harness never writes into the repository).
  ``__VC_HANDLER_VENDOR_DIR`` is therefore the absolute ``_vendor`` path where
  production has ``"_vendor"`` (vc_init 0.23.2 does not read that variable).
* The child is the venv's Python, cwd = task root, running ``-c`` with a
  bootstrap that plays the platform's part: puts the trampoline's folder on
  ``sys.path`` behind the task root (``''``) and imports ``vc__handler__python``.
  The resulting order is task root, ``_vendor``, trampoline folder, stdlib,
  venv site-packages.
* ``<tmp>/ipc.sock``: the Unix socket server; a thread reads NUL-terminated JSON.

Differences from production, on purpose: the application's own dependencies
(httpx, pydantic, ...) come from the venv's site-packages instead of
``_vendor`` (the test would otherwise have to ``uv pip install`` the project into
the temp dir, which needs the network and takes seconds); the process is not a
Lambda (no freeze/thaw, no read-only filesystem, no maxDuration enforcement);
requests go straight to uvicorn instead of through Vercel's proxy, so no
``x-vercel-*`` public headers are added besides the two internal ids.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Never, Self

import httpx

STARTUP_TIMEOUT = 30.0
VERCEL_RUNTIME_DIST = "vercel-runtime"
HANDLER_MODULE = "vc__handler__python"
INVOCATION_HEADER = "x-vercel-internal-invocation-id"
REQUEST_ID_HEADER = "x-vercel-internal-request-id"

# The production trampoline (``createRuntimeTrampoline`` in @vercel/python),
# with ``_here`` pointing at the task root: see the module docstring.
_TRAMPOLINE = """
import importlib
import os
import os.path
import site
import sys

_here = {here!r}

os.environ.update({{
  "__VC_HANDLER_MODULE_NAME": {module!r},
  "__VC_HANDLER_ENTRYPOINT": {entrypoint!r},
  "__VC_HANDLER_ENTRYPOINT_ABS": os.path.join(_here, {entrypoint!r}),
  "__VC_HANDLER_VENDOR_DIR": {vendor!r},
  "__VC_HANDLER_VARIABLE_NAME": {variable!r}
}})

_vendor_rel = {vendor!r}
_vendor = os.path.normpath(os.path.join(_here, _vendor_rel))

if os.path.isdir(_vendor):
    # Process .pth files like a real site-packages dir
    site.addsitedir(_vendor)

    # Move _vendor to the front (after script dir if present)
    try:
        while _vendor in sys.path:
            sys.path.remove(_vendor)
    except ValueError:
        pass

    # Put vendored deps ahead of site-packages but after the script dir
    idx = 1 if (sys.path and sys.path[0] in ('', _here)) else 0
    sys.path.insert(idx, _vendor)

    importlib.invalidate_caches()

from vercel_runtime.vc_init import vc_handler
"""

# The platform's part: import the handler module by name, task root ('') first.
_BOOTSTRAP = "import sys; sys.path.insert(1, {folder!r}); import " + HANDLER_MODULE


class LauncherError(RuntimeError):
    """The launcher did not come up: an ``unrecoverable-error``, an exit or a timeout."""

    def __init__(
        self,
        reason: str,
        *,
        ipc_message: str | None,
        stderr: str,
        returncode: int | None,
    ) -> None:
        self.reason = reason
        self.ipc_message = ipc_message
        self.stderr = stderr
        self.returncode = returncode
        parts = [reason]
        if ipc_message is not None:
            parts.append(f"unrecoverable-error message:\n{ipc_message}")
        parts.append(f"child exit code: {returncode}")
        parts.append(f"child stderr:\n{stderr or '(empty)'}")
        super().__init__("\n".join(parts))


@dataclass(frozen=True)
class IpcMessage:
    """One NUL-terminated JSON message the launcher sent over ``VERCEL_IPC_PATH``."""

    type: str
    payload: dict[str, Any]
    received_at: float = field(compare=False)  # time.monotonic() in this process

    @property
    def request_id(self) -> int | None:
        """The ``context.requestId`` of a per-request message, else ``None``."""
        context = self.payload.get("context")
        if isinstance(context, dict):
            value = context.get("requestId")
            return int(value) if isinstance(value, int | str) else None
        return None

    @property
    def invocation_id(self) -> str | None:
        """The ``context.invocationId`` of a per-request message, else ``None``."""
        context = self.payload.get("context")
        return str(context.get("invocationId")) if isinstance(context, dict) else None

    @property
    def text(self) -> str:
        """The decoded text of a ``log`` message (base64 on the wire)."""
        raw = self.payload.get("message", "")
        if self.type != "log" or not isinstance(raw, str):
            return str(raw)
        return base64.b64decode(raw).decode(errors="replace")


def _installed_runtime() -> tuple[Path, Path | None]:
    """The installed ``vercel_runtime`` package folder and its dist-info folder."""
    spec = importlib.util.find_spec("vercel_runtime")  # locates it without importing it
    if spec is None or not spec.submodule_search_locations:
        msg = "vercel_runtime is not installed in this interpreter (need vercel-runtime==0.23.2)"
        raise LauncherError(msg, ipc_message=None, stderr="", returncode=None)
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    dist_infos = sorted(package_dir.parent.glob("vercel_runtime-*.dist-info"))
    return package_dir, (dist_infos[0] if dist_infos else None)


def request_id_of(response: httpx.Response) -> int:
    """The internal request id :meth:`VercelLauncher.request` sent with ``response``."""
    return int(response.request.headers[REQUEST_ID_HEADER])


def _short_tempdir() -> Path:
    """A private temp dir with a short path (AF_UNIX paths are capped at 107 bytes)."""
    base = tempfile.gettempdir()
    if len(base) > 60 and Path("/tmp").is_dir():
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="vclaunch-", dir=base))


class VercelLauncher:
    """A child process running ``vercel_runtime.vc_init`` in IPC mode, as Vercel does.

    Use as a context manager::

        with VercelLauncher(task_root, env={"NAME": "value"}) as launcher:
            response = launcher.request("GET", "/api/hello")
            end = launcher.wait_for_end(request_id_of(response))
    """

    def __init__(
        self,
        task_root: Path,
        module: str = "vercel_api.index",
        variable: str = "app",
        env: Mapping[str, str] | None = None,
        *,
        python: str | Path | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.task_root = Path(task_root).resolve()
        self.module = module
        self.variable = variable
        self.entrypoint = module.replace(".", "/") + ".py"
        self.extra_env = dict(env or {})
        self.python = str(python or sys.executable)
        self.startup_timeout = startup_timeout

        self.workdir: Path | None = None
        self.vendor_dir: Path | None = None
        self.ipc_path: Path | None = None
        self.http_port: int | None = None
        self.startup_seconds: float | None = None
        self.process: subprocess.Popen[bytes] | None = None

        self._messages: list[IpcMessage] = []
        self._cond = threading.Condition()
        self._ipc_closed = False
        self._stop = threading.Event()
        self._server: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self._request_ids = itertools.count(1)
        self._stderr_path: Path | None = None
        self._stdout_path: Path | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Lay out ``_vendor`` and the trampoline, start the child, wait for ``server-started``."""
        if not (self.task_root / self.entrypoint).is_file():
            msg = f"entrypoint {self.entrypoint} not found under {self.task_root}"
            raise LauncherError(msg, ipc_message=None, stderr="", returncode=None)
        self.workdir = _short_tempdir()
        self.vendor_dir = self.workdir / "_vendor"
        self._populate_vendor(self.vendor_dir)
        trampoline_dir = self.workdir / "trampoline"
        trampoline_dir.mkdir()
        (trampoline_dir / f"{HANDLER_MODULE}.py").write_text(
            _TRAMPOLINE.format(
                here=str(self.task_root),
                module=self.module,
                entrypoint=self.entrypoint,
                vendor=str(self.vendor_dir),
                variable=self.variable,
            )
        )

        self.ipc_path = self.workdir / "ipc.sock"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.ipc_path))
        server.listen(1)
        server.settimeout(0.2)
        self._server = server
        self._reader = threading.Thread(target=self._read_ipc, name="vercel-ipc", daemon=True)
        self._reader.start()

        child_env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
            and not key.startswith("__VC_")
        }
        # /var/task is read-only on Lambda: no bytecode is written there either.
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
        child_env.update(self.extra_env)
        child_env["VERCEL_IPC_PATH"] = str(self.ipc_path)

        self._stdout_path = self.workdir / "stdout.log"
        self._stderr_path = self.workdir / "stderr.log"
        started = time.monotonic()
        with self._stdout_path.open("wb") as out, self._stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [self.python, "-c", _BOOTSTRAP.format(folder=str(trampoline_dir))],
                cwd=self.task_root,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        first = self._wait_for_startup()
        self.startup_seconds = time.monotonic() - started
        self.http_port = int(first.payload["httpPort"])
        self._client = httpx.Client(base_url=self.base_url, timeout=30.0)

    def close(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL), the IPC reader and remove the temp dir."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # ------------------------------------------------------------------ requests

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the launcher's uvicorn server."""
        if self.http_port is None:
            msg = "launcher not started"
            raise RuntimeError(msg)
        return f"http://127.0.0.1:{self.http_port}"

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> httpx.Response:
        """Send one request with fresh internal invocation/request ids, as the platform does.

        The ids are in ``response.request.headers``; :func:`request_id_of` reads the
        request id back. The body has been read in full when this returns.
        """
        if self._client is None:
            msg = "launcher not started"
            raise RuntimeError(msg)
        request_id = next(self._request_ids)
        invocation_id = uuid.uuid4().hex
        all_headers = dict(headers or {})
        all_headers[INVOCATION_HEADER] = invocation_id
        all_headers[REQUEST_ID_HEADER] = str(request_id)
        return self._client.request(method, path, headers=all_headers, content=body)

    # ------------------------------------------------------------------ IPC view

    @property
    def messages(self) -> list[IpcMessage]:
        """A snapshot of every IPC message received so far, in arrival order."""
        with self._cond:
            return list(self._messages)

    def messages_for(self, request_id: int) -> list[IpcMessage]:
        """The ``handler-started``/``log``/``end`` messages of one request."""
        return [m for m in self.messages if m.request_id == request_id]

    def logs_for(self, request_id: int) -> list[str]:
        """The decoded ``log`` lines attributed to one request."""
        return [m.text for m in self.messages_for(request_id) if m.type == "log"]

    def find_end(self, request_id: int) -> IpcMessage | None:
        """The ``end`` message of a request if it has arrived, else ``None``."""
        for message in self.messages_for(request_id):
            if message.type == "end":
                return message
        return None

    def wait_for_end(self, request_id: int, timeout: float = 10.0) -> IpcMessage:
        """Block until the launcher sends ``end`` for ``request_id`` (the ASGI call returned)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for message in self._messages:
                    if message.type == "end" and message.request_id == request_id:
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ipc_closed:
                    break
                self._cond.wait(remaining)
        msg = f"no IPC 'end' for request {request_id} within {timeout} s"
        raise TimeoutError(msg)

    def stderr_text(self) -> str:
        """What the child wrote to its real stderr (fatal errors, uvicorn warnings)."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        return self._stderr_path.read_text(errors="replace")

    # ------------------------------------------------------------------ internals

    def _populate_vendor(self, vendor: Path) -> None:
        package_dir, dist_info = _installed_runtime()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(package_dir, vendor / "vercel_runtime", ignore=ignore)
        if dist_info is not None:
            shutil.copytree(dist_info, vendor / dist_info.name, ignore=ignore)

    def _read_ipc(self) -> None:
        assert self._server is not None
        conn: socket.socket | None = None
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = self._server.accept()
                    break
                except TimeoutError:
                    continue
            if conn is None:
                return
            conn.settimeout(0.2)
            buffer = b""
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                for raw in complete:
                    self._record(raw)
        except OSError:
            pass
        finally:
            if conn is not None:
                conn.close()
            with self._cond:
                self._ipc_closed = True
                self._cond.notify_all()

    def _record(self, raw: bytes) -> None:
        now = time.monotonic()
        try:
            data = json.loads(raw)
        except ValueError:
            data = {"type": "undecodable", "payload": {"raw": raw.decode(errors="replace")}}
        payload = data.get("payload")
        message = IpcMessage(
            type=str(data.get("type")),
            payload=payload if isinstance(payload, dict) else {"value": payload},
            received_at=now,
        )
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def _startup_message(self) -> IpcMessage | None:
        """The first ``server-started`` or ``unrecoverable-error`` (call with the lock held)."""
        for message in self._messages:
            if message.type in ("server-started", "unrecoverable-error"):
                return message
        return None

    def _wait_for_startup(self) -> IpcMessage:
        assert self.process is not None
        process = self.process
        deadline = time.monotonic() + self.startup_timeout
        with self._cond:
            while (found := self._startup_message()) is None and process.poll() is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.1))
            if found is None and process.poll() is not None:
                # The child exited: let the reader drain what it sent last.
                self._cond.wait_for(lambda: self._ipc_closed, timeout=1.0)
                found = self._startup_message()
        if found is not None and found.type == "server-started":
            return found
        if found is not None:
            error = str(found.payload.get("message"))
            self._raise_startup("the launcher reported unrecoverable-error", error)
        if process.poll() is not None:
            self._raise_startup("the launcher exited before server-started", None)
        self._raise_startup(f"no server-started within {self.startup_timeout} s", None)

    def _raise_startup(self, reason: str, ipc_message: str | None) -> Never:
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)  # vc_init exits(1) right after unrecoverable-error
        raise LauncherError(
            reason,
            ipc_message=ipc_message,
            stderr=self.stderr_text(),
            returncode=self.process.poll(),
        )
