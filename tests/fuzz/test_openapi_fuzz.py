"""Property-based fuzzing of every operation in the served `/api/openapi.json` (schemathesis,
fixed seed, bounded examples) against the real app over HTTP (uvicorn) on the devstack.

One run per module: for each operation the document lists, positive (schema-valid) and
negative (schema-violating) cases. Then: no answer is a 5xx, every error answer is JSON with
an "error" string, and the app's log of the whole run, the confirmation jobs QStash calls back
for the orders it created included, holds no traceback and no email address from the
generated inputs. The test reads whatever the document lists, so it keeps working as the
document grows.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from shared.routes import CONFIRMATION_JOB as JOB_PATH
from tests.conftest import Devstack
from tests.support.inprocess import app_test_env
from tests.support.served import served_app
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

SEED = 20261204
MAX_EXAMPLES = 100  # per operation and generation mode
EMAIL = re.compile(r"[^\s@\"'\\]{1,64}@[^\s@\"'\\]+\.[^\s@\"'\\]{2,}")
ORDER_ID = re.compile(r"ord_[A-Za-z0-9_-]{22}")
JOB_STARTED = re.compile(r"confirmation job order=(ord_[A-Za-z0-9_-]{22})")
REQUEST_ID = re.compile(r"\(request ([A-Za-z0-9._-]+)\)")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(self._formatter.format(r) for r in list(self.records))


@dataclass
class FuzzRun:
    log: _Collect
    failures: list[str] = field(default_factory=list)
    emails: set[str] = field(default_factory=set)
    created: set[str] = field(default_factory=set)
    statuses: dict[str, set[int]] = field(default_factory=dict)

    def request_paths(self) -> dict[str, str]:
        """request id -> path, from the app's one JSON line per request."""
        paths = {}
        for record in list(self.log.records):
            if record.name == "app.request":
                line = json.loads(record.getMessage())
                paths[line["request_id"]] = line["path"]
        return paths

    def traceback_paths(self) -> list[tuple[str, str]]:
        """(path or '?', message) of every log record that carries a traceback."""
        paths = self.request_paths()
        found = []
        for record in list(self.log.records):
            if record.exc_info or "Traceback" in record.getMessage():
                match = REQUEST_ID.search(record.getMessage())
                path = paths.get(match.group(1), "?") if match else "?"
                found.append((path, record.getMessage()))
        return found


@pytest.fixture(scope="module")
def served(devstack: Devstack) -> Iterator[str]:
    """The app (AsgiAdapter over build_app) served by uvicorn on a free loopback port, with a
    rate limit high enough that 429s do not hide the rest."""
    # httpx's per-call lines (they hold query strings) are not the app's log; the app's own
    # loggers stay fully captured (uvicorn's access log is off).
    quiet = [logging.getLogger("uvicorn.access"), logging.getLogger("httpx")]
    for logger in quiet:
        logger.disabled = True
    try:
        with served_app(lambda url: app_test_env(devstack, url, RATE_LIMIT="1000000/10s")) as url:
            yield url
    finally:
        for logger in quiet:
            logger.disabled = False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _emails(case: Any) -> set[str]:
    """Email-looking strings anywhere in the generated body, query or headers."""
    found: set[str] = set()
    for part in (case.body, case.query, case.headers):
        for text in _strings(part):
            found.update(EMAIL.findall(text))
    return found


def _answer_problem(case: Any, response: Any) -> str | None:
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    if response.status_code >= 500:
        return "5xx: " + where
    if response.status_code >= 400:
        content_type = (response.headers.get("content-type") or [""])[0]
        try:
            body = response.json()
        except ValueError:
            body = None
        if not content_type.startswith("application/json"):
            return "error not JSON: " + where
        if not (isinstance(body, dict) and isinstance(body.get("error"), str)):
            return "error without an 'error' string: " + where
    return None


