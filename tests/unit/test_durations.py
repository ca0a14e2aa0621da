"""The project's one duration grammar."""

from __future__ import annotations

import pytest

from shared.durations import format_duration, parse_duration_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("10 s", 10_000),
        ("10s", 10_000),
        ("1m", 60_000),
        ("1d10h30m", 124_200_000),
        ("250ms", 250),
        ("1.5s", 1500),
        ("2h", 7_200_000),
        (" 5 s ", 5000),
        ("60", 60_000),
        (10, 10_000),
        (2.5, 2500),
        (0, 0),
        ("1 d 2 h", 93_600_000),
    ],
)
def test_parse(text: str | int | float, ms: int) -> None:
    """Every documented form parses to milliseconds."""
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    "bad",
    ["", " ", "x", "10 x", "5s5s", "-1s", "s", "1.s", -1, True, float("nan"), None, "10 secs"],
)
def test_parse_rejects(bad: object) -> None:
    """Malformed durations are a ValueError with a message, never a silent zero."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration_ms(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ms", "text"), [(5000, "5s"), (124_200_000, "1d10h30m"), (1500, "1500ms"), (0, "0s")]
)
def test_format(ms: int, text: str) -> None:
    """QStash headers get the compact form, which parses back to the same value."""
    assert format_duration(ms) == text
    assert parse_duration_ms(text) == ms
