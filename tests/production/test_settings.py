"""Settings for production: preview URL derivation, CORS, API keys, retention, error reporter."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings
from shared.web.reporting import ErrorReport, log_error_report
from tests.conftest import MINIMAL_ENV

BASE = MINIMAL_ENV


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**BASE, **overrides})


def recording_reporter(report: ErrorReport) -> None:
    """A reporter importable by `ERROR_REPORTER` (used by a test below)."""


def test_app_url_wins_over_vercel_url() -> None:
    """APP_URL, when set, is the public URL even on Vercel."""
    s = settings(VERCEL_URL="my-app-git-feature-team.vercel.app")
    assert s.app_url == "https://shop.example.com"
    assert s.job_url == "https://shop.example.com/api/jobs/send-confirmation"


def test_preview_url_is_derived_from_vercel_url() -> None:
    """Without APP_URL, the deployment's own https://$VERCEL_URL is the job and smoke URL."""
    s = settings(APP_URL="", VERCEL_URL="my-app-abc123-team.vercel.app")
    assert s.app_url == "https://my-app-abc123-team.vercel.app"
    assert s.job_url == "https://my-app-abc123-team.vercel.app/api/jobs/send-confirmation"
    assert s.smoke_url == "https://my-app-abc123-team.vercel.app/api/jobs/smoke"


def test_no_app_url_anywhere_is_a_config_error() -> None:
    """Neither APP_URL nor VERCEL_URL: a ConfigError naming APP_URL."""
    with pytest.raises(ConfigError) as info:
        settings(APP_URL="")
    assert info.value.variable == "APP_URL"


def test_bypass_secret_becomes_a_forwarded_header_and_stays_hidden() -> None:
    """VERCEL_AUTOMATION_BYPASS_SECRET is forwarded to deliveries and never in the repr."""
    s = settings(VERCEL_AUTOMATION_BYPASS_SECRET="bypass-secret-value-123")
    assert s.forward_headers == {"x-vercel-protection-bypass": "bypass-secret-value-123"}
    assert "bypass-secret-value-123" not in repr(s)
    assert settings().forward_headers == {}


def test_cors_settings() -> None:
    """Origins are normalized; none by default; credentials off; '*' never with credentials."""
    assert settings().cors_allow_origins == ()
    assert settings().cors_allow_credentials is False
    s = settings(CORS_ALLOW_ORIGINS=" https://Shop.example.com/ ,http://localhost:3000")
    assert s.cors_allow_origins == ("https://shop.example.com", "http://localhost:3000")
    assert settings(CORS_ALLOW_ORIGINS="*").cors_allow_origins == ("*",)
    with pytest.raises(ConfigError, match="CORS_ALLOW_CREDENTIALS"):
        settings(CORS_ALLOW_ORIGINS="*", CORS_ALLOW_CREDENTIALS="true")
    with pytest.raises(ConfigError, match="CORS_ALLOW_ORIGINS"):
        settings(CORS_ALLOW_ORIGINS="https://shop.example.com/path")
    with pytest.raises(ConfigError, match="CORS_ALLOW_ORIGINS"):
        settings(CORS_ALLOW_ORIGINS="*,https://shop.example.com")


def test_api_keys_parse_and_are_hidden() -> None:
    """API_KEYS is a comma-separated list (rotation); short keys are refused; never in repr."""
    s = settings(API_KEYS="key-one-0123456789abcdef, key-two-0123456789abcdef")
    assert s.api_keys == ("key-one-0123456789abcdef", "key-two-0123456789abcdef")
    assert "key-one" not in repr(s)
    with pytest.raises(ConfigError, match="API_KEYS"):
        settings(API_KEYS="short")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, 365 * 86400), ("30d", 30 * 86400), ("12h", 43200), ("forever", 0), ("0", 0)],
)
def test_order_retention(value: str | None, seconds: int) -> None:
    """ORDER_RETENTION: duration grammar, default 365d, 'forever' or '0' for no expiry."""
    s = settings() if value is None else settings(ORDER_RETENTION=value)
    assert s.order_retention_s == seconds


def test_error_reporter_from_the_environment() -> None:
    """ERROR_REPORTER='module:function' names the reporter; the default logs."""
    assert settings().error_reporter is log_error_report
    s = settings(ERROR_REPORTER="tests.production.test_settings:recording_reporter")
    assert s.error_reporter.__name__ == "recording_reporter"
    with pytest.raises(ConfigError, match="ERROR_REPORTER"):
        settings(ERROR_REPORTER="no.such.module:report")
    with pytest.raises(ConfigError, match="ERROR_REPORTER"):
        settings(ERROR_REPORTER="not-a-spec")
