"""The one email-address rule (`shared.jobs.email_address`): table tests, and its pattern."""

from __future__ import annotations

import random
import re

import pytest

from shared.jobs.email_address import (
    EMAIL_PATTERN,
    LOCAL_LENGTH_PATTERN,
    MAX_EMAIL_LENGTH,
    check_email,
    email_problem,
)
from shared.jobs.email_message import OrderSummary

GOOD = [
    "a@b.co",
    "ann@example.com",
    "Ann.Lee@Example.COM",
    "o'brien@example.ie",
    "first+tag@mail.example.org",
    "x_y-z@sub-domain.example.co.uk",
    "!#$%&'*+/=?^_`{|}~-@example.com",
    "user@xn--bcher-kva.example",
    "user@123.example.com",
    "a@b.c",
    "l" * 64 + "@example.com",
    "a@" + "d" * 63 + ".com",
    "a@" + ".".join(["d" * 61] * 4),  # 2 + 4 * 61 + 3 = 249 characters
]

BAD = {
    "empty": "",
    "no at": "no-at-sign",
    "two ats": "a@b@example.com",
    "NUL": "ann\x00@example.com",
    "ESC": "ann\x1b[31m@example.com",
    "DEL": "ann\x7f@example.com",
    "C1 control": "ann\x85@example.com",
    "CRLF header injection": "ann@example.com\r\nBcc: eve@example.com",
    "trailing newline": "ann@example.com\n",
    "tab": "ann\t@example.com",
    "space": "ann lee@example.com",
    "leading space": " ann@example.com",
    "trailing space": "ann@example.com ",
    "no-break space": "ann\u00a0@example.com",
    "zero-width space": "ann\u200b@example.com",
    "zero-width joiner": "ann\u200d@example.com",
    "byte order mark": "\ufeffann@example.com",
    "soft hyphen": "ann\u00ad@example.com",
    "right-to-left override": "ann\u202e@example.com",
    "left-to-right isolate": "ann\u2066@example.com",
    "line separator": "ann\u2028@example.com",
    "double quote": '"ann"@example.com',
    "angle brackets": "Ann <ann@example.com>",
    "comma": "ann@example.com,eve@example.com",
    "semicolon": "ann;eve@example.com",
    "backslash": "ann\\@example.com",
    "parenthesis": "ann(comment)@example.com",
    "non-ASCII local part": "jörg@example.com",
    "non-ASCII domain": "ann@bücher.example",
    "homoglyph": "ann@\u0435xample.com",  # Cyrillic e
    "leading dot": ".ann@example.com",
    "trailing dot in local": "ann.@example.com",
    "double dot": "ann..lee@example.com",
    "empty local": "@example.com",
    "local of 65": "l" * 65 + "@example.com",
    "single-label domain": "ann@localhost",
    "empty domain": "ann@",
    "trailing dot in domain": "ann@example.com.",
    "empty label": "ann@example..com",
    "label with leading hyphen": "ann@-example.com",
    "label with trailing hyphen": "ann@example-.com",
    "label of 64": "ann@" + "d" * 64 + ".com",
    "numeric top label": "ann@example.123",
    "IP literal": "ann@[127.0.0.1]",
    "underscore in domain": "ann@ex_ample.com",
    "too long": "a@" + ".".join(["d" * 61] * 4) + "dddddd",
}


def ecma_search(pattern: str, value: str) -> bool:
    """A JSON-schema (ECMA-262) pattern match in Python: search, and `$` only at the very end."""
    return re.search(re.sub(r"\$$", r"\\Z", pattern), value) is not None


def matches_pattern(value: str) -> bool:
    """What the OpenAPI schema promises: both patterns (JSON-schema patterns search) and the
    maximum length."""
    return (
        len(value) <= MAX_EMAIL_LENGTH
        and ecma_search(EMAIL_PATTERN, value)
        and ecma_search(LOCAL_LENGTH_PATTERN, value)
    )


@pytest.mark.parametrize("address", GOOD)
def test_good_addresses_pass_unchanged(address: str) -> None:
    """A sendable address is returned as given, and matches the published pattern."""
    assert check_email(address) == address
    assert matches_pattern(address)


@pytest.mark.parametrize("address", BAD.values(), ids=BAD.keys())
def test_bad_addresses_are_refused_by_name(address: str) -> None:
    """An unsendable address is a ValueError naming the field, without echoing the value."""
    with pytest.raises(ValueError, match=r"^customer_email ") as refused:
        check_email(address, "customer_email")
    if len(address) > 3:
        assert address not in str(refused.value)
    assert not matches_pattern(address)


def test_non_strings_are_refused() -> None:
    """Anything but a str is a problem, not a crash."""
    for value in (None, 1, b"a@b.co", ["a@b.co"]):
        assert email_problem(value) == "must be a string"


def test_the_pattern_is_the_rule() -> None:
    """On 20,000 seeded random strings near the rule, check_email accepts exactly what the
    published patterns and maximum length accept."""
    rng = random.Random(10)
    alphabet = list("aZ09.-_@+'\"<> \t\x00\x1b\x7f\u200b\u202eé[]\\,") + ["@", ".", "a"] * 5
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        if rng.random() < 0.5:
            value = value.replace("@", "") + "@example.com"
        assert (email_problem(value) is None) == matches_pattern(value), repr(value)


@pytest.mark.parametrize("address", ["ann\u202e@example.com", "ann\x00@example.com"])
def test_the_builder_applies_the_same_rule(address: str) -> None:
    """An order summary refuses what the API refuses, with the same message."""
    with pytest.raises(ValueError) as summary_error:
        OrderSummary("ord_1", address, (("SKU", 1, 100),), "EUR", 100, "2024-05-01T12:30:00")
    with pytest.raises(ValueError) as rule_error:
        check_email(address, "customer_email")
    assert str(summary_error.value) == str(rule_error.value)
