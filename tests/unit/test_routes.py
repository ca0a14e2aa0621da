"""The app's public paths live in one module: the router mounts only those, and the URLs
QStash calls are built from them the same way whatever the deployment URL looks like."""

from __future__ import annotations

from devstack.dev import app_env
from shared import routes
from shared.app.assembly import build_app
from shared.http import HttpxTransport

DUMMY_STACK = {
    "redis_rest_url": "http://127.0.0.1:9",
    "redis_rest_token": "token",
    "qstash_url": "http://127.0.0.1:9",
    "qstash_token": "token",
    "qstash_current_signing_key": "sig_current",
    "qstash_next_signing_key": "sig_next",
    "email_api_url": "http://127.0.0.1:9",
}


def test_every_mounted_route_is_a_path_of_the_routes_module() -> None:
    """Each route the app serves (HEAD and OPTIONS aside) is one of `shared.routes`' paths,
    and each of those paths is served."""
    owned = {v for k, v in vars(routes).items() if k.isupper() and v.startswith("/api/")}
    bundle = build_app(app_env(DUMMY_STACK, "https://shop.example.com"), transport=HttpxTransport())
    served = {r.pattern for r in bundle.app.router._routes if r.method not in ("HEAD", "OPTIONS")}
    assert served == owned


def test_public_url_and_fill() -> None:
    """A deployment URL with or without a trailing slash gives one public URL; `fill` puts
    the parameters into a path template."""
    for app_url in ("https://shop.example.com", "https://shop.example.com/"):
        url = routes.public_url(app_url, routes.FLUSH_OUTBOX)
        assert url == "https://shop.example.com/api/cron/flush-outbox"
    assert routes.fill(routes.DEAD_LETTER_RETRY, id="ord_1") == "/api/admin/outbox/dead/ord_1/retry"
