"""The client's country as the platform states it (Workers `request.cf`, Vercel's header)."""

from __future__ import annotations

from typing import Any


def country_code(value: object) -> str | None:
    """A two-character code, upper-case (ISO 3166-1 alpha-2, or Cloudflare's `T1` for Tor,
    `XX` for unknown); anything else is None."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if len(code) == 2 and code.isascii() and code.isalnum() else None


def cf_country(request: Any) -> str | None:
    """`request.cf.country` of a Workers request (the SDK's wrapper or its `js_object`);
    None when absent (local dev, tests)."""
    cf = getattr(request, "cf", None)
    if cf is None:
        cf = getattr(getattr(request, "js_object", None), "cf", None)
    return country_code(getattr(cf, "country", None)) if cf is not None else None
