"""EMAIL_SEND_RATE / EMAIL_SEND_PARALLELISM: the confirmation job's QStash flow control."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.qstash import FlowControl
from shared.qstash.flow_control import flow_control_headers
from shared.settings import EMAIL_FLOW_CONTROL_KEY, email_flow_control_from


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, FlowControl(EMAIL_FLOW_CONTROL_KEY, rate=2, period=1, parallelism=2)),
        (
            {"EMAIL_SEND_RATE": "10/1m", "EMAIL_SEND_PARALLELISM": "1"},
            FlowControl(EMAIL_FLOW_CONTROL_KEY, rate=10, period=60, parallelism=1),
        ),
        (
            {"EMAIL_SEND_RATE": "off"},
            FlowControl(EMAIL_FLOW_CONTROL_KEY, parallelism=2),
        ),
        (
            {"EMAIL_SEND_PARALLELISM": "none"},
            FlowControl(EMAIL_FLOW_CONTROL_KEY, rate=2, period=1),
        ),
        ({"EMAIL_SEND_RATE": "off", "EMAIL_SEND_PARALLELISM": "off"}, None),
    ],
)
def test_email_flow_control_settings(env: dict[str, str], expected: FlowControl | None) -> None:
    """Defaults 2/1s and 2; each limit can be set or turned off; both off means no key."""
    assert email_flow_control_from(env) == expected


def test_default_headers_match_the_sdk_format() -> None:
    """The default settings publish `parallelism=2, rate=2, period=1s` under `email-send`."""
    assert flow_control_headers(email_flow_control_from({})) == {
        "Upstash-Flow-Control-Key": "email-send",
        "Upstash-Flow-Control-Value": "parallelism=2, rate=2, period=1s",
    }


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"EMAIL_SEND_RATE": "fast"}, "EMAIL_SEND_RATE"),
        ({"EMAIL_SEND_RATE": "2/100ms"}, "EMAIL_SEND_RATE"),
        ({"EMAIL_SEND_RATE": "0/1s"}, "EMAIL_SEND_RATE"),
        ({"EMAIL_SEND_PARALLELISM": "many"}, "EMAIL_SEND_PARALLELISM"),
        ({"EMAIL_SEND_PARALLELISM": "-1"}, "EMAIL_SEND_PARALLELISM"),
    ],
)
def test_bad_email_flow_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    """A malformed value is a ConfigError naming its variable."""
    with pytest.raises(ConfigError) as info:
        email_flow_control_from(env)
    assert variable in str(info.value)
