"""A real server sends an order's webhooks to a real local receiver."""

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
