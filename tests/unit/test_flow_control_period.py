"""The flow-control period goes out as ONE number and ONE unit (`90s`, `90m`, `1d`): the SDKs'
duration type is `${number}${"s"|"m"|"h"|"d"}`, so a compound like `1m30s` may be refused."""

from __future__ import annotations

import pytest

from shared.qstash import FlowControl
from shared.qstash.flow_control import flow_control_value, parse_flow_control_value


@pytest.mark.parametrize(
    ("period", "text"),
    [
        (1, "1s"),
        (59, "59s"),
        (60, "1m"),
        (90, "90s"),
        ("1m30s", "90s"),
        (3600, "1h"),
        ("1h30m", "90m"),
        (86_400, "1d"),
        ("1d12h", "36h"),
        (86_401, "86401s"),
    ],
)
def test_period_is_one_number_and_one_unit(period: str | int, text: str) -> None:
    """The largest unit that divides the period exactly; seconds otherwise."""
    value = flow_control_value(FlowControl("k", rate=1, period=period))
    assert value == f"rate=1, period={text}"
    assert (
        parse_flow_control_value(value)["period"]
        == parse_flow_control_value(
            f"rate=1, period={period}s" if isinstance(period, int) else f"rate=1, period={period}"
        )["period"]
    )
