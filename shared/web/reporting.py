"""The error-reporting hook: one small report for every 5xx answer and every job failure.

    def report_to_sentry(report: ErrorReport) -> None:
        sentry_sdk.capture_message(f"{report.status} {report.path}: {report.message}",
                                   tags={"request_id": report.request_id})

Failures anyone can cause without credentials (a forged `Upstash-Signature`'s 401
on a job path) and upstream outages (every request's 503 while Redis or QStash is
down) are throttled by the app through `ReportThrottle`: the first one of a key
(path, message or error type) and status is reported, the rest within the next
minute are only counted, and the first report after that carries the count
(`suppressed`, also in the message), so neither a flood of forged deliveries nor
an outage uses up the reporter's quota. A bug (a 500) is reported every time.
The throttle is per process (per isolate / function instance).

Plug it in with `ERROR_REPORTER="mypackage.errors:report_to_sentry"` (read by
`Settings.from_env`) or `build_app(env, transport=..., error_reporter=...)`. The
default logs one JSON line at ERROR. A report never holds a body, a header
value or a secret: only what the client was told plus the exception's type.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from shared.errors import ConfigError

log = logging.getLogger("app.errors")


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """`message` is the public error text of the answer; `error_type` the exception's class
    (or `HttpError` for an answer given without one); `suppressed` how many throttled
    failures of the same key (path, message or error type) and status went unreported
    since the previous report."""

    request_id: str
    status: int
    path: str
    error_type: str
    message: str
    suppressed: int = 0


ErrorReporter = Callable[[ErrorReport], None]


class ReportThrottle:
    """At most one report per (key, status) every `interval_s` seconds; counts the rest.

    `clock` is monotonic seconds (injected in tests). Keys are bounded by the caller
    (the app's come from code: fixed job paths, messages, exception class names).
    """

    def __init__(
        self, interval_s: float = 60.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0 seconds")
        self._interval = interval_s
        self._clock = clock
        self._last: dict[tuple[str, int], float] = {}
        self._suppressed: dict[tuple[str, int], int] = {}

    def admit(self, key: str, status: int) -> int | None:
        """None when this failure is only counted; else how many were counted since the
        last admitted one (the number the report stands for besides itself)."""
        slot = (key, status)
        now = self._clock()
        last = self._last.get(slot)
        if last is not None and now - last < self._interval:
            self._suppressed[slot] = self._suppressed.get(slot, 0) + 1
            return None
        self._last[slot] = now
        return self._suppressed.pop(slot, 0)


def log_error_report(report: ErrorReport) -> None:
    """The default reporter: one structured line at ERROR."""
    log.error("error_report %s", json.dumps(asdict(report), separators=(",", ":")))


def load_reporter(variable: str, spec: str) -> ErrorReporter:
    """Resolves `"package.module:function"` to a callable; `ConfigError` otherwise."""
    module_name, _, attribute = spec.strip().partition(":")
    if not module_name or not attribute:
        raise ConfigError(variable, "must look like 'package.module:function'")
    try:
        target: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        raise ConfigError(variable, f"cannot import {spec.strip()!r}") from None
    if not callable(target):
        raise ConfigError(variable, "does not name a callable")
    reporter: ErrorReporter = target
    return reporter
