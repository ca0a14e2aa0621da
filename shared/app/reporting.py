"""The error-reporting hook: one small report for every 5xx answer and every job failure.

    def report_to_sentry(report: ErrorReport) -> None:
        sentry_sdk.capture_message(f"{report.status} {report.path}: {report.message}",
                                   tags={"request_id": report.request_id})

Plug it in with `ERROR_REPORTER="mypackage.errors:report_to_sentry"` (read by
`Settings.from_env`) or `build_app(env, transport=..., error_reporter=...)`. The
default logs one JSON line at ERROR. A report never holds a body, a header
value or a secret: only what the client was told plus the exception's type.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from shared.errors import ConfigError

log = logging.getLogger("app.errors")


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """`message` is the public error text of the answer; `error_type` the exception's class
    (or `HttpError` for an answer given without one)."""

    request_id: str
    status: int
    path: str
    error_type: str
    message: str


ErrorReporter = Callable[[ErrorReport], None]


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
