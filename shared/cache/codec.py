"""How cached values become text and back: JSON by default, pydantic duck-typed.

    as_codec(None)                  # JSON (dicts, lists, str, numbers, bools)
    as_codec(Order)                 # a pydantic model class: model_validate_json / model_dump_json
    as_codec(TypeAdapter(list[X]))  # a TypeAdapter: validate_json / dump_json (bytes)
    as_codec(my_codec)              # anything with encode(value) -> str|bytes, decode(text)

Nothing here imports pydantic: the model class and the adapter are recognised
by their methods, so `shared/` stays standard library (Pyodide has no
pydantic_core). Payloads travel as UTF-8 text because the REST protocol's
JSON body cannot carry arbitrary bytes.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Codec(Protocol[T]):
    """Turns a value into UTF-8 text (or bytes holding UTF-8) and back.

    `decode` raises (any exception) when the text no longer fits: the cache
    treats that as a miss and replaces the entry.
    """

    def encode(self, value: T) -> str | bytes: ...

    def decode(self, text: str) -> T: ...


class ModelClass(Protocol[T_co]):
    """A pydantic `BaseModel` subclass, seen through the one classmethod we call."""

    def model_validate_json(self, json_data: str, /) -> T_co: ...


class JsonAdapter(Protocol[T]):
    """A pydantic `TypeAdapter`, seen through the two methods we call."""

    def validate_json(self, data: str, /) -> T: ...

    def dump_json(self, instance: T, /) -> bytes: ...


CodecLike = Codec[T] | ModelClass[T] | JsonAdapter[T]


class JsonCodec:
    """Compact JSON; what the seed helper stored, minus the truthiness bug."""

    def encode(self, value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def decode(self, text: str) -> Any:
        return json.loads(text)

    def __repr__(self) -> str:
        return "JsonCodec()"


class ModelCodec:
    """A pydantic model class (duck-typed): `model_dump_json()` / `model_validate_json()`."""

    def __init__(self, model: ModelClass[Any]) -> None:
        self.model = model

    def encode(self, value: Any) -> str:
        dump = getattr(value, "model_dump_json", None)
        if dump is None:
            raise TypeError(f"{type(value).__name__} has no model_dump_json()")
        return cast(str, dump())

    def decode(self, text: str) -> Any:
        return self.model.model_validate_json(text)

    def __repr__(self) -> str:
        return f"ModelCodec({getattr(self.model, '__name__', self.model)!r})"


class AdapterCodec:
    """A pydantic `TypeAdapter` (duck-typed): `dump_json()` (bytes) / `validate_json()`."""

    def __init__(self, adapter: JsonAdapter[Any]) -> None:
        self.adapter = adapter

    def encode(self, value: Any) -> bytes:
        return self.adapter.dump_json(value)

    def decode(self, text: str) -> Any:
        return self.adapter.validate_json(text)

    def __repr__(self) -> str:
        return f"AdapterCodec({self.adapter!r})"


JSON = JsonCodec()


def as_codec(spec: CodecLike[Any] | None) -> Codec[Any]:
    """The codec for `spec` (see the module docstring); `ValueError` for anything else."""
    if spec is None:
        return JSON
    if callable(getattr(spec, "encode", None)) and callable(getattr(spec, "decode", None)):
        return cast(Codec[Any], spec)
    if callable(getattr(spec, "validate_json", None)) and callable(
        getattr(spec, "dump_json", None)
    ):
        return AdapterCodec(cast(JsonAdapter[Any], spec))
    if callable(getattr(spec, "model_validate_json", None)):
        return ModelCodec(cast(ModelClass[Any], spec))
    raise ValueError(
        f"codec must be a Codec (encode/decode), a pydantic model class or a TypeAdapter, "
        f"got {type(spec).__name__}"
    )


def encode_text(codec: Codec[Any], value: Any) -> str:
    """The payload as text: bytes from `dump_json` must be UTF-8 (JSON always is)."""
    data = codec.encode(value)
    if isinstance(data, bytes | bytearray):
        return bytes(data).decode("utf-8")
    if not isinstance(data, str):
        raise TypeError(f"{codec!r}.encode returned {type(data).__name__}, expected str or bytes")
    return data