@pytest.fixture(scope="module")
def fuzz_run(served: str) -> Iterator[FuzzRun]:
    """The bounded, seeded run over every documented operation, with the app's log captured
    until every order it created has had its confirmation job delivered at least once."""
    handler = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    run = FuzzRun(handler)
    try:
        schema = schemathesis.openapi.from_url(f"{served}/api/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, "the document lists no operation"
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz(operation, mode, served, run)
        wait_for(lambda: _jobs_settled(run), "the confirmation jobs of created orders", timeout=60)
        yield run
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _fuzz(operation: Any, mode: GenerationMode, served: str, run: FuzzRun) -> None:
    @seed(SEED)
    @settings(
        max_examples=MAX_EXAMPLES,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        run.emails.update(_emails(case))
        response = case.call(base_url=served, timeout=30)
        run.statuses.setdefault(operation.label, set()).add(response.status_code)
        if response.status_code == 201:
            run.created.update(ORDER_ID.findall(response.text))
        problem = _answer_problem(case, response)
        if problem is not None:
            run.failures.append(f"[{mode.value}] {problem}")

    try:
        one()
    except Unsatisfiable:  # nothing to violate (no parameters, no body): no negative case
        assert mode is GenerationMode.NEGATIVE, operation.label


def _jobs_settled(run: FuzzRun) -> bool:
    """Every created order's job started at least once, and every started job answered."""
    records = list(run.log.records)
    started = [m.group(1) for r in records if (m := JOB_STARTED.search(r.getMessage()))]
    answered = sum(
        1 for r in records if r.name == "app.request" and f'"path":"{JOB_PATH}"' in r.getMessage()
    )
    return run.created <= set(started) and answered >= len(started)


def test_fuzz_answers_are_never_5xx_and_errors_are_json(fuzz_run: FuzzRun) -> None:
    """No generated request, valid or not, gets a 5xx; every 4xx is JSON with an "error"."""
    assert not fuzz_run.failures, "\n".join(fuzz_run.failures[:10])
    assert fuzz_run.statuses, "no request was made"
    assert fuzz_run.created, "no generated order was accepted: the positive phase proved little"
    print({label: sorted(codes) for label, codes in fuzz_run.statuses.items()})


def test_fuzz_log_has_no_traceback_from_api_requests(fuzz_run: FuzzRun) -> None:
    """The fuzzed API requests log no traceback (job deliveries are checked separately)."""
    api = [(p, m) for p, m in fuzz_run.traceback_paths() if p != JOB_PATH]
    assert not api, api[:5]


def test_fuzz_log_has_no_generated_email(fuzz_run: FuzzRun) -> None:
    """No email address from the generated inputs reaches the log, job deliveries included."""
    assert fuzz_run.emails, "no email-looking input was generated: the check proves nothing"
    text = fuzz_run.log.text()
    leaked = sorted(e for e in fuzz_run.emails if e in text)
    assert not leaked, f"generated email addresses in the log: {leaked[:5]}"


def test_fuzz_job_deliveries_log_no_traceback(fuzz_run: FuzzRun) -> None:
    """The confirmation jobs of the orders the fuzz run created log no traceback either."""
    jobs = [m for p, m in fuzz_run.traceback_paths() if p == JOB_PATH]
    assert not jobs, jobs[:5]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
_raw_bodies = st.one_of(
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=2000),
    st.integers(1, 20_000).map(lambda n: b"[" * n),
    st.integers(1, 5_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 3_000).map(
        lambda n: b'{"customer_email":"a@example.com","items":' + b"[" * n + b"]" * n + b"}"
    ),
)
_content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/xml",
        "",
    ]
)
_tokens = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300),
    st.tuples(_raw_bodies, _raw_bodies).map(
        lambda hp: ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in hp) + ".AAAA"
    ),
)


@seed(SEED)
@settings(
    max_examples=150,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(body=_raw_bodies, content_type=_content_types, token=_tokens)
def test_fuzz_raw_bodies_and_signatures(
    served: str, body: bytes, content_type: str, token: str
) -> None:
    """Raw bodies (deeply nested, binary, any JSON) under any content type, to the order API
    and, with a forged Upstash-Signature, to the job path: never a 5xx, always a JSON error."""
    headers = {"content-type": content_type} if content_type else {}
    with httpx.Client(base_url=served, timeout=30) as client:
        answers = [
            client.post("/api/orders", content=body, headers=headers),
            client.post(JOB_PATH, content=body, headers={**headers, "upstash-signature": token}),
        ]
    for answer in answers:
        assert answer.status_code < 500, (answer.status_code, answer.text[:300])
        if answer.status_code >= 400:
            assert answer.headers["content-type"].startswith("application/json")
            assert isinstance(answer.json().get("error"), str)
