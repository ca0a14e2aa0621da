"""A newcomer's first five minutes, from a clean clone: `make dev` installs no npm package,
answers /api/health and serves the console, refuses a taken port before its banner, keeps
its log under `.state/`, and the README's "First five minutes" curl lines, run in order,
give the answers the README shows. The README's outage table names tests that exist."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import dev as dev_module
from devstack.ports import free_port
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.newcomer

README = (REPO_ROOT / "README.md").read_text()
MARKER = "<!-- walkthrough:"
ELIDED = "…"
STARTUP_S = 240.0


def walkthrough() -> list[tuple[str, int, Any]]:
    """(command, status, expected JSON or None) for each curl line of the walkthrough block."""
    block = README.split(MARKER, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    steps: list[tuple[str, int, Any]] = []
    command = ""
    for line in block.splitlines():
        if line.startswith("# "):
            status, _, body = line[2:].partition(" ")
            steps.append((command, int(status), json.loads(body) if body else None))
            command = ""
        elif line.endswith("\\"):
            command += line[:-1] + " "
        else:
            command += line
    return steps


def matches(expected: Any, actual: Any) -> bool:
    """`expected` is a subset of `actual`: listed keys present, "…" matches any value."""
    if expected == ELIDED:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    return bool(expected == actual)


def test_the_walkthrough_parses_into_answered_curl_lines() -> None:
    """Every walkthrough line is a curl command followed by the answer it gives."""
    steps = walkthrough()
    assert len(steps) >= 5
    assert all(command.startswith("curl -s ") for command, _, _ in steps)


def test_the_outage_table_names_tests_that_exist() -> None:
    """Each test the README's outage table cites is a test function in the named file."""
    table = README.split("| what is down |", 1)[1].split("\n\n", 1)[0]
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", table)
    assert len(cited) >= 4
    for path, name in cited:
        assert f"def {name}(" in (REPO_ROOT / path).read_text(), f"{path}::{name}"


class DevRun:
    """`make dev PORT=...` in its own process group, output in a file."""

    def __init__(self, clone: Path, port: int, output: Path) -> None:
        self.clone = clone
        self.output = output
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PORT")}
        self.proc = subprocess.Popen(
            ["make", "dev", f"PORT={port}"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C sends
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevRun, str, str]]:
    """A clean clone of this checkout running `make dev` on a free port: (run, api, console)."""
    root = tmp_path_factory.mktemp("newcomer")
    clone = root / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
    port = free_port()
    run = DevRun(clone, port, root / "make-dev.out")
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and run.proc.poll() is None:
            try:
                if httpx.get(api + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)  # polling a process that is starting, not waiting for time
        else:
            pytest.fail(f"make dev did not answer /api/health:\n{run.text()}")
        console = re.search(r"^\s+Console\s+(http://\S+?)/?\s", run.text(), re.MULTILINE)
        assert console, run.text()
        yield run, api, console.group(1)
    finally:
        run.stop()


def test_make_dev_serves_health_and_the_console_without_npm(dev: tuple[DevRun, str, str]) -> None:
    """The clone answers /api/health, its banner names the console first and the cron secret,
    the console page renders, no node_modules was installed and the log is under .state/."""
    run, _, console = dev
    banner = run.text()
    lines = [line.strip() for line in banner.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("Console"))
    assert lines[first + 1].startswith("API")
    assert "Cron secret    devstack-cron-secret" in banner
    page = httpx.get(console + "/console/requests", timeout=5)
    assert page.status_code == 200 and "devstack console" in page.text
    assert not (run.clone / "node_modules").exists()
    inbox = re.search(r"Email inbox\s+http://127\.0\.0\.1:(\d+)/", banner)
    assert inbox, banner
    for shown, stable in ((int(console.rsplit(":", 1)[1]), 8100), (int(inbox.group(1)), 8125)):
        # The stable port, unless something else held it when make dev started.
        assert shown == stable or not dev_module.port_is_free(stable), (shown, stable)
    log = run.clone / ".state" / "logs" / "devstack.log"
    assert log.exists() and "console on" in log.read_text()
    assert (
        subprocess.run(
            ["git", "check-ignore", "-q", ".state/logs/devstack.log"], cwd=run.clone
        ).returncode
        == 0
    )


def test_a_taken_port_fails_before_the_banner(dev: tuple[DevRun, str, str], tmp_path: Path) -> None:
    """A second `make dev` on the port the first one serves exits non-zero with a message
    naming the port and `make dev PORT=`, and prints no banner."""
    run, api, _ = dev
    port = int(api.rsplit(":", 1)[1])
    second = subprocess.run(
        ["make", "dev", f"PORT={port}"],
        cwd=run.clone,
        env={k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PORT")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode != 0
    assert f"port {port} is already in use" in second.stderr
    assert f"make dev PORT={port + 1}" in second.stderr
    assert "Console" not in second.stdout and "starting the devstack" not in second.stdout


def test_the_readme_curl_lines_give_the_answers_it_shows(dev: tuple[DevRun, str, str]) -> None:
    """Run in order against the clone's `make dev`, each README curl line answers the status
    and JSON the README shows under it."""
    _, api, _ = dev
    found: dict[str, str] = {}
    for command, status, expected in walkthrough():
        line = command.replace("http://127.0.0.1:8000", api)
        for name, value in found.items():
            line = line.replace(name, value)
        result = subprocess.run(
            ["bash", "-c", line + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        body, _, code = result.stdout.rpartition("\n")
        assert int(code) == status, (command, result.stdout)
        if expected is None:
            assert body == "", (command, body)
            continue
        answer = json.loads(body)
        assert matches(expected, answer), (command, expected, answer)
        if "access_token" in answer:
            found = {"ORDER_ID": answer["order"]["id"], "ACCESS_TOKEN": answer["access_token"]}


def test_the_default_rate_limit_is_ten_per_ten_seconds(dev: tuple[DevRun, str, str]) -> None:
    """As the README says, `make dev` allows 10 requests per 10 s per client address: a burst
    gets `429 {"error": "Too many requests"}` with `Retry-After` by its 11th call."""
    _, api, _ = dev
    answers = [httpx.get(api + "/api/health", timeout=5) for _ in range(11)]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"10"}
    denied = [a for a in answers if a.status_code == 429]
    assert denied, [a.status_code for a in answers]
    assert denied[0].json() == {"error": "Too many requests"}
    assert int(denied[0].headers["retry-after"]) > 0
