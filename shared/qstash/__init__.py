"""QStash for the edge: an async publisher over the shared transport and a stdlib-only receiver.

qstash = QStash.from_env(env)
await qstash.publish_json(job_url, {"orderId": 42}, retries=3, delay="5s")

claims = Receiver.from_env(env).verify(signature, raw_body, url=job_url)
"""

from typing import TYPE_CHECKING, Any

from shared.qstash.client import DEFAULT_URL, QStash
from shared.qstash.flow_control import FlowControl
from shared.qstash.publish import (
    BatchMessage,
    Method,
    PublishKwargs,
    PublishOptions,
    PublishResult,
    build_batch_request,
    build_publish_request,
    parse_batch_response,
    parse_publish_response,
    publish_headers,
)
from shared.qstash.receiver import NON_RETRYABLE, Receiver, SignatureClaims

if TYPE_CHECKING:
    from shared.qstash.admin import QStashAdmin


def __getattr__(name: str) -> Any:
    # `QStashAdmin` (and its request builders) serve the operator's tools, never a request:
    # loaded on first use, so building the app does not pay for them at every cold start.
    if name == "QStashAdmin":
        from shared.qstash.admin import QStashAdmin

        return QStashAdmin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_URL",
    "NON_RETRYABLE",
    "BatchMessage",
    "FlowControl",
    "Method",
    "PublishKwargs",
    "PublishOptions",
    "PublishResult",
    "QStash",
    "QStashAdmin",
    "Receiver",
    "SignatureClaims",
    "build_batch_request",
    "build_publish_request",
    "parse_batch_response",
    "parse_publish_response",
    "publish_headers",
]
