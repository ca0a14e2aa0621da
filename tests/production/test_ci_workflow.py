"""The GitHub Actions workflow for forks: parsed, and checked to run `make test` and a guarded
`make smoke`."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def commands(job: dict[str, Any]) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def uses(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step
    }


def test_runs_on_push_and_pull_requests() -> None:
    """The workflow triggers on pushes and pull requests (YAML 1.1 reads `on` as True)."""
    doc = load()
    triggers = doc.get("on", doc.get(True))
    assert {"push", "pull_request"} <= set(triggers)


def test_test_job_runs_make_test_with_python_and_node() -> None:
    """The test job sets up Python 3.12 and a Node that package.json accepts, then `make test`."""
    job = load()["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    actions = uses(job)
    assert "actions/checkout" in actions
    assert str(actions["actions/setup-python"]["python-version"]) == "3.12"
    node = int(str(actions["actions/setup-node"]["node-version"]).split(".")[0])
    engines = json.loads((REPO_ROOT / "package.json").read_text())["engines"]["node"]
    assert node >= int(re.search(r"\d+", engines).group())  # type: ignore[union-attr]
    assert "make test" in commands(job)


def test_smoke_job_is_guarded_by_the_secrets() -> None:
    """The smoke job needs the test job, runs only when Upstash secrets exist, and passes them
    to `make smoke` through its environment."""
    jobs = load()["jobs"]
    smoke, test = jobs["smoke"], jobs["test"]
    assert smoke["needs"] == "test"
    assert smoke["if"] == "needs.test.outputs.has-upstash == 'true'"
    flag = next(s for s in test["steps"] if s.get("id") == "secrets")
    assert "secrets.UPSTASH_REDIS_REST_URL" in flag["env"]["HAS_UPSTASH"]
    assert "secrets.UPSTASH_REDIS_REST_TOKEN" in flag["env"]["HAS_UPSTASH"]
    assert "steps.secrets.outputs.has-upstash" in test["outputs"]["has-upstash"]
    step = next(s for s in smoke["steps"] if s.get("run", "").strip() == "make smoke")
    for name in ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "QSTASH_TOKEN"):
        assert step["env"][name] == f"${{{{ secrets.{name} }}}}"
    assert "APP_URL" in step["env"]


def test_make_targets_exist() -> None:
    """`make test` and `make smoke` are real Makefile targets."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert re.search(r"^smoke:.*\n\t\$\(VENV_PY\) tools/smoke\.py", makefile, re.MULTILINE)
