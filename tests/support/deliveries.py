"""Signed QStash deliveries for the app's routes: what QStash would send, without waiting
for QStash. The signature is valid for `BASE_URL + path`, the in-process app's URL."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from shared.qstash.signing import delivery_claims, sign_jwt
from shared.routes import CONFIRMATION_JOB as JOB_PATH
from tests.conftest import Devstack
from tests.support.inprocess import BASE_URL


def signature(devstack: Devstack, path: str, body: bytes, base_url: str = BASE_URL) -> str:
    """An `Upstash-Signature` for `body` delivered to `base_url + path`, signed with the
    current key (`base_url`: the in-process app's unless another app is served)."""
    claims = delivery_claims(base_url + path, body, now=time.time(), jwt_id=uuid.uuid4().hex)
    return sign_jwt(claims, str(devstack.raw["qstash_current_signing_key"]))


def signed_headers(
    devstack: Devstack, path: str, body: bytes, base_url: str = BASE_URL
) -> dict[str, str]:
    """The headers of a signed JSON delivery of `body` to `base_url + path`."""
    return {
        "upstash-signature": signature(devstack, path, body, base_url),
        "content-type": "application/json",
    }


def signed_job(devstack: Devstack, order_id: str, path: str = JOB_PATH) -> dict[str, Any]:
    """Keyword arguments for `client.post(path, **...)`: the job's body and a valid signature."""
    body = json.dumps({"orderId": order_id, "requestId": "test"}).encode()
    return {"content": body, "headers": signed_headers(devstack, path, body)}
