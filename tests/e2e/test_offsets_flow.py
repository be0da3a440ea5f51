"""The offsetting flow against a real server: quote, order, in-process fulfilment, certificate."""

import time

import httpx

from tests.e2e.conftest import RunningServer

ORDER = """mutation($idempotencyKey: String!) {
  createOrderByMass(input: {mass: {amount: "2", unit: T}, idempotencyKey: $idempotencyKey,
                            description: "E2E offset"}) {
    order { id state price { amount currency } }
    userErrors { code field message }
  }
}"""
STATE = """query($id: ID!) {
  order(id: $id) { state certificate { id publicUrl downloadUrl } allocations { serialRange } }
}"""


def post(server: RunningServer, api_key: str, query: str, **variables: object) -> dict:  # type: ignore[type-arg]
    response = httpx.post(
        f"{server.base_url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def test_an_order_is_fulfilled_within_a_second_and_its_certificate_is_public(
    server: RunningServer,
) -> None:
    key = server.demo_key("test", "standard")
    started = time.monotonic()
    created = post(server, key, ORDER, idempotencyKey="e2e-1")["createOrderByMass"]
    assert created["userErrors"] == []
    order = created["order"]
    assert order["state"] == "PLACED"
    while True:
        current = post(server, key, STATE, id=order["id"])["order"]
        if current["state"] == "FULFILLED":
            break
        assert time.monotonic() - started < 1.0, "not fulfilled within a second"
        time.sleep(0.02)
    assert current["allocations"]
    certificate = current["certificate"]
    page = httpx.get(certificate["publicUrl"])
    assert page.status_code == 200
    assert "E2E offset" in page.text
    pdf = httpx.get(certificate["downloadUrl"])
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")

    replay = post(server, key, ORDER, idempotencyKey="e2e-1")["createOrderByMass"]["order"]
    assert replay["id"] == order["id"]
