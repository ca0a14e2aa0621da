"""Validation of configuration values shared by every client (URLs, tokens, deadlines).

Errors are `ConfigError`s naming the variable, never echoing the value.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.errors import ConfigError


def check_url(variable: str, value: str) -> str:
    """An http(s) base URL without a trailing slash, or a ConfigError naming `variable`."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(variable, "must be an http(s) URL such as https://<db>.upstash.io")
    return url


def check_token(variable: str, value: str) -> str:
    """A non-empty token without whitespace or control characters (a common paste error)."""
    token = value.strip()
    if not token:
        raise ConfigError(variable, "is empty")
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(variable, "contains whitespace or control characters (a paste error?)")
    return token


# The shortest server secret accepted for HMAC-derived credentials (order access tokens).
MIN_SECRET_CHARS = 32


def check_deadline(deadline: float) -> float:
    """`deadline` when it is a positive number of seconds, else `ValueError`."""
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not deadline > 0:
        raise ValueError(f"deadline must be > 0 seconds, got {deadline!r}")
    return deadline
