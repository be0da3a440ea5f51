"""A real server sends an order's webhooks to a real local receiver."""

import json
import time
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from tests.e2e.conftest import launch
from tests.events.receiver import webhook_receiver

ORDER = """mutation($url: String!) {
  createOrderByMass(input: {mass: {amount: "300", unit: KG}, callbackUrl: $url}) { order { id } }
}"""


def test_callback_url_receives_signed_placed_and_fulfilled(
    database_url: str, tmp_path: Path
) -> None:
    with (
        webhook_receiver() as receiver,
        launch(database_url, tmp_path / "server.log", CG_ALLOW_PRIVATE_WEBHOOKS="1") as server,
    ):
        admin = {"Authorization": f"Bearer {server.demo_key('test', 'admin')}"}
        http = httpx.Client(base_url=server.base_url, headers=admin)
        secret = http.post("/graphql", json={"query": "{ callbackSigningSecret }"}).json()
        order = http.post("/graphql", json={"query": ORDER, "variables": {"url": receiver.url}})
        order_id = order.json()["data"]["createOrderByMass"]["order"]["id"]
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    verifier = Webhook(secret["data"]["callbackSigningSecret"])
    payloads = [verifier.verify(r.body, r.headers) for r in receiver.requests]
    assert sorted(p["type"] for p in payloads) == ["order.fulfilled", "order.placed"]
    assert {p["data"]["orderId"] for p in payloads} == {order_id}


PLAIN_ORDER = """mutation {
  createOrderByMass(input: {mass: {amount: "100", unit: KG}}) { order { id } }
}"""
CREATE_ENDPOINT = """mutation($url: String!, $types: [WebhookEventType!]) {
  createWebhookEndpoint(input: {url: $url, eventTypes: $types}) {
    webhookEndpoint { id } userErrors { code field message }
  }
}"""


def test_endpoints_get_their_chosen_types_and_a_410_disables_one(
    database_url: str, tmp_path: Path
) -> None:
    with (
        webhook_receiver() as fulfilled_only,
        webhook_receiver() as gone,
        launch(database_url, tmp_path / "server.log", CG_ALLOW_PRIVATE_WEBHOOKS="1") as server,
    ):
        gone.statuses = [410] * 10
        admin = {"Authorization": f"Bearer {server.demo_key('test', 'admin')}"}
        http = httpx.Client(base_url=server.base_url, headers=admin)

        def execute(query: str, **variables: object) -> dict:  # type: ignore[type-arg]
            body = http.post("/graphql", json={"query": query, "variables": variables}).json()
            assert "errors" not in body, body
            return body["data"]  # type: ignore[no-any-return]

        for url, types in ((fulfilled_only.url, ["ORDER_FULFILLED"]), (gone.url, None)):
            created = execute(CREATE_ENDPOINT, url=url, types=types)["createWebhookEndpoint"]
            assert created["userErrors"] == []
        for _ in range(2):
            execute(PLAIN_ORDER)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            listing = execute("{ webhookEndpoints { totalCount } }")["webhookEndpoints"]
            if len(fulfilled_only.requests) == 2 and listing["totalCount"] == 1:
                break
            time.sleep(0.1)
        assert listing["totalCount"] == 1  # the endpoint that answered 410 is disabled
        sent_before_disabled = len(gone.requests)
        execute(PLAIN_ORDER)
        while len(fulfilled_only.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    types = [json.loads(r.body)["type"] for r in fulfilled_only.requests]
    assert types == ["order.fulfilled"] * 3
    assert len(gone.requests) == sent_before_disabled  # nothing more after the 410
