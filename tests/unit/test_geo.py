"""The client's country from each platform: Workers `request.cf`, Vercel's header."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.web.asgi import country_from
from shared.web.geo import cf_country, country_code
from shared.web.http import Headers


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("fr", "FR"),
        (" US ", "US"),
        ("T1", "T1"),
        ("XX", "XX"),
        ("FRA", None),
        ("", None),
        ("é1", None),
        (None, None),
        (42, None),
    ],
)
def test_country_code_accepts_two_characters_only(raw: object, code: str | None) -> None:
    """Two ASCII letters or digits, upper-cased; anything else is no country."""
    assert country_code(raw) == code


def test_workers_country_comes_from_request_cf() -> None:
    """The SDK wrapper's `cf`, or its `js_object.cf`; no `cf` (local dev) means None."""
    assert cf_country(SimpleNamespace(cf=SimpleNamespace(country="de"))) == "DE"
    wrapped = SimpleNamespace(js_object=SimpleNamespace(cf=SimpleNamespace(country="JP")))
    assert cf_country(wrapped) == "JP"
    assert cf_country(SimpleNamespace()) is None
    assert cf_country(SimpleNamespace(cf=SimpleNamespace())) is None


def test_vercel_country_header_only_when_trusted() -> None:
    """x-vercel-ip-country counts only when the settings trust it (on Vercel)."""
    headers = Headers({"x-vercel-ip-country": "br"})
    assert country_from(headers, "x-vercel-ip-country") == "BR"
    assert country_from(headers, None) is None
