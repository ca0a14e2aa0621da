"""The app's public paths, written once: the router mounts them, the OpenAPI document lists
them, settings and the QStash operations build the URLs QStash calls (and signs) from them.

Placeholders use the router's `{name}` form, which is also OpenAPI's path templating, so
the document's keys are these strings as they are:

    router.route("GET", ORDER)                       # "/api/orders/{id}"
    public_url(settings.app_url, FLUSH_OUTBOX)       # "https://app.example.com/api/cron/..."

Standard library only and importing nothing of `shared/`: the settings, the feature
packages and the composition root all read it.
"""

from __future__ import annotations

HEALTH = "/api/health"
OPENAPI = "/api/openapi.json"
ORDERS = "/api/orders"
ORDER = "/api/orders/{id}"
CONFIRMATION_JOB = "/api/jobs/send-confirmation"
SMOKE_JOB = "/api/jobs/smoke"
FLUSH_OUTBOX = "/api/cron/flush-outbox"
DEAD_LETTERS = "/api/admin/outbox/dead"
DEAD_LETTER = "/api/admin/outbox/dead/{id}"
DEAD_LETTER_RETRY = "/api/admin/outbox/dead/{id}/retry"

# What the smoke job accepts as `{"nonce": ...}` (`make smoke` sends 24 URL-safe characters).
SMOKE_NONCE_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


def public_url(app_url: str, path: str) -> str:
    """The URL of `path` on the deployment at `app_url` (a trailing slash is dropped)."""
    return app_url.rstrip("/") + path


def fill(path: str, **params: str) -> str:
    """A concrete path: `fill(DEAD_LETTER, id="ord_1")` -> "/api/admin/outbox/dead/ord_1"."""
    return path.format(**params)
