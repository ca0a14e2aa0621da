"""The app's public paths: the URLs QStash calls are built from them the same way whatever
the deployment URL looks like (that the router mounts exactly these paths is checked in
tests/orders/test_openapi.py)."""

from __future__ import annotations

from shared import routes


def test_public_url_and_fill() -> None:
    """A deployment URL with or without a trailing slash gives one public URL; `fill` puts
    the parameters into a path template."""
    for app_url in ("https://shop.example.com", "https://shop.example.com/"):
        url = routes.public_url(app_url, routes.FLUSH_OUTBOX)
        assert url == "https://shop.example.com/api/cron/flush-outbox"
    assert routes.fill(routes.DEAD_LETTER_RETRY, id="ord_1") == "/api/admin/outbox/dead/ord_1/retry"
