"""QStash flow control as pure data: a key and its limits -> the two publish headers.

    FlowControl("email", rate=2, period="1s", parallelism=2)
    -> Upstash-Flow-Control-Key: email
       Upstash-Flow-Control-Value: parallelism=2, rate=2, period=1s

Messages sharing a key are throttled together, whatever their destination: at most
`parallelism` deliveries in flight and at most `rate` started per `period`. Excess
deliveries wait in QStash; none is dropped. (Flow control supersedes QStash queues,
so this package has no queue option.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from shared.durations import Duration, format_duration, parse_duration_ms

KEY_HEADER = "Upstash-Flow-Control-Key"
VALUE_HEADER = "Upstash-Flow-Control-Value"
_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,256}")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\S.*?)\s*")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"flow control {name} must be an integer >= 1, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class FlowControl:
    """A flow-control key and its limits; at least one of `rate` or `parallelism` is set.

    `period` is the window of `rate` (the project's duration grammar, whole seconds,
    at least 1s; QStash's default is 1s when only `rate` is given).
    """

    key: str
    rate: int | None = None
    period: Duration | None = None
    parallelism: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not _KEY.fullmatch(self.key):
            raise ValueError(
                "flow control key must be 1-256 characters of letters, digits, '.', '_', ':', '-'"
            )
        if self.rate is None and self.parallelism is None:
            raise ValueError("flow control needs a rate, a parallelism, or both")
        if self.rate is not None:
            _positive_int("rate", self.rate)
        if self.parallelism is not None:
            _positive_int("parallelism", self.parallelism)
        if self.period is not None:
            if self.rate is None:
                raise ValueError("flow control period needs a rate")
            period_seconds(self.period)


def period_seconds(period: Duration) -> int:
    """Whole seconds (rounded up) of a flow-control period; `ValueError` below 1s."""
    try:
        ms = parse_duration_ms(period)
    except ValueError as exc:
        raise ValueError(f"flow control period: {exc}") from None
    if ms < 1000:
        raise ValueError(f"flow control period must be at least 1s, got {period!r}")
    return math.ceil(ms / 1000)


def flow_control_value(control: FlowControl) -> str:
    """The `Upstash-Flow-Control-Value` text: `parallelism=.., rate=.., period=..`."""
    parts = []
    if control.parallelism is not None:
        parts.append(f"parallelism={control.parallelism}")
    if control.rate is not None:
        parts.append(f"rate={control.rate}")
    if control.period is not None:
        parts.append(f"period={format_duration(period_seconds(control.period) * 1000)}")
    return ", ".join(parts)


def flow_control_headers(control: FlowControl | None) -> dict[str, str]:
    """The two publish headers for `control` (none when `control` is None)."""
    if control is None:
        return {}
    if not isinstance(control, FlowControl):
        raise ValueError(f"flow_control must be a FlowControl, got {type(control).__name__}")
    return {KEY_HEADER: control.key, VALUE_HEADER: flow_control_value(control)}


def parse_rate(text: str) -> tuple[int, int]:
    """A setting like "2/1s" -> (2 requests, 1 second period); `ValueError` when malformed."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(f"expected '<count>/<period>' like '2/1s', got {text!r}")
    count = _positive_int("rate", int(match.group(1)))
    return count, period_seconds(match.group(2))


def parse_flow_control_value(text: str) -> dict[str, int]:
    """`Upstash-Flow-Control-Value` -> {"parallelism"?, "rate"?, "period"? (seconds)}.

    The inverse of `flow_control_value`; `ValueError` names the bad part.
    """
    result: dict[str, int] = {}
    for part in text.split(","):
        name, sep, raw = part.strip().partition("=")
        name = name.strip().lower()
        if not sep or name not in ("parallelism", "rate", "period") or name in result:
            raise ValueError(f"invalid flow control value part {part.strip()!r}")
        if name == "period":
            result[name] = period_seconds(raw.strip())
        else:
            if not raw.strip().isdigit():
                raise ValueError(f"flow control {name} must be an integer, got {raw.strip()!r}")
            result[name] = _positive_int(name, int(raw.strip()))
    if "rate" not in result and "parallelism" not in result:
        raise ValueError("flow control value needs rate or parallelism")
    return result
