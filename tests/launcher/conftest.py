"""Fixtures for the launcher layer: the hello fixture app served by the real vercel-runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launcher.harness import VercelLauncher

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HELLO_APP = FIXTURES / "hello_app"
BROKEN_APP = FIXTURES / "broken_app"
HELLO_GREETING = "hej from the launcher test"


@pytest.fixture(scope="module")
def background_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the hello app's background route writes its marker files."""
    return tmp_path_factory.mktemp("background")


@pytest.fixture(scope="module")
def hello_launcher(background_dir: Path) -> Iterator[VercelLauncher]:
    """The hello fixture app running under vercel-runtime, one process per test module."""
    env = {"HELLO_GREETING": HELLO_GREETING, "BACKGROUND_DIR": str(background_dir)}
    with VercelLauncher(HELLO_APP, env=env) as launcher:
        yield launcher
