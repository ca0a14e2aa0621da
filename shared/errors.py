"""One exception tree for the whole core.

    UpstashError                      base of everything raised on purpose
    ├── ConfigError(variable)         a setting is missing or malformed
    ├── TransportError                the HTTP request did not complete
    │   └── TransportTimeout          ... because it ran out of time
    ├── RedisError                    the Redis REST API answered with an error
    │   ├── RedisAuthError            401/403: wrong or missing token
    │   ├── RedisResponseError(status) a body we cannot read (HTML 502, ...)
    │   ├── RedisCommandError(command, code, message)   one command failed
    │   │   └── RedisNoScriptError    code NOSCRIPT (EVALSHA of an unknown script)
    │   └── RedisTransactionAborted   MULTI/EXEC discarded as a whole
    ├── RedisDecodeError(command)     a value is not UTF-8 (use decode_responses=False)
    ├── QStashError(status, message)  the QStash API answered with an error
    │   └── QStashRateLimited         429, with the rate-limit headers
    └── SignatureError(reason)        an Upstash-Signature did not verify

Messages never carry tokens, signing keys or command values: only command
names, status codes and the server's error text.
"""

from __future__ import annotations

from collections.abc import Mapping


class UpstashError(Exception):
    """Base class of every error the core raises on purpose."""


class ConfigError(UpstashError, ValueError):
    """A configuration value is missing or malformed; names the variable, never its value."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class TransportError(UpstashError):
    """The HTTP request failed before a response arrived (connection refused, reset, DNS...)."""


class TransportTimeout(TransportError):
    """The HTTP request did not complete within its timeout."""


class RedisError(UpstashError):
    """The Redis REST API answered with an error."""


class RedisAuthError(RedisError):
    """The REST API refused the token (HTTP 401/403)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class RedisResponseError(RedisError):
    """The REST API answered with something that is not its JSON protocol."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {message}")


class RedisCommandError(RedisError):
    """One command failed; `code` is the first word of the Redis error (ERR, WRONGTYPE...)."""

    def __init__(self, command: str, code: str, message: str) -> None:
        self.command = command
        self.code = code
        self.message = message
        super().__init__(f"{command}: {message}")


class RedisNoScriptError(RedisCommandError):
    """EVALSHA named a script the server does not know (code NOSCRIPT)."""


class RedisTransactionAborted(RedisError):
    """A MULTI/EXEC transaction was discarded as a whole; nothing in it ran."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(f"transaction discarded, no command ran: {message}")


class RedisDecodeError(UpstashError, ValueError):
    """A value returned by `command` is not valid UTF-8."""

    def __init__(self, command: str) -> None:
        self.command = command
        super().__init__(
            f"{command}: reply is not valid UTF-8; use decode_responses=False for binary values"
        )


class QStashError(UpstashError):
    """The QStash API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"QStash HTTP {status}: {message}")


class QStashRateLimited(QStashError):
    """QStash answered 429; `headers` holds the RateLimit-* / Burst-* headers it sent."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)
        super().__init__(status, message)


class SignatureError(UpstashError):
    """An `Upstash-Signature` did not verify; `reason` names the failed check."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid signature: {reason}")
