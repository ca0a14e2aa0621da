"""Cache-aside over the Upstash REST client (see `shared.cache.cache` for the guarantees).

from shared.cache import Cache

cache = Cache(redis, namespace="api", ttl="5m", stale_ttl="1h", negative_ttl="30s")
result = await cache.get_or_load_result(f"order:{oid}", lambda: repo.get(oid), codec=Order)
headers["X-Cache"] = result.status        # HIT | MISS | STALE | BYPASS
"""

from shared.cache.cache import Cache, LoadOptions
from shared.cache.codec import AdapterCodec, Codec, CodecLike, JsonCodec, ModelCodec, as_codec
from shared.cache.entry import MAX_KEY_LENGTH, Entry, decode_entry, encode_entry
from shared.cache.result import CacheResult, CacheStatus

__all__ = [
    "MAX_KEY_LENGTH",
    "AdapterCodec",
    "Cache",
    "CacheResult",
    "CacheStatus",
    "Codec",
    "CodecLike",
    "Entry",
    "JsonCodec",
    "LoadOptions",
    "ModelCodec",
    "as_codec",
    "decode_entry",
    "encode_entry",
]
