"""Webhook endpoints and deliveries through GraphQL."""

import httpx

from app.accounts.models import Account
from app.db import Database
from app.events.broker import MemoryBroker
from app.events.relay import relay_pending
from app.events.webhooks.dispatcher import deliver_due, http_client
from app.offsets.fulfilment import fulfil_pending
from tests.conftest import TEST_SECRET, GraphQLClient
from tests.events.receiver import webhook_receiver
from tests.offsets_fixtures import principal_for, stock_of_tonnes

CREATE_ENDPOINT = """mutation($url: String!) {
  createWebhookEndpoint(input: {url: $url, description: "ops"}) {
    webhookEndpoint { id url description } secret userErrors { code field message }
  }
}"""
ORDER = """mutation($url: String!) {
  createOrderByMass(input: {mass: {amount: "1", unit: T}, callbackUrl: $url}) { order { id } }
}"""
DELIVERIES = """query($id: ID!) {
  order(id: $id) {
    webhookDeliveries { url eventType state attemptCount payload attempts { statusCode error } }
  }
}"""


async def test_endpoints_are_admin_only_and_validated(
    client: httpx.AsyncClient, gql: GraphQLClient, admin_key: str
) -> None:
    refused = (await gql.execute(CREATE_ENDPOINT, url="https://example.com/hook"))["data"]
    assert refused["createWebhookEndpoint"]["userErrors"][0]["code"] == "FORBIDDEN"
    admin = GraphQLClient(client, admin_key)
    for url in ("ftp://example.com", "not a url", "https://user:pw@example.com/x"):
        payload = (await admin.execute(CREATE_ENDPOINT, url=url))["data"]["createWebhookEndpoint"]
        assert payload["userErrors"][0]["code"] == "INVALID_INPUT"
        assert payload["userErrors"][0]["field"] == "url"
    created = (await admin.execute(CREATE_ENDPOINT, url="https://example.com/hook"))["data"]
    payload = created["createWebhookEndpoint"]
    assert payload["secret"].startswith("whsec_")
    listing = await admin.execute("{ webhookEndpoints { totalCount edges { node { url } } } }")
    assert listing["data"]["webhookEndpoints"]["totalCount"] == 1
    disabled = await admin.execute(
        "mutation($id: ID!) { disableWebhookEndpoint(input: {id: $id}) { userErrors { code } } }",
        id=payload["webhookEndpoint"]["id"],
    )
    assert disabled["data"]["disableWebhookEndpoint"]["userErrors"] == []
    listing = await admin.execute("{ webhookEndpoints { totalCount } }")
    assert listing["data"]["webhookEndpoints"]["totalCount"] == 0
    secret = await admin.execute("{ callbackSigningSecret }")
    assert secret["data"]["callbackSigningSecret"].startswith("whsec_")
    assert (await gql.execute("{ callbackSigningSecret }"))["errors"][0]["extensions"][
        "code"
    ] == "FORBIDDEN"


async def test_order_shows_its_webhook_deliveries_and_attempts(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    admin = principal_for(account)
    await stock_of_tonnes(db, admin, [2])
    with webhook_receiver() as receiver:
        receiver.statuses = [500]
        order = (await gql.execute(ORDER, url=receiver.url))["data"]["createOrderByMass"]["order"]
        await fulfil_pending(db, TEST_SECRET)
        await relay_pending(db, MemoryBroker())
        async with http_client() as http:
            await deliver_due(db, TEST_SECRET, http, allow_private=True)
    deliveries = (await gql.execute(DELIVERIES, id=order["id"]))["data"]["order"][
        "webhookDeliveries"
    ]
    assert sorted(d["eventType"] for d in deliveries) == ["ORDER_FULFILLED", "ORDER_PLACED"]
    assert sorted(d["state"] for d in deliveries) == ["PENDING", "SUCCEEDED"]
    failed = next(d for d in deliveries if d["state"] == "PENDING")
    assert failed["attempts"] == [{"statusCode": 500, "error": None}]
    assert all(d["url"] == receiver.url for d in deliveries)
    assert {d["payload"]["data"]["orderId"] for d in deliveries} == {order["id"]}


CREATE_WITH_TYPES = """mutation($url: String!, $types: [WebhookEventType!]) {
  createWebhookEndpoint(input: {url: $url, eventTypes: $types}) {
    webhookEndpoint { url eventTypes } userErrors { code field message }
  }
}"""


async def test_endpoints_take_chosen_event_types_or_all(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    admin = GraphQLClient(client, admin_key)
    url = "https://example.com/hook"
    chosen = await admin.execute(CREATE_WITH_TYPES, url=url, types=["ORDER_FULFILLED"])
    assert chosen["data"]["createWebhookEndpoint"]["webhookEndpoint"]["eventTypes"] == [
        "ORDER_FULFILLED"
    ]
    every = await admin.execute(CREATE_WITH_TYPES, url=url)
    assert every["data"]["createWebhookEndpoint"]["webhookEndpoint"]["eventTypes"] is None
    none = (await admin.execute(CREATE_WITH_TYPES, url=url, types=[]))["data"]
    assert none["createWebhookEndpoint"]["userErrors"][0]["code"] == "INVALID_INPUT"
    assert none["createWebhookEndpoint"]["userErrors"][0]["field"] == "eventTypes"
    unknown = await admin.post(CREATE_WITH_TYPES, url=url, types=["ORDER_SHIPPED"])
    assert unknown.json()["errors"]  # not in the enum: refused before anything runs


async def test_urls_with_a_bad_port_or_host_are_invalid_input_where_given(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    admin = GraphQLClient(client, admin_key)
    for url in ("http://example.com:99999/", "http://[::1/", "http://example.com:0/"):
        endpoint = (await admin.execute(CREATE_ENDPOINT, url=url))["data"]
        assert endpoint["createWebhookEndpoint"]["userErrors"][0]["code"] == "INVALID_INPUT"
        assert endpoint["createWebhookEndpoint"]["userErrors"][0]["field"] == "url"
        order = (await admin.execute(ORDER_ERRORS, url=url))["data"]["createOrderByMass"]
        assert order["order"] is None
        assert order["userErrors"][0]["code"] == "INVALID_INPUT"
        assert order["userErrors"][0]["field"] == "callbackUrl"


ORDER_ERRORS = """mutation($url: String!) {
  createOrderByMass(input: {mass: {amount: "1", unit: T}, callbackUrl: $url}) {
    order { id } userErrors { code field }
  }
}"""
