"""The OpenAPI 3.1 document served at `GET /api/openapi.json`.

It lists every public route and states every constraint the server enforces, so a
client generator or a fuzzer (schemathesis) works from the truth: body schemas
come from the pydantic models (strict integers, the email rule's pattern and
maximum length), and the hand-written parts (paths, headers, path parameters,
status codes) reuse the server's own patterns. `tests/orders/test_openapi.py`
checks the document against the app's router, so a new route cannot go unlisted.
"""

from __future__ import annotations

from typing import Any

from shared.orders.models import (
    IDEMPOTENCY_KEY_PATTERN,
    ErrorOut,
    OrderCreated,
    OrderIn,
    OrderOut,
)
from shared.orders.records import ORDER_ID
from shared.routes import (
    CONFIRMATION_JOB,
    DEAD_LETTER,
    DEAD_LETTER_RETRY,
    DEAD_LETTERS,
    FLUSH_OUTBOX,
    HEALTH,
    OPENAPI,
    ORDER,
    ORDERS,
    SMOKE_JOB,
    SMOKE_NONCE_PATTERN,
)

JOB_ORDER_ID_PATTERN = ORDER_ID.pattern

_EXTRA_SCHEMAS: dict[str, Any] = {
    "Health": {
        "type": "object",
        "required": ["status", "redis"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "redis": {
                "type": "object",
                "required": ["ok"],
                "properties": {
                    "ok": {"type": "boolean"},
                    "latency_ms": {"type": "number"},
                    "error": {"type": "string"},
                },
            },
        },
    },
    "ConfirmationJob": {
        "type": "object",
        "description": "What QStash delivers (the app publishes it; other fields are ignored).",
        "required": ["orderId"],
        "properties": {
            "orderId": {"type": "string", "pattern": JOB_ORDER_ID_PATTERN},
            "requestId": {"type": "string"},
        },
    },
    "JobResult": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["sent", "already_sent"]},
            "email_id": {"type": "string"},
        },
    },
    "SmokeJob": {
        "type": "object",
        "required": ["nonce"],
        "properties": {"nonce": {"type": "string", "pattern": SMOKE_NONCE_PATTERN}},
    },
    "SmokeResult": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["recorded"]}},
    },
    "FlushReport": {
        "type": "object",
        "description": "Counts of one outbox flush.",
        "properties": {
            "published": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
            "remaining": {"type": "integer", "minimum": 0},
        },
    },
}

_ERRORS = {
    400: "malformed JSON or a malformed header",
    401: "missing or invalid credentials (API key, signature, cron secret)",
    404: "no such order, or a wrong access token (indistinguishable on purpose)",
    409: "a duplicate is still in flight (retry after Retry-After), or QStash refused again",
    410: "the order this Idempotency-Key created was deleted",
    413: "request body larger than MAX_BODY_BYTES",
    415: "request body is not application/json",
    422: "validation failed; detail lists each field with its message",
    403: "denied by a protection list (identifier, IP, user agent or country)",
    429: "rate limited; Retry-After says when to retry",
    489: "the job can never succeed (Upstash-NonRetryable-Error: true): QStash stops",
    503: "an upstream service (Redis, QStash, the email provider) is unavailable",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(ok: dict[str, dict[str, Any]], *errors: int) -> dict[str, Any]:
    result: dict[str, Any] = dict(ok)
    for status in sorted(errors):
        response: dict[str, Any] = {"description": _ERRORS[status], **_json(_ref("ErrorOut"))}
        if status in (409, 429):
            response["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
        if status == 489:
            response["headers"] = {
                "Upstash-NonRetryable-Error": {"schema": {"type": "string", "enum": ["true"]}}
            }
        result[str(status)] = response
    return result


def _body(schema_name: str) -> dict[str, Any]:
    return {"required": True, **_json(_ref(schema_name))}


def _header(name: str, schema: dict[str, Any], *, required: bool, about: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": schema,
        "description": about,
    }


_ORDER_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": ORDER_ID.pattern},
}
_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}},
}
_DEAD_LETTERS = {
    "type": "object",
    "required": ["dead"],
    "properties": {
        "dead": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "url": {"type": "string"},
                    "body": {"type": "object"},
                    "attempts": {"type": "integer", "minimum": 0},
                    "status": {"type": "integer"},
                    "error": {"type": "string"},
                    "failed_at_ms": {"type": "integer"},
                },
            },
        }
    },
}
_ORDER_ACCESS: list[dict[str, list[str]]] = [{"orderToken": []}, {"orderTokenQuery": []}]
_SIGNATURE = _header(
    "Upstash-Signature",
    {"type": "string", "minLength": 1},
    required=True,
    about="QStash's JWT over the raw body, signed with the current or next signing key",
)


