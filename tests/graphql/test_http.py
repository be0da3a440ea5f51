"""GraphQL over HTTP: authentication, content types, methods and status codes."""

import httpx
import pytest

from app.accounts.models import Mode
from app.db import Database
from tests.conftest import GraphQLClient, make_account, make_key

VIEWER = "{ viewer { account { slug } mode } }"


async def test_bearer_and_x_api_key_headers_both_authenticate(
    client: httpx.AsyncClient, test_key: str
) -> None:
    for headers in ({"Authorization": f"Bearer {test_key}"}, {"X-API-Key": test_key}):
        response = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
        assert response.status_code == 200
        assert response.json()["data"] == {"viewer": {"account": {"slug": "acme"}, "mode": "TEST"}}
        assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer cg_test_not-a-real-key"},
        {"X-API-Key": "cg_live_" + "A" * 43},
    ],
)
async def test_missing_or_invalid_key_is_401_unauthenticated(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_revoked_key_is_401(db: Database, client: httpx.AsyncClient, admin_key: str) -> None:
    admin = GraphQLClient(client, admin_key)
    created = await admin.execute(
        'mutation { createApiKey(input: {name: "temp"}) { apiKey { id } secret } }'
    )
    payload = created["data"]["createApiKey"]
    temp = GraphQLClient(client, payload["secret"])
    assert (await temp.execute(VIEWER))["data"]["viewer"]["mode"] == "TEST"
    revoked = await admin.execute(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } } }",
        id=payload["apiKey"]["id"],
    )
    assert revoked["data"]["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    response = await temp.post(VIEWER)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_graphiql_is_served_to_browsers_without_a_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_queries_work_over_get(client: httpx.AsyncClient, test_key: str) -> None:
    response = await client.get(
        "/graphql", params={"query": VIEWER}, headers={"X-API-Key": test_key}
    )
    assert response.status_code == 200
    assert response.json()["data"]["viewer"]["mode"] == "TEST"


async def test_mutations_over_get_are_405(client: httpx.AsyncClient, test_key: str) -> None:
    response = await client.get(
        "/graphql",
        params={
            "query": 'mutation { createSubaccount(input: {name: "x"}) { userErrors { code } } }'
        },
        headers={"X-API-Key": test_key},
    )
    assert response.status_code == 405
    assert "errors" in response.json()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_methods_are_405(client: httpx.AsyncClient, test_key: str, method: str) -> None:
    response = await client.request(method, "/graphql", headers={"X-API-Key": test_key})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
async def test_other_content_types_are_415(
    client: httpx.AsyncClient, test_key: str, content_type: str
) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ viewer { mode } }"}',
        headers={"X-API-Key": test_key, "Content-Type": content_type},
    )
    assert response.status_code == 415
    assert response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Not valid JSON"),
        (b"{}", "No GraphQL query found"),
        (b'{"query": 42}', "must be a string"),
        (b'{"query": "{ viewer { mode } }", "variables": [1]}', "variables"),
        (b'{"query": "{ viewer { mode } }", "operationName": "Missing"}', "Unknown operation"),
        (b'"x"', "must be a JSON object"),
        (b"123", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"[]", "Batching is not enabled"),
        (b'{"query": "{ viewer { mode } }", "x": NaN}', "Not valid JSON"),
        (b'{"query": "\xff\xfe"}', "Not valid JSON"),
        (b'{"query": "\\ud800"}', "Not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "Not valid JSON"),
    ],
)
async def test_malformed_requests_are_400_with_a_json_error(
    client: httpx.AsyncClient, test_key: str, body: bytes, message: str
) -> None:
    response = await client.post(
        "/graphql",
        content=body,
        headers={"X-API-Key": test_key, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


async def test_graphql_response_json_is_negotiated_and_validation_errors_are_400(
    client: httpx.AsyncClient, test_key: str
) -> None:
    headers = {"X-API-Key": test_key, "Accept": "application/graphql-response+json"}
    ok = await client.post("/graphql", json={"query": VIEWER}, headers=headers)
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("application/graphql-response+json")
    invalid = await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert invalid.status_code == 400
    plain = await client.post(
        "/graphql", json={"query": "{ nope }"}, headers={"X-API-Key": test_key}
    )
    assert plain.status_code == 200  # application/json keeps the legacy 200
    assert plain.json()["errors"]


@pytest.mark.parametrize(
    "query",
    [
        "{ nope }",  # validation
        "{ viewer {",  # parse
        "query($id: ID!) { node(id: $id) { id } }",  # variables: $id is missing
    ],
)
async def test_a_request_that_never_executed_has_no_data_entry_under_graphql_response_json(
    client: httpx.AsyncClient, test_key: str, query: str
) -> None:
    headers = {"X-API-Key": test_key, "Accept": "application/graphql-response+json"}
    response = await client.post("/graphql", json={"query": query}, headers=headers)
    assert response.status_code == 400
    assert "data" not in response.json()
    assert response.json()["errors"]


async def test_unacceptable_accept_header_is_406(client: httpx.AsyncClient, test_key: str) -> None:
    response = await client.post(
        "/graphql", json={"query": VIEWER}, headers={"X-API-Key": test_key, "Accept": "text/csv"}
    )
    assert response.status_code == 406


async def test_test_and_live_keys_see_their_own_mode(
    db: Database, client: httpx.AsyncClient
) -> None:
    account = await make_account(db)
    _, test_plain = await make_key(db, account, Mode.TEST)
    _, live_plain = await make_key(db, account, Mode.LIVE)
    for plain, mode in ((test_plain, "TEST"), (live_plain, "LIVE")):
        body = await GraphQLClient(client, plain).execute(VIEWER)
        assert body["data"]["viewer"]["mode"] == mode


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    metrics = await client.get("/metrics")
    assert "cg_http_requests_total" in metrics.text


async def test_readiness_fails_when_the_database_is_unreachable(tmp_path: object) -> None:
    from app.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


async def test_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "trace-12345678"})
    assert response.headers["x-request-id"] == "trace-12345678"
