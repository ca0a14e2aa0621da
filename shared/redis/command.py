"""A command as data: its arguments plus the function that reads its reply."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.redis.protocol import Arg, command_name, decode_bytes, decode_text, encode_command

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Decoder:
    """How string replies become values: `str` (strict UTF-8) or `bytes`."""

    decode_responses: bool = True

    def value(self, raw: Any, command: str) -> Any:
        return decode_text(raw, command) if self.decode_responses else decode_bytes(raw)


Parser = Callable[[Any, Decoder, str], T]


@dataclass(frozen=True, slots=True)
class Command(Generic[T]):
    """One Redis command and the parser of its (base64-encoded) reply.

    `wire` is the command's JSON array, encoded once when the command is built: a
    bad argument fails there, for its caller alone, never the batch it would join.
    """

    args: tuple[Arg, ...]
    parse: Parser[T]
    read_only: bool
    wire: bytes

    @property
    def name(self) -> str:
        return command_name(self.args)

    def read(self, raw: Any, decoder: Decoder) -> T:
        return self.parse(raw, decoder, self.name)


def build(args: Sequence[Arg], parse: Parser[T], *, read_only: bool = False) -> Command[T]:
    """The command, encoded now; raises `ValueError` for an argument the wire cannot carry."""
    frozen = tuple(args)
    return Command(frozen, parse, read_only, encode_command(frozen))
