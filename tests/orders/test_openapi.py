"""The OpenAPI document: structurally valid 3.1, every route the app serves is listed, and the
constraints it states are the ones the server enforces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.dev import app_env
from shared import routes
from shared.app.assembly import build_app
from shared.http import HttpxTransport
from shared.jobs.email_address import EMAIL_PATTERN, LOCAL_LENGTH_PATTERN, MAX_EMAIL_LENGTH
from shared.orders import create_handlers
from shared.orders.openapi import openapi_document
from shared.orders.records import ORDER_ID
from tests.conftest import Devstack
from tests.support.inprocess import BASE_URL, app_client, app_test_env

APP_URL = "https://shop.example.com"
DOC = openapi_document(APP_URL)
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
DUMMY_STACK = {
    "redis_rest_url": "http://127.0.0.1:9",
    "redis_rest_token": "token",
    "qstash_url": "http://127.0.0.1:9",
    "qstash_token": "token",
    "qstash_current_signing_key": "sig_current",
    "qstash_next_signing_key": "sig_next",
    "email_api_url": "http://127.0.0.1:9",
}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            assert method in METHODS, (path, method)
            yield path, method, operation


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def schema_of(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = DOC["components"]["schemas"][name]
    return schema


def test_document_is_openapi_3_1_json() -> None:
    """The document is JSON, declares OpenAPI 3.1.0, an info block and the app's URL."""
    assert json.loads(json.dumps(DOC)) == DOC
    assert DOC["openapi"] == "3.1.0"
    assert DOC["info"]["title"] and DOC["info"]["version"]
    assert DOC["servers"] == [{"url": APP_URL}]


def test_every_reference_resolves() -> None:
    """Every $ref points at something in the document; every security name is a scheme."""
    refs = [node["$ref"] for node in walk(DOC) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for ref in refs:
        assert isinstance(resolve(ref), dict), ref
    schemes = DOC["components"]["securitySchemes"]
    for _, _, operation in operations():
        for requirement in operation.get("security", []):
            assert set(requirement) <= set(schemes)


def test_every_operation_is_well_formed() -> None:
    """Operations have unique ids, described responses keyed by status codes, path
    parameters matching their templates, and JSON error bodies."""
    ids = [operation["operationId"] for _, _, operation in operations()]
    assert len(ids) == len(set(ids))
    for path, _, operation in operations():
        assert operation["responses"]
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5][0-9]{2}", status), status
            assert response["description"]
            if int(status) >= 400:
                assert "application/json" in response["content"]
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path))
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in ("path", "query", "header", "cookie")
            if parameter["in"] == "path":
                assert parameter["required"] is True


def test_every_pattern_compiles() -> None:
    """Every pattern in the document is a regex Python compiles (and ECMA-262 reads alike)."""
    patterns = [n["pattern"] for n in walk(DOC) if isinstance(n, dict) and "pattern" in n]
    assert len(patterns) >= 5
    for pattern in patterns:
        re.compile(pattern)


def test_every_route_the_app_serves_is_listed() -> None:
    """The documented operations are exactly the app's routes (HEAD and OPTIONS aside), path
    templates included."""
    bundle = build_app(app_env(DUMMY_STACK, APP_URL), transport=HttpxTransport())
    served = {
        (route.method.lower(), route.pattern)
        for route in bundle.app.router._routes
        if route.method not in ("HEAD", "OPTIONS")
    }
    documented = {(method, path) for path, method, _ in operations()}
    assert documented == served


def test_every_mounted_route_is_a_path_of_the_routes_module() -> None:
    """Each route the app serves (HEAD and OPTIONS aside) is one of `shared.routes`' paths,
    and each of those paths is served."""
    owned = {v for k, v in vars(routes).items() if k.isupper() and v.startswith("/api/")}
    bundle = build_app(app_env(DUMMY_STACK, APP_URL), transport=HttpxTransport())
    served = {r.pattern for r in bundle.app.router._routes if r.method not in ("HEAD", "OPTIONS")}
    assert served == owned


def test_constraints_are_the_servers() -> None:
    """The Idempotency-Key, order id, email and job patterns are the server's own; integers
    are integers with their bounds; bodies allow no unknown fields; signatures are required."""
    create = DOC["paths"]["/api/orders"]["post"]
    [key] = [p for p in create["parameters"] if p["name"] == "Idempotency-Key"]
    pattern = create_handlers._IDEMPOTENCY_KEY.pattern
    assert key["in"] == "header" and key["schema"]["pattern"] == pattern
    for method in ("get", "delete"):
        [order_id] = DOC["paths"]["/api/orders/{id}"][method]["parameters"]
        assert order_id["schema"]["pattern"] == ORDER_ID.pattern
    email = schema_of("OrderIn")["properties"]["customer_email"]
    assert email["pattern"] == EMAIL_PATTERN and email["maxLength"] == MAX_EMAIL_LENGTH
    assert email["allOf"] == [{"pattern": LOCAL_LENGTH_PATTERN}]
    assert schema_of("OrderIn")["additionalProperties"] is False
    item = schema_of("ItemIn")
    assert item["additionalProperties"] is False
    assert item["properties"]["quantity"] == {"type": "integer", "minimum": 1, "maximum": 1000,
                                              "title": "Quantity"}  # fmt: skip
    assert item["properties"]["unit_price_cents"]["type"] == "integer"
    assert schema_of("ConfirmationJob")["properties"]["orderId"]["pattern"] == ORDER_ID.pattern
    for path in ("/api/jobs/send-confirmation", "/api/jobs/smoke"):
        [signature] = DOC["paths"][path]["post"]["parameters"]
        assert signature == {**signature, "name": "Upstash-Signature", "required": True}


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/api/orders", "post",
         {"201", "400", "401", "403", "409", "410", "413", "415", "422", "429", "503"}),
        ("/api/orders/{id}", "get", {"200", "403", "404", "429", "503"}),
        ("/api/orders/{id}", "delete", {"204", "403", "404", "429", "503"}),
        ("/api/health", "get", {"200", "403", "429", "503"}),
        ("/api/openapi.json", "get", {"200", "403", "429"}),
        ("/api/jobs/send-confirmation", "post",
         {"200", "401", "409", "413", "415", "429", "489", "503"}),
        ("/api/jobs/smoke", "post", {"200", "401", "413", "415", "489", "503"}),
        ("/api/cron/flush-outbox", "get", {"200", "401", "503"}),
        ("/api/admin/outbox/dead", "get", {"200", "401", "403", "429", "503"}),
        ("/api/admin/outbox/dead/{id}/retry", "post",
         {"200", "202", "401", "403", "404", "409", "415", "429", "503"}),
        ("/api/admin/outbox/dead/{id}", "delete", {"204", "401", "403", "404", "429", "503"}),
    ],
)  # fmt: skip
def test_each_operation_lists_its_statuses(path: str, method: str, statuses: set[str]) -> None:
    """Each operation lists every status it can answer."""
    assert set(DOC["paths"][path][method]["responses"]) == statuses


@pytest.mark.integration
async def test_the_app_serves_this_document(devstack: Devstack) -> None:
    """GET /api/openapi.json answers the document for the app's own URL, as JSON."""
    async with app_client(app_test_env(devstack)) as client:
        response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == openapi_document(BASE_URL)
