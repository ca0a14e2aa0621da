"""The Pyodide layer itself: real Pyodide (0.28 = Python 3.13, 314 = Python 3.14) under Node,
offline, with the real `workers` SDK; our core's FetchTransport; a Worker served per request."""

from __future__ import annotations

import json
import sysconfig
import urllib.request
from pathlib import Path

import pytest
from runner import (
    FIXTURES,
    PYTHON_OF,
    REPO_ROOT,
    SCRIPTS,
    EchoServer,
    assert_checks_passed,
    run_in_pyodide,
    run_worker_requests,
    serve_worker,
)

pytestmark = pytest.mark.pyodide

HELLO_WORKER = FIXTURES / "hello_worker"


def test_runtime_and_imports(pyodide_version: str, echo_server: EchoServer) -> None:
    env = {
        "REFUSED_URL": echo_server.refused_url,
        "EXPECTED_PYTHON": ".".join(map(str, PYTHON_OF[pyodide_version])),
        "VENV_SITE_PACKAGES": "/repo/" + _venv_site_packages(),
    }
    result = run_in_pyodide(pyodide_version, SCRIPTS / "runtime_checks.py", env)
    assert_checks_passed(result)
    assert result["data"]["python"].startswith(env["EXPECTED_PYTHON"] + ".")


def _venv_site_packages() -> str:
    """The venv's site-packages (which holds httpx) relative to the repo, i.e. under /repo."""
    return str(Path(sysconfig.get_paths()["purelib"]).resolve().relative_to(REPO_ROOT))


def test_fetch_transport(pyodide_version: str, echo_server: EchoServer) -> None:
    env = {"ECHO_URL": echo_server.url, "REFUSED_URL": echo_server.refused_url}
    result = run_in_pyodide(pyodide_version, SCRIPTS / "transport_checks.py", env)
    assert_checks_passed(result)


def test_worker_adapter_conversions(pyodide_version: str) -> None:
    """The Worker adapter reads JS requests and builds JS responses without losing a byte."""
    assert_checks_passed(run_in_pyodide(pyodide_version, SCRIPTS / "adapter_checks.py"))


def _hello_env(echo_server: EchoServer) -> dict[str, str]:
    return {"UPSTREAM_URL": echo_server.url, "GREETING": "hello from env"}


def test_worker_batch(pyodide_version: str, echo_server: EchoServer) -> None:
    before = len(echo_server.records)
    requests = [
        {"method": "GET", "path": "/first?x=1", "headers": {"x-test": "t1"}},
        {"method": "POST", "path": "/second", "body": '{"k": "v"}'},
        {"scheduled": True, "cron": "*/5 * * * *"},
        {"method": "GET", "path": "/events"},
    ]
    result = run_worker_requests(pyodide_version, HELLO_WORKER, requests, _hello_env(echo_server))
    first, second, cron, events = result["responses"]

    assert first["status"] == 200, first
    assert first["headers"]["x-worker"] == "hello"
    body = json.loads(first["body"])
    assert body == {
        "method": "GET",
        "path": "/first",
        "greeting": "hello from env",
        "body": None,
        "header": "t1",
        "outbound_status": 200,
        "outbound_body": "from-worker /first",
    }
    assert first["wait_until"] == {"count": 1, "errors": []}

    body = json.loads(second["body"])
    assert (body["method"], body["body"], body["path"]) == ("POST", '{"k": "v"}', "/second")

    assert "error" not in cron and cron["wait_until"] == {"count": 1, "errors": []}, cron
    assert json.loads(events["body"])["events"] == [
        "fetch GET /first",
        "fetch POST /second",
        "scheduled */5 * * * *",
    ]
    # The waitUntil work (an outbound POST after the response) really completed.
    new = echo_server.records[before:]
    assert {"kind": "wait_until", "path": "/first"} in new
    assert {"kind": "wait_until", "path": "/second"} in new
    assert {"kind": "scheduled", "cron": "*/5 * * * *"} in new


def test_worker_http_server(pyodide_version: str, echo_server: EchoServer) -> None:
    with serve_worker(pyodide_version, HELLO_WORKER, _hello_env(echo_server)) as url:
        req = urllib.request.Request(
            f"{url}/over-http", data=b"payload", method="POST", headers={"x-test": "h"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            assert resp.headers["x-worker"] == "hello"
            body = json.loads(resp.read())
        assert (body["path"], body["body"], body["header"]) == ("/over-http", "payload", "h")
        assert body["greeting"] == "hello from env"
        with urllib.request.urlopen(f"{url}/__scheduled?cron=0+*+*+*+*", timeout=30) as resp:
            assert resp.read() == b"Ran scheduled event"
        with urllib.request.urlopen(f"{url}/events", timeout=30) as resp:
            events = json.loads(resp.read())["events"]
        assert events == ["fetch POST /over-http", "scheduled 0 * * * *"]


BIG = 100_000  # characters: past a pipe's 64 KB (and under one argument's 128 KB: the
# batch's requests travel on node's command line)


def test_a_batch_result_past_64_kb_arrives_whole(
    pyodide_version: str, echo_server: EchoServer
) -> None:
    """The worker harness exits only once its whole result line is written (it was cut)."""
    body = "x" * BIG
    result = run_worker_requests(
        pyodide_version,
        HELLO_WORKER,
        [{"method": "POST", "path": "/big", "body": body}],
        _hello_env(echo_server),
    )
    [answer] = result["responses"]
    assert json.loads(answer["body"])["body"] == body


def test_a_script_result_past_64_kb_arrives_whole(pyodide_version: str, tmp_path: Path) -> None:
    """The script harness exits only once the script's whole result line is written."""
    script = tmp_path / "big_result.py"
    script.write_text(
        "from pyodide_checks import Checks\n"
        "checks = Checks()\n"
        f"checks.data['big'] = 'y' * {BIG}\n"
        "async def ran() -> None:\n"
        "    pass\n"
        "checks.add('ran', ran)\n"
        "await checks.run()\n"
    )
    result = run_in_pyodide(pyodide_version, script)
    assert_checks_passed(result)
    assert result["data"]["big"] == "y" * BIG
