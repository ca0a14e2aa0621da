"""`POST /api/orders` validation through the real app in process on the devstack: the email
rule shared with the builder, and strict types (no coercion); every refusal is a 422 naming
the field, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import Devstack
from tests.email.test_email_address import BAD
from tests.support.inprocess import app_client, app_test_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(devstack: Devstack) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the devstack, with a rate limit the test never reaches."""
    async with app_client(app_test_env(devstack)) as result:
        yield result


def order(**overrides: Any) -> dict[str, Any]:
    item = {"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}
    item.update(overrides.pop("item", {}))
    return {"customer_email": "ann@example.com", "items": [item], **overrides}


async def post_raw(client: httpx.AsyncClient, body: str) -> httpx.Response:
    return await client.post(
        "/api/orders", content=body.encode(), headers={"content-type": "application/json"}
    )


def fields_of(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "Validation failed"
    return {entry["field"] for entry in body["detail"]}


@pytest.mark.parametrize("address", BAD.values(), ids=BAD.keys())
async def test_unsendable_address_is_422_naming_the_field(
    client: httpx.AsyncClient, address: str
) -> None:
    """Each address the email builder could not send is refused as a 422 on customer_email."""
    response = await client.post("/api/orders", json=order(customer_email=address))
    assert fields_of(response) == {"customer_email"}
    if len(address) > 3:
        assert address not in response.text  # never echoed


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("quantity", "true"),
        ("quantity", '"2"'),
        ("quantity", "2.0"),
        ("quantity", "1e3"),
        ("unit_price_cents", "false"),
        ("unit_price_cents", '"1250"'),
        ("unit_price_cents", "1250.0"),
        ("unit_price_cents", "1e3"),
    ],
)
async def test_integers_are_not_coerced(client: httpx.AsyncClient, field: str, raw: str) -> None:
    """Booleans, numeric strings and floats (1e3 included) are not integers: 422 on the field."""
    values = {"quantity": "2", "unit_price_cents": "1250", field: raw}
    body = (
        '{"customer_email": "ann@example.com", "items": [{"sku": "BOOK-1", '
        f'"quantity": {values["quantity"]}, "unit_price_cents": {values["unit_price_cents"]}}}]}}'
    )
    assert fields_of(await post_raw(client, body)) == {f"items.0.{field}"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order(customer_email=123), "customer_email"),
        (order(customer_email=["ann@example.com"]), "customer_email"),
        (order(currency=978), "currency"),
        (order(item={"sku": 12345}), "items.0.sku"),
        (order(item={"sku": True}), "items.0.sku"),
    ],
)
async def test_strings_are_not_coerced(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    """Numbers, booleans and lists are not strings: 422 on the field."""
    assert fields_of(await client.post("/api/orders", json=body)) == {field}
