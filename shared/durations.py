"""The project's one duration grammar, shared by the rate limiter, QStash and settings.

    "10 s", "10s", "1m", "1d10h30m", "250ms", "1.5s"  (units ms, s, m, h, d)
    10, 2.5, "60"                                     (a number of seconds)

`parse_duration_ms` is the only parser; everything else calls it.
"""

from __future__ import annotations

import math
import re

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")

Duration = str | int | float


def parse_duration_ms(value: Duration) -> int:
    """Parses a duration into whole milliseconds; raises `ValueError` when malformed.

    >>> parse_duration_ms("1d10h30m")
    124200000
    >>> parse_duration_ms(10)
    10000
    """
    if isinstance(value, bool):
        raise ValueError(f"duration must be a string like '10s' or seconds, not {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"duration must be a finite number of seconds >= 0, got {value!r}")
        return round(value * 1000)
    if not isinstance(value, str):
        raise ValueError(f"duration must be a string like '10s' or seconds, not {type(value)!r}")
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):  # "60" from an environment variable
        return round(float(text) * 1000)
    if not text:
        raise ValueError("duration is empty; expected e.g. '10s', '1m', '1d10h30m'")
    total = 0.0
    pos = 0
    seen_units: list[str] = []
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(
                f"malformed duration {value!r}; expected e.g. '10s', '10 s', '1m', '1d10h30m' "
                "(units ms, s, m, h, d) or a number of seconds"
            )
        number, unit = match.group(1), match.group(2)
        if unit in seen_units:
            raise ValueError(f"malformed duration {value!r}: unit {unit!r} appears twice")
        seen_units.append(unit)
        total += float(number) * _UNIT_MS[unit]
        pos = match.end()
    return round(total)


def format_duration(ms: int) -> str:
    """Formats milliseconds in the QStash header grammar ("1d10h30m", "5s", "250ms")."""
    if ms < 0:
        raise ValueError("duration must be >= 0")
    if ms % 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
