"""Async Upstash Redis REST client: typed commands, pipelines, auto-pipelining, scripts."""

from shared.redis.client import DEFAULT_TIMEOUT, Redis
from shared.redis.pipeline import Handle, Pipeline
from shared.redis.retry import RetryPolicy
from shared.redis.script import COMPARE_AND_DELETE, Script, delete_if_equals

__all__ = [
    "COMPARE_AND_DELETE",
    "DEFAULT_TIMEOUT",
    "Handle",
    "Pipeline",
    "Redis",
    "RetryPolicy",
    "Script",
    "delete_if_equals",
]
