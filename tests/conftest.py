"""Session fixtures shared by every test layer: the local devstack.

``devstack`` starts ``python -m devstack up --json`` once per session and yields a
:class:`Devstack` (URLs, tokens and the raw JSON line). ``rest_env`` gives the
environment an Upstash client reads. Tests using them must pick unique key
prefixes (``unique_prefix``) and never FLUSHDB: the server is shared.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack import launch

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0
QSTASH_TIME_SCALE = 0.001  # a private devstack's QStash waits 1000x shorter

# The smallest environment `Settings.from_env` accepts (placeholders: nothing is contacted).
# Without ORDER_TOKEN_SECRET, so a test can check that it is required.
MINIMAL_ENV_NO_SECRET = {
    "UPSTASH_REDIS_REST_URL": "https://db.upstash.io",
    "UPSTASH_REDIS_REST_TOKEN": "token",
    "QSTASH_TOKEN": "qtoken",
    "QSTASH_CURRENT_SIGNING_KEY": "sig_current",
    "QSTASH_NEXT_SIGNING_KEY": "sig_next",
    "RESEND_API_KEY": "re_key",
    "EMAIL_FROM": "Shop <shop@example.com>",
    "APP_URL": "https://shop.example.com",
}
MINIMAL_ENV = {**MINIMAL_ENV_NO_SECRET, "ORDER_TOKEN_SECRET": "order-token-secret-for-unit-tests"}


@dataclass(frozen=True)
class Devstack:
    """What ``devstack up --json`` announced."""

    redis_rest_url: str
    redis_rest_token: str
    redis_rest_readonly_token: str
    redis_url: str
    raw: dict[str, Any] = field(repr=False)
    process: subprocess.Popen[str] = field(repr=False, compare=False)
    stderr_path: Path = field(repr=False, compare=False)

    def stderr_text(self) -> str:
        """Everything the devstack logged so far (stderr goes to a file, never a pipe)."""
        return self.stderr_path.read_text(errors="replace")


def start_devstack(*extra_args: str) -> Devstack:
    """Start a private devstack subprocess (bounded wait for its JSON line)."""
    try:
        handle = launch.start_devstack(*extra_args)
    except launch.DevstackStartError as exc:
        pytest.fail(str(exc))
    info = handle.info
    return Devstack(
        redis_rest_url=info["redis_rest_url"],
        redis_rest_token=info["redis_rest_token"],
        redis_rest_readonly_token=info["redis_rest_readonly_token"],
        redis_url=info["redis_url"],
        raw=info,
        process=handle.process,
        stderr_path=handle.stderr_path,
    )


def stop_devstack(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    """SIGTERM, wait, kill on timeout."""
    launch.DevstackProcess({}, proc, Path("/dev/null")).stop(timeout)


@contextmanager
def running_devstack(*extra_args: str) -> Iterator[Devstack]:
    """A devstack of its own (QStash waits scaled 1000x shorter), stopped and cleaned after."""
    stack = start_devstack("--qstash-time-scale", str(QSTASH_TIME_SCALE), *extra_args)
    try:
        yield stack
    finally:
        stop_devstack(stack.process)
        stack.stderr_path.unlink(missing_ok=True)


def qstash_env_of(info: Mapping[str, Any]) -> dict[str, str]:
    """The environment our QStash client and Receiver read, from what a devstack announced."""
    return {
        "QSTASH_URL": info["qstash_url"],
        "QSTASH_TOKEN": info["qstash_token"],
        "QSTASH_CURRENT_SIGNING_KEY": info["qstash_current_signing_key"],
        "QSTASH_NEXT_SIGNING_KEY": info["qstash_next_signing_key"],
    }


@pytest.fixture(scope="session")
def devstack() -> Iterator[Devstack]:
    """The session-wide local stack: Redis REST, QStash (waits scaled 1000x shorter), email sink."""
    with running_devstack() as stack:
        yield stack


@pytest.fixture(scope="session")
def rest_env(devstack: Devstack) -> dict[str, str]:
    """Environment variables an Upstash Redis REST client reads."""
    return {
        "UPSTASH_REDIS_REST_URL": devstack.redis_rest_url,
        "UPSTASH_REDIS_REST_TOKEN": devstack.redis_rest_token,
    }


@pytest.fixture
def unique_prefix() -> str:
    """A random key prefix so tests sharing the Redis never collide."""
    return f"test:{uuid.uuid4().hex}:"
