"""The browser layer: a private devstack with its console, the API as `make dev` serves it
(uvicorn over `devstack.console.observer`), and headless Chromium from the distribution's
packages driven by Playwright (`make setup-browser` installs both; never `playwright
install`). Screenshots go to tests/browser/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.dev import app_env
from devstack.launch import DevstackProcess, start_devstack
from devstack.ports import free_port
from tests.conftest import REPO_ROOT
from tests.support.waiting import wait_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass(frozen=True)
class Stack:
    """The devstack's JSON line, the API's URL and the console's."""

    info: dict[str, Any]
    api_url: str
    console_url: str


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            return httpx.get(url + "/api/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, "the API to become healthy", timeout=timeout)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A private devstack (QStash waits 1000x shorter) and the observed API on a free port."""
    devstack: DevstackProcess = start_devstack("--qstash-time-scale", "0.001")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **app_env(devstack.info, api_url),
        "DEVSTACK_CONSOLE_URL": str(devstack.info["console_url"]),
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this block: closed below
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "devstack.console.observer:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        _wait_healthy(api_url, api)
        yield Stack(devstack.info, api_url, str(devstack.info["console_url"]))
    finally:
        api.terminate()
        api.wait(10)
        log.close()
        devstack.stop()
        devstack.stderr_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """Chromium from /usr/bin/chromium with a fresh profile directory."""
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium: run `make setup-browser` (make test does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="run `make setup-browser`")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="console-chromium-") as profile,
        sync_api.sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    page = browser_context.new_page()
    try:
        yield page
    finally:
        page.close()
