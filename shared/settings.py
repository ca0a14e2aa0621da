"""Settings: read once from a mapping (Workers `env`, `os.environ`), validated, frozen.

Standard library only, so the Worker adapter loads without pydantic. Every
error is a `ConfigError` naming the variable (never its value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.config import MIN_SECRET_CHARS, check_token, check_url
from shared.durations import parse_duration_ms
from shared.errors import ConfigError
from shared.qstash.flow_control import FlowControl
from shared.qstash.flow_control import parse_rate as parse_flow_rate
from shared.redis.config import RestEndpoint, endpoint_from_env
from shared.routes import CONFIRMATION_JOB, FLUSH_OUTBOX, SMOKE_JOB, public_url
from shared.web.reporting import ErrorReporter, load_reporter, log_error_report

DEFAULT_QSTASH_URL = "https://qstash.upstash.io"
DEFAULT_EMAIL_API_URL = "https://api.resend.com"
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(.+?)\s*$")
_HEADER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
VERCEL_CLIENT_IP_HEADER = "x-vercel-forwarded-for"
VERCEL_COUNTRY_HEADER = "x-vercel-ip-country"
_COUNTRY = re.compile(r"^[A-Z][A-Z0-9]$")  # ISO alpha-2, plus Cloudflare's T1 (Tor)


@dataclass(frozen=True, slots=True)
class RateSpec:
    """`RATE_LIMIT="10/10s"`: `tokens` per `window_ms`."""

    tokens: int
    window_ms: int

    @property
    def window(self) -> str:
        return f"{self.window_ms}ms"


def parse_rate(variable: str, text: str) -> RateSpec:
    match = _RATE.match(text)
    if match is None:
        raise ConfigError(variable, "must look like '10/10s' (tokens / duration)")
    try:
        window_ms = parse_duration_ms(match.group(2))
    except ValueError as exc:
        raise ConfigError(variable, f"bad window: {exc}") from None
    tokens = int(match.group(1))
    if tokens < 1 or window_ms < 1:
        raise ConfigError(variable, "tokens and window must be positive")
    return RateSpec(tokens, window_ms)


def _secret(env: Mapping[str, str], name: str, *, required: bool = True) -> str | None:
    value = env.get(name)
    if value is None or not str(value).strip():
        if required:
            raise ConfigError(name, "is not set")
        return None
    return check_token(name, str(value))


def _duration_s(env: Mapping[str, str], name: str, default: str) -> int:
    try:
        ms = parse_duration_ms(env.get(name) or default)
    except ValueError as exc:
        raise ConfigError(name, str(exc)) from None
    if ms < 1000:
        raise ConfigError(name, "must be at least 1s")
    return ms // 1000


def _retention_s(env: Mapping[str, str], name: str, default: str) -> int:
    """A retention duration in seconds; "0", "forever" or "none" mean no expiry (0)."""
    raw = str(env.get(name) or default).strip()
    if raw.lower() in ("0", "forever", "none"):
        return 0
    return _duration_s(env, name, default)


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = str(env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, "must be true or false")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Exact origins (`scheme://host[:port]`, no path) or `*`; lower-cased, no trailing slash."""
    origins: list[str] = []
    for item in str(env.get(name) or "").split(","):
        origin = item.strip().rstrip("/").lower()
        if not origin:
            continue
        if origin != "*":
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ConfigError(name, "entries must be origins like https://shop.example.com")
        origins.append(origin)
    if "*" in origins and len(origins) > 1:
        raise ConfigError(name, "'*' cannot be combined with explicit origins")
    return tuple(dict.fromkeys(origins))


def _api_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    keys = [k.strip() for k in str(env.get(name) or "").split(",") if k.strip()]
    for key in keys:
        check_token(name, key)
        if len(key) < 16:
            raise ConfigError(name, "every key must be at least 16 characters")
    return tuple(dict.fromkeys(keys))


def _order_token_secret(env: Mapping[str, str], name: str, *, required: bool) -> str | None:
    value = _secret(env, name, required=required)
    if value is not None and len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            name, f"must be at least {MIN_SECRET_CHARS} characters (openssl rand -hex 32)"
        )
    return value


