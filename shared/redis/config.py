"""Reading the REST endpoint and token from a mapping (Workers `env`, `os.environ`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.config import check_token, check_url
from shared.errors import ConfigError

URL_VARS = ("UPSTASH_REDIS_REST_URL", "KV_REST_API_URL")
TOKEN_VARS = ("UPSTASH_REDIS_REST_TOKEN", "KV_REST_API_TOKEN")


@dataclass(frozen=True, slots=True)
class RestEndpoint:
    url: str
    token: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"RestEndpoint(url={self.url!r}, token=<redacted>)"


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value is not None and str(value).strip():
            return name, str(value)
    return None


def endpoint_from_env(env: Mapping[str, str]) -> RestEndpoint:
    """`UPSTASH_REDIS_REST_URL`/`_TOKEN`, else Vercel's `KV_REST_API_URL`/`_TOKEN`."""
    url = _first(env, URL_VARS)
    if url is None:
        raise ConfigError(URL_VARS[0], f"is not set (nor {URL_VARS[1]})")
    token = _first(env, TOKEN_VARS)
    if token is None:
        raise ConfigError(TOKEN_VARS[0], f"is not set (nor {TOKEN_VARS[1]})")
    return RestEndpoint(check_url(*url), check_token(*token))
