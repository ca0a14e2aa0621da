"""The one email-address rule: what the API accepts is what the email builder can send.

    customer_email = check_email(value)   # the value unchanged, or ValueError with a reason

The API model (`shared.orders.models`) validates `customer_email` with this function
and publishes `EMAIL_PATTERN`, `LOCAL_LENGTH_PATTERN` and `MAX_EMAIL_LENGTH` in its
OpenAPI schema (together they are the whole rule); the
builder checks the recipient with it again, so an order stored before the rule
existed fails as a permanent (489) job instead of a retried 500.

The rule is deliberately narrower than RFC 5321/5322 and exactly expressible as a
JSON-schema pattern: an ASCII dot-atom local part of at most 64 characters (no
quoted strings, no comments, no IP-literal domains), then a domain of LDH labels
(at most 63 characters each, at least two labels, the last one starting with a
letter). Internationalized domains are accepted in their `xn--` form; addresses
with non-ASCII local parts (SMTPUTF8) are refused, since not every provider
relays them. Nothing is trimmed or case-folded: a value with surrounding spaces
is an error, not silently changed. Messages never echo the address.
Standard library only (imports in Pyodide).
"""

from __future__ import annotations

import re
import unicodedata

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit (256) minus the angle brackets
MAX_LOCAL_LENGTH = 64
MAX_LABEL_LENGTH = 63

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"

EMAIL_PATTERN = rf"^{_LOCAL}@(?:{_LABEL}\.)+{_TOP_LABEL}$"
"""The rule's shape as one regex (ECMA-262 and Python `re` alike), lengths aside."""
LOCAL_LENGTH_PATTERN = rf"^[^@]{{1,{MAX_LOCAL_LENGTH}}}@"
"""The local part's length as a second regex: no lookahead, which fuzzers cannot generate."""

_EMAIL = re.compile(EMAIL_PATTERN, re.ASCII)
_LABEL_RE = re.compile(_LABEL, re.ASCII)
_TOP_LABEL_RE = re.compile(_TOP_LABEL, re.ASCII)
_LOCAL_RE = re.compile(_LOCAL, re.ASCII)


def _bad_character(value: str) -> str | None:
    """Why `value` holds a character no address may hold, or None."""
    for ch in value:
        category = unicodedata.category(ch)
        if category == "Cc":  # C0 and C1 controls, NUL, ESC and DEL included
            return "must not contain control characters"
        if category in ("Cf", "Zl", "Zp"):  # zero-width, bidi overrides, soft hyphen...
            return "must not contain invisible or formatting characters"
        if ch.isspace():
            return "must not contain whitespace"
    for ch in value:
        if not ch.isascii():
            return "must be ASCII (write an internationalized domain in its xn-- form)"
    return None


def email_problem(value: object) -> str | None:
    """Why `value` is not an address the app can send to (a phrase), or None if it is."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > MAX_EMAIL_LENGTH:
        return f"must be at most {MAX_EMAIL_LENGTH} characters"
    bad = _bad_character(value)
    if bad is not None:
        return bad
    if value.count("@") != 1:
        return "must contain exactly one @"
    local, domain = value.split("@")
    if not local or len(local) > MAX_LOCAL_LENGTH:
        return f"must have 1-{MAX_LOCAL_LENGTH} characters before the @"
    if not _LOCAL_RE.fullmatch(local):
        return "must have letters, digits or !#$%&'*+/=?^_`{|}~- before the @ (single dots between)"
    labels = domain.split(".")
    if len(labels) < 2:
        return "must have a domain with a dot after the @"
    if not all(_LABEL_RE.fullmatch(label) for label in labels[:-1]) or not (
        _TOP_LABEL_RE.fullmatch(labels[-1])
    ):
        return (
            f"must have a domain of letters, digits and inner hyphens, labels of 1-"
            f"{MAX_LABEL_LENGTH} characters, the last starting with a letter"
        )
    if not _EMAIL.fullmatch(value):  # the checks above are the patterns, spelled out
        return "is not a valid email address"
    return None


def check_email(value: str, field_name: str = "email") -> str:
    """`value` unchanged if it is a sendable address, else `ValueError` naming `field_name`."""
    problem = email_problem(value)
    if problem is not None:
        raise ValueError(f"{field_name} {problem}")
    return value
