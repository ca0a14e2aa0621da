"""The launcher harness: the hello fixture app served by the real vercel-runtime 0.23.2."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.launcher.conftest import BROKEN_APP, HELLO_APP, HELLO_GREETING
from tests.launcher.harness import (
    INVOCATION_HEADER,
    REQUEST_ID_HEADER,
    STARTUP_TIMEOUT,
    LauncherError,
    VercelLauncher,
    request_id_of,
)

pytestmark = pytest.mark.launcher


def test_startup_handshake(hello_launcher: VercelLauncher) -> None:
    """The launcher announces server-started with a loopback HTTP port well within the timeout."""
    first = hello_launcher.messages[0]
    assert first.type == "server-started"
    assert first.payload["httpPort"] == hello_launcher.http_port
    assert hello_launcher.base_url == f"http://127.0.0.1:{hello_launcher.http_port}"
    assert hello_launcher.startup_seconds is not None
    assert hello_launcher.startup_seconds < STARTUP_TIMEOUT
    print(  # visible with -s: the startup cost of one launcher
        f"launcher startup {hello_launcher.startup_seconds:.2f} s, "
        f"initDuration {first.payload['initDuration']} ms, "
        f"userInitDuration {first.payload['userInitDuration']} ms"
    )


def test_runtime_comes_from_vendor_copy(hello_launcher: VercelLauncher) -> None:
    """vercel_runtime 0.23.2 is imported from the temp _vendor copy, behind the task root."""
    data = hello_launcher.request("GET", "/api/runtime").json()
    vendor = str(hello_launcher.vendor_dir)
    assert data["vercel_runtime_file"].startswith(vendor + "/")
    assert data["vercel_runtime_version"] == "0.23.2"
    assert data["sys_path"][:2] == ["", vendor]
    assert data["cwd"] == str(HELLO_APP.resolve())
    assert data["module_name"] == "vercel_api.index"


def test_get_hello_sees_env_var(hello_launcher: VercelLauncher) -> None:
    """GET /api/hello answers 200 with the env var the launcher was started with."""
    response = hello_launcher.request("GET", "/api/hello")
    assert response.status_code == 200
    assert response.json() == {"hello": "world", "greeting": HELLO_GREETING}


def test_post_echo_strips_internal_headers(hello_launcher: VercelLauncher) -> None:
    """POST /api/echo returns the body, and the app never sees the internal id headers."""
    payload = json.dumps({"n": 42, "text": "grüße"})
    response = hello_launcher.request(
        "POST", "/api/echo", headers={"content-type": "application/json"}, body=payload
    )
    assert response.status_code == 200
    data = response.json()
    assert data["method"] == "POST"
    assert json.loads(data["body"]) == {"n": 42, "text": "grüße"}
    assert data["content_type"] == "application/json"
    assert INVOCATION_HEADER not in data["header_names"]
    assert REQUEST_ID_HEADER not in data["header_names"]


def test_ipc_messages_per_request(hello_launcher: VercelLauncher) -> None:
    """Each request yields handler-started, its print() as a log line, then end, with its ids."""
    response = hello_launcher.request("GET", "/api/hello")
    request_id = request_id_of(response)
    invocation_id = response.request.headers[INVOCATION_HEADER]
    end = hello_launcher.wait_for_end(request_id)
    assert end.invocation_id == invocation_id
    types = [m.type for m in hello_launcher.messages_for(request_id)]
    assert types == ["handler-started", "log", "end"]
    assert hello_launcher.logs_for(request_id) == ["hello handler ran for /api/hello\n"]


def test_background_work_done_before_end(
    hello_launcher: VercelLauncher, background_dir: Path
) -> None:
    """The response arrives before the work after the body runs, and the work is done at end."""
    token = uuid.uuid4().hex
    marker = background_dir / f"{token}.txt"
    response = hello_launcher.request("GET", f"/api/background?token={token}")
    response_at = time.monotonic()
    request_id = request_id_of(response)
    assert response.status_code == 202
    assert response.json() == {"scheduled": token}
    # The client holds the full response while the ASGI call is still sleeping.
    assert not marker.exists()
    assert hello_launcher.find_end(request_id) is None

    end = hello_launcher.wait_for_end(request_id, timeout=10.0)
    assert end.received_at > response_at
    assert marker.read_text() == f"done {token}"
    assert hello_launcher.logs_for(request_id) == [f"background work done for {token}\n"]


def test_import_failure_is_unrecoverable_error() -> None:
    """An entrypoint whose import fails makes the harness raise with the launcher's message."""
    with pytest.raises(LauncherError) as caught, VercelLauncher(BROKEN_APP):
        pytest.fail("the broken app must not start")
    error = caught.value
    assert error.ipc_message is not None
    assert 'could not import "vercel_api/index.py"' in error.ipc_message
    assert "module_that_does_not_exist_anywhere" in error.ipc_message
    assert "module_that_does_not_exist_anywhere" in error.stderr
    assert error.returncode == 1
    assert "unrecoverable-error" in str(error)


def test_missing_variable_is_unrecoverable_error() -> None:
    """Naming a variable the module lacks is reported as unrecoverable-error too."""
    with pytest.raises(LauncherError) as caught, VercelLauncher(HELLO_APP, variable="nope"):
        pytest.fail("the launcher must not start without the variable")
    assert caught.value.ipc_message is not None
    assert 'missing variable "nope"' in caught.value.ipc_message