def client_ip_header_from(env: Mapping[str, str]) -> str | None:
    """The header the ASGI adapter takes the client address from (its right-most entry):
    `TRUSTED_PROXY_HEADER` when set; else on Vercel (`VERCEL=1`) `x-vercel-forwarded-for`;
    else None (the socket peer)."""
    name = str(env.get("TRUSTED_PROXY_HEADER") or "").strip().lower()
    if name:
        if not _HEADER_NAME.match(name):
            raise ConfigError("TRUSTED_PROXY_HEADER", "must be a header name such as x-real-ip")
        return name
    if str(env.get("VERCEL") or "").strip() == "1":
        return VERCEL_CLIENT_IP_HEADER
    return None


# -- rate-limit protection and order concurrency (README: "Rate limiting") ------------------


def country_header_from(env: Mapping[str, str]) -> str | None:
    """`x-vercel-ip-country` on Vercel (`VERCEL=1`), where Vercel's edge sets it; else None
    (Workers read `request.cf.country`; elsewhere a client could send any value)."""
    return VERCEL_COUNTRY_HEADER if str(env.get("VERCEL") or "").strip() == "1" else None


def _countries(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    codes = tuple(c.strip().upper() for c in str(env.get(name) or "").split(",") if c.strip())
    if any(not _COUNTRY.match(code) for code in codes):
        raise ConfigError(name, "must be ISO 3166-1 alpha-2 codes separated by commas (RU,KP)")
    return codes


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    value = str(env.get(name) or "").strip()
    return check_url(name, value) if value else None


def app_url_from(env: Mapping[str, str]) -> str:
    """`APP_URL` when set; else, on Vercel, `https://$VERCEL_URL` (this deployment's own
    URL, so each preview gets its own job URL and signatures are checked against it)."""
    app_url = str(env.get("APP_URL") or "").strip()
    if app_url:
        return check_url("APP_URL", app_url)
    vercel_url = str(env.get("VERCEL_URL") or "").strip().rstrip("/")
    if vercel_url:
        url = vercel_url if "://" in vercel_url else f"https://{vercel_url}"
        return check_url("VERCEL_URL", url)
    raise ConfigError("APP_URL", "is not set (the public base URL QStash calls back)")


EMAIL_FLOW_CONTROL_KEY = "email-send"
_OFF = ("off", "none", "0")


def email_flow_control_from(env: Mapping[str, str]) -> FlowControl | None:
    """`EMAIL_SEND_RATE` ("2/1s", "off") and `EMAIL_SEND_PARALLELISM` (2, "off"): the
    QStash flow control every confirmation job is published with; None when both are off."""
    rate_text = str(env.get("EMAIL_SEND_RATE") or "2/1s").strip()
    rate = period = None
    if rate_text.lower() not in _OFF:
        try:
            rate, period = parse_flow_rate(rate_text)
        except ValueError as exc:
            raise ConfigError("EMAIL_SEND_RATE", f"must look like '2/1s' or 'off': {exc}") from None
    parallelism_text = str(env.get("EMAIL_SEND_PARALLELISM") or "2").strip()
    parallelism = None
    if parallelism_text.lower() not in _OFF:
        parallelism = _int(env, "EMAIL_SEND_PARALLELISM", 2, 1, 1000)
    if rate is None and parallelism is None:
        return None
    return FlowControl(EMAIL_FLOW_CONTROL_KEY, rate=rate, period=period, parallelism=parallelism)


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or not str(raw).strip():
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(name, "must be an integer") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the app reads from its environment; secrets are hidden from repr."""

    redis: RestEndpoint
    app_url: str
    qstash_url: str
    qstash_token: str = field(repr=False)
    qstash_current_signing_key: str = field(repr=False)
    qstash_next_signing_key: str = field(repr=False)
    email_api_url: str
    email_api_key: str = field(repr=False)
    email_from: str
    rate_limit: RateSpec
    email_rate_limit: RateSpec
    cache_ttl_s: int
    max_body_bytes: int
    cron_secret: str | None = field(default=None, repr=False)
    cors_allow_origins: tuple[str, ...] = ()
    cors_allow_credentials: bool = False
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    vercel_bypass_secret: str | None = field(default=None, repr=False)
    order_retention_s: int = 365 * 24 * 3600
    # Order access tokens and client addresses (README: "Access tokens", "Client address").
    order_token_secret: str = field(default="", repr=False)
    order_token_secret_next: str | None = field(default=None, repr=False)
    client_ip_header: str | None = None
    # Rate-limit protection and order concurrency (README: "Rate limiting").
    deny_countries: tuple[str, ...] = ()
    ip_deny_list_url: str | None = None
    rate_limit_protection: bool = False
    country_header: str | None = None
    order_concurrency: int = 4
    error_reporter: ErrorReporter = field(default=log_error_report, repr=False, compare=False)
    # QStash flow control of the confirmation job (README: "QStash in depth").
    email_flow_control: FlowControl | None = None

    @property
    def flush_url(self) -> str:
        """The public URL of the outbox flush (Vercel Cron, or a QStash schedule)."""
        return public_url(self.app_url, FLUSH_OUTBOX)

    @property
    def smoke_url(self) -> str:
        """The public URL of the smoke-check job (`make smoke`'s QStash round trip)."""
        return public_url(self.app_url, SMOKE_JOB)

    @property
    def forward_headers(self) -> dict[str, str]:
        """Headers QStash forwards with every delivery (`Upstash-Forward-*`)."""
        secret = self.vercel_bypass_secret
        return {"x-vercel-protection-bypass": secret} if secret else {}

    @property
    def job_url(self) -> str:
        """The public URL QStash calls for the confirmation job (and signs as `sub`)."""
        return public_url(self.app_url, CONFIRMATION_JOB)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        app_url = app_url_from(env)
        cors_origins = _origins(env, "CORS_ALLOW_ORIGINS")
        cors_credentials = _flag(env, "CORS_ALLOW_CREDENTIALS")
        if cors_credentials and "*" in cors_origins:
            raise ConfigError("CORS_ALLOW_CREDENTIALS", "cannot be true with CORS_ALLOW_ORIGINS=*")
        reporter_spec = str(env.get("ERROR_REPORTER") or "").strip()
        email_from = str(env.get("EMAIL_FROM") or "").strip()
        if not email_from or "@" not in email_from:
            raise ConfigError("EMAIL_FROM", "must be a sender address such as 'Shop <a@b.c>'")
        if not email_from.isprintable():  # the email builder refuses it: every job would 489
            raise ConfigError(
                "EMAIL_FROM", "contains a control or invisible character (a pasted no-break space?)"
            )
        return cls(
            redis=endpoint_from_env(env),
            app_url=app_url,
            qstash_url=check_url("QSTASH_URL", str(env.get("QSTASH_URL") or DEFAULT_QSTASH_URL)),
            qstash_token=_secret(env, "QSTASH_TOKEN") or "",
            qstash_current_signing_key=_secret(env, "QSTASH_CURRENT_SIGNING_KEY") or "",
            qstash_next_signing_key=_secret(env, "QSTASH_NEXT_SIGNING_KEY") or "",
            email_api_url=check_url(
                "EMAIL_API_URL", str(env.get("EMAIL_API_URL") or DEFAULT_EMAIL_API_URL)
            ),
            email_api_key=_secret(env, "RESEND_API_KEY") or "",
            email_from=email_from,
            rate_limit=parse_rate("RATE_LIMIT", str(env.get("RATE_LIMIT") or "10/10s")),
            email_rate_limit=parse_rate(
                "EMAIL_RATE_LIMIT", str(env.get("EMAIL_RATE_LIMIT") or "3/1h")
            ),
            cache_ttl_s=_duration_s(env, "CACHE_TTL", "60s"),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 64 * 1024, 1024, 4 * 1024 * 1024),
            cron_secret=_secret(env, "CRON_SECRET", required=False),
            cors_allow_origins=cors_origins,
            cors_allow_credentials=cors_credentials,
            api_keys=_api_keys(env, "API_KEYS"),
            vercel_bypass_secret=_secret(env, "VERCEL_AUTOMATION_BYPASS_SECRET", required=False),
            order_retention_s=_retention_s(env, "ORDER_RETENTION", "365d"),
            order_token_secret=_order_token_secret(env, "ORDER_TOKEN_SECRET", required=True) or "",
            order_token_secret_next=_order_token_secret(
                env, "ORDER_TOKEN_SECRET_NEXT", required=False
            ),
            client_ip_header=client_ip_header_from(env),
            email_flow_control=email_flow_control_from(env),
            deny_countries=_countries(env, "DENY_COUNTRIES"),
            ip_deny_list_url=_optional_url(env, "IP_DENY_LIST_URL"),
            rate_limit_protection=_flag(env, "RATE_LIMIT_PROTECTION"),
            country_header=country_header_from(env),
            order_concurrency=_int(env, "ORDER_CONCURRENCY", 4, 0, 10_000),
            error_reporter=(
                load_reporter("ERROR_REPORTER", reporter_spec)
                if reporter_spec
                else log_error_report
            ),
        )