def openapi_document(app_url: str) -> dict[str, Any]:
    """OpenAPI 3.1 for every public route, from the models and the server's patterns."""
    schemas: dict[str, Any] = {}
    for model in (OrderIn, OrderOut, OrderCreated, ErrorOut):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.update(_EXTRA_SCHEMAS)
    ok_json = {"description": "the OpenAPI document", **_json({"type": "object"})}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Orders API (Upstash edge template)", "version": "1.0.0"},
        "servers": [{"url": app_url}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "orderToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the order's access_token",
                },
                "orderTokenQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "the order's access_token, as ?token=",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "required only when the server sets API_KEYS",
                },
                "cronSecret": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the CRON_SECRET (Vercel Cron sends it)",
                },
                "qstashSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Upstash-Signature",
                    "description": "QStash's JWT for this URL (a QStash schedule sends it)",
                },
            },
        },
        "paths": {
            ORDERS: {
                "post": {
                    "operationId": "createOrder",
                    "summary": "Create an order; the confirmation email follows through QStash",
                    "security": [{}, {"apiKey": []}],
                    "parameters": [
                        _header(
                            "Idempotency-Key",
                            {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                            required=False,
                            about="1-255 visible ASCII characters; a retry with the same key "
                            "and body replays the first answer",
                        )
                    ],
                    "requestBody": _body("OrderIn"),
                    "responses": _responses(
                        {"201": {"description": "created", **_json(_ref("OrderCreated"))}},
                        *(400, 401, 403, 409, 410, 413, 415, 422, 429, 503),
                    ),
                }
            },
            ORDER: {
                "get": {
                    "operationId": "getOrder",
                    "summary": "Read an order with its access token",
                    "security": _ORDER_ACCESS,
                    "parameters": [_ORDER_ID_PARAM],
                    "responses": _responses(
                        {"200": {"description": "the order", **_json(_ref("OrderOut"))}},
                        *(403, 404, 429, 503),
                    ),
                },
                "delete": {
                    "operationId": "deleteOrder",
                    "summary": "Erase an order and its cache entry",
                    "security": _ORDER_ACCESS,
                    "parameters": [_ORDER_ID_PARAM],
                    "responses": _responses({"204": {"description": "erased"}}, 403, 404, 429, 503),
                },
            },
            HEALTH: {
                "get": {
                    "operationId": "health",
                    "summary": "Redis reachability and latency",
                    "responses": {
                        "200": {"description": "ok", **_json(_ref("Health"))},
                        **_responses({}, 403, 429),
                        "503": {"description": "Redis unreachable", **_json(_ref("Health"))},
                    },
                }
            },
            OPENAPI: {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": _responses({"200": ok_json}, 403, 429),
                }
            },
            CONFIRMATION_JOB: {
                "post": {
                    "operationId": "sendConfirmation",
                    "summary": "QStash delivers the confirmation job here (signed); sends the "
                    "email at most once per order",
                    "parameters": [_SIGNATURE],
                    "requestBody": _body("ConfirmationJob"),
                    "responses": _responses(
                        {
                            "200": {
                                "description": "sent, or sent before",
                                **_json(_ref("JobResult")),
                            }
                        },
                        *(401, 409, 413, 415, 429, 489, 503),
                    ),
                }
            },
            SMOKE_JOB: {
                "post": {
                    "operationId": "smokeJob",
                    "summary": "The far end of `make smoke`: QStash delivers a nonce (signed)",
                    "parameters": [_SIGNATURE],
                    "requestBody": _body("SmokeJob"),
                    "responses": _responses(
                        {"200": {"description": "recorded", **_json(_ref("SmokeResult"))}},
                        *(401, 413, 415, 489, 503),
                    ),
                }
            },
            FLUSH_OUTBOX: {
                "get": {
                    "operationId": "flushOutbox",
                    "summary": "Publish the jobs left in the outbox (Vercel Cron, QStash schedule)",
                    "security": [{"cronSecret": []}, {"qstashSignature": []}],
                    "responses": _responses(
                        {"200": {"description": "flushed", **_json(_ref("FlushReport"))}},
                        *(401, 503),
                    ),
                }
            },
            DEAD_LETTERS: {
                "get": {
                    "operationId": "listDeadLetters",
                    "summary": "Jobs QStash refused permanently (the outbox's dead letters)",
                    "security": [{"cronSecret": []}],
                    "responses": _responses(
                        {"200": {"description": "the dead letters", **_json(_DEAD_LETTERS)}},
                        *(401, 403, 429, 503),
                    ),
                }
            },
            DEAD_LETTER_RETRY: {
                "post": {
                    "operationId": "retryDeadLetter",
                    "summary": "Publish a dead letter again (200 published, 202 queued)",
                    "security": [{"cronSecret": []}],
                    "parameters": [_ORDER_ID_PARAM],
                    "responses": _responses(
                        {
                            "200": {"description": "published", **_json(_STATUS)},
                            "202": {"description": "back in the outbox", **_json(_STATUS)},
                        },
                        *(401, 403, 404, 409, 415, 429, 503),
                    ),
                }
            },
            DEAD_LETTER: {
                "delete": {
                    "operationId": "dropDeadLetter",
                    "summary": "Drop a dead letter",
                    "security": [{"cronSecret": []}],
                    "parameters": [_ORDER_ID_PARAM],
                    "responses": _responses(
                        {"204": {"description": "dropped"}}, *(401, 403, 404, 429, 503)
                    ),
                }
            },
        },
    }
