"""Pure parts of the cache: the stored entry format, key rules, codecs, poll schedule."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, TypeAdapter

from shared.cache import Cache, Entry, JsonCodec, as_codec, decode_entry, encode_entry
from shared.cache.codec import AdapterCodec, ModelCodec, encode_text
from shared.cache.entry import MAX_KEY_LENGTH, check_key, gen_key, lock_key, value_key
from shared.cache.store import poll_delays
from shared.redis import Redis


class Order(BaseModel):
    id: int
    name: str


def test_entry_round_trips_value_and_negative() -> None:
    """An entry survives encode/decode, falsy payloads included, and negatives carry no payload."""
    for payload in ["0", '""', "[]", "false", '{"a":"é\\n"}', "multi\nline"]:
        entry = Entry("v", 1000, 5000, payload)
        assert decode_entry(encode_entry(entry)) == entry
    negative = Entry("n", 1000, 1000)
    assert encode_entry(negative) == "c1|1000|1000|n\n"
    decoded = decode_entry(encode_entry(negative))
    assert decoded == negative and decoded.negative


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "42",
        '{"a":1}',
        "c1|1|2|v",
        "c2|1|2|v\n1",
        "c1|x|2|v\n1",
        "c1|1|2|q\n1",
        "c1|-1|2|v\n1",
        "c1|1|2\n1",
        "c1|\u0661|2|v\n1",
    ],
)
def test_foreign_values_are_not_entries(raw: str) -> None:
    """Anything not in the c1 format (a plain JSON value from the seed helper, another
    version, a corrupt header) decodes to None, i.e. a miss."""
    assert decode_entry(raw) is None


def test_freshness_follows_the_clock() -> None:
    """Fresh before fresh_until, stale until stale_until, then expired."""
    entry = Entry("v", 1000, 2000, "1")
    assert [entry.freshness(t) for t in (999, 1000, 1999, 2000)] == [
        "fresh",
        "stale",
        "stale",
        "expired",
    ]


def test_encode_rejects_inverted_window() -> None:
    """stale_until before fresh_until is a programming error."""
    with pytest.raises(ValueError, match="stale_until_ms"):
        encode_entry(Entry("v", 2000, 1000, "1"))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "empty"),
        ("a" * (MAX_KEY_LENGTH + 1), "limit is 512"),
        ("order 42", "whitespace"),
        ("order\n42", "whitespace"),
        ("order\x0042", "control"),
        ("order\u200342", "whitespace"),  # an em space: Unicode whitespace
        ("order\u202e42", "control"),  # a bidi override: printable in no font
        ("~lock:x", "reserved"),
    ],
)
def test_bad_keys_raise_clear_value_errors(key: str, message: str) -> None:
    """Empty, too long, spaced, control-character and reserved keys are refused with a message."""
    with pytest.raises(ValueError, match=message):
        check_key(key)


def test_keys_are_namespaced_in_one_place() -> None:
    """Values live at `{ns}:{key}`, locks at `{ns}:~lock:{key}` and invalidation markers at
    `{ns}:~gen:{key}`, which no value key can be."""
    assert value_key("api", "order:42") == "api:order:42"
    assert lock_key("api:order:42", "api") == "api:~lock:order:42"
    assert gen_key("api:order:42", "api") == "api:~gen:order:42"
    assert check_key("a" * MAX_KEY_LENGTH) and check_key("café:☕")


def test_cache_validates_its_settings(redis_url_free: Redis[str]) -> None:
    """Bad namespaces, TTLs and jitter fail at construction with a ValueError."""
    with pytest.raises(ValueError, match="namespace"):
        Cache(redis_url_free, namespace="has space")
    with pytest.raises(ValueError, match="ttl must be > 0"):
        Cache(redis_url_free, ttl=0)
    with pytest.raises(ValueError, match="malformed duration"):
        Cache(redis_url_free, ttl="five minutes")
    with pytest.raises(ValueError, match="jitter"):
        Cache(redis_url_free, jitter=0.9)
    cache = Cache(redis_url_free, namespace="api", ttl="5m", stale_ttl="1h", negative_ttl=30)
    assert cache.key("order:42") == "api:order:42"
    with pytest.raises(ValueError, match="empty"):
        cache.key("")


def test_json_codec_keeps_falsy_values_and_unicode() -> None:
    """JSON is the default codec and is compact, UTF-8 and exact for falsy values."""
    codec = as_codec(None)
    assert isinstance(codec, JsonCodec)
    for value in [0, "", [], False, {}, 0.0, "café"]:
        assert codec.decode(encode_text(codec, value)) == value
    assert encode_text(codec, {"a": [1, 2]}) == '{"a":[1,2]}'


def test_pydantic_model_and_type_adapter_are_duck_typed() -> None:
    """A model class and a TypeAdapter become codecs by their methods (bytes decoded)."""
    model_codec = as_codec(Order)
    assert isinstance(model_codec, ModelCodec)
    text = encode_text(model_codec, Order(id=1, name="Ada"))
    assert json.loads(text) == {"id": 1, "name": "Ada"}
    assert model_codec.decode(text) == Order(id=1, name="Ada")

    adapter_codec = as_codec(TypeAdapter(list[Order]))
    assert isinstance(adapter_codec, AdapterCodec)
    text = encode_text(adapter_codec, [Order(id=2, name="Bo")])
    assert isinstance(text, str)
    assert adapter_codec.decode(text) == [Order(id=2, name="Bo")]


def test_custom_codec_is_used_as_is_and_junk_is_refused() -> None:
    """Any object with encode/decode is a codec; anything else is a ValueError."""

    class Upper:
        def encode(self, value: str) -> str:
            return value.upper()

        def decode(self, text: str) -> str:
            return text.lower()

    upper = Upper()
    assert as_codec(upper) is upper
    with pytest.raises(ValueError, match="codec must be"):
        as_codec(42)  # type: ignore[arg-type]


def test_poll_schedule_is_bounded_and_backs_off() -> None:
    """Polls start at 10 ms, double up to 100 ms, and add up to at least the wait."""
    delays = poll_delays(2000)
    assert delays[:4] == [0.01, 0.02, 0.04, 0.08]
    assert max(delays) == 0.1
    assert 2.0 <= sum(delays) < 2.1
    assert poll_delays(1) == [0.01]


def test_ttl_jitter_stays_within_a_few_percent(redis_url_free: Redis[str]) -> None:
    """Written TTLs are spread over [ttl, ttl * 1.05] so keys written together expire apart."""
    import random

    cache = Cache(redis_url_free, ttl="100s", rng=random.Random(7))
    ttls = {cache._jittered(100_000) for _ in range(200)}
    assert min(ttls) >= 100_000 and max(ttls) <= 105_000
    assert len(ttls) > 50
    assert Cache(redis_url_free, jitter=0)._jittered(100_000) == 100_000


@pytest.fixture
def redis_url_free() -> Redis[str]:
    """A client that is never used to send anything (construction-only tests)."""
    return Redis("http://127.0.0.1:9", "token")
