"""The GraphiQL page: self-hosted assets, its CSP, and a key prefilled on the demo server only."""

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app import demo
from app.accounts.models import Mode
from app.config import INSECURE_DEV_SECRET, Settings
from app.db import Database
from app.graphql.ide import BUNDLE_DIR, BUNDLE_ENTRY
from app.main import create_app
from tests.conftest import GraphQLClient

HTML = {"Accept": "text/html"}
DEV_SECRET = SecretStr(INSECURE_DEV_SECRET)


@pytest.fixture
def bundle() -> None:
    """The built bundle (make graphiql); missing, these tests skip, or fail under CI."""
    if (BUNDLE_DIR / BUNDLE_ENTRY).is_file():
        return
    problem = "the GraphiQL bundle is not built (make graphiql)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (required under CI=true)")
    print(f"\nskipping: {problem}")
    pytest.skip(problem)


bundle_built = pytest.mark.usefixtures("bundle")


def demo_admin_key(secret: str) -> str:
    return next(key.key for key in demo.demo_keys(secret) if key.mode == Mode.TEST and key.admin)


async def seed_demo(db: Database, secret: str) -> str:
    """Seeds the demo account; returns its standard test key."""
    async with db.transaction() as session:
        keys = await demo.seed_demo(session, secret)
    return next(key.key for key in keys if key.mode == Mode.TEST and not key.admin)


def page_config(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="graphiql-config">(.*?)</script>', page)
    assert match, page
    config: dict[str, Any] = json.loads(match.group(1))
    return config


@pytest.fixture
async def client_for(
    db: Database,
) -> AsyncIterator[Any]:
    """Builds in-process clients for apps with the given settings."""
    clients: list[httpx.AsyncClient] = []

    def build(settings: Settings, **options: Any) -> httpx.AsyncClient:
        app = create_app(settings, database=db, **options)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@bundle_built
async def test_the_page_loads_only_its_own_assets_under_a_strict_csp(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "connect-src 'self' ws://testserver wss://testserver" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    odd_host = await client.get("/graphql", headers={**HTML, "Host": "x; script-src *"})
    assert "script-src *" not in odd_host.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources == ["/graphiql/graphiql.css", "/graphiql/graphiql.js"]
    assert "unpkg" not in response.text
    assert "<script>" not in response.text  # no inline script: the CSP would block it


@bundle_built
@pytest.mark.parametrize(
    ("asset", "media_type"),
    [
        ("graphiql.js", "text/javascript"),
        ("graphiql.css", "text/css"),
        ("editor.worker.js", "text/javascript"),
        ("json.worker.js", "text/javascript"),
        ("graphql.worker.js", "text/javascript"),
    ],
)
async def test_the_bundle_is_served_with_the_same_csp(
    client: httpx.AsyncClient, asset: str, media_type: str
) -> None:
    response = await client.get(f"/graphiql/{asset}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/graphiql/missing.js")).status_code == 404


@bundle_built
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_demo_server_opens_with_the_demo_test_key_and_an_example(
    settings: Settings, db: Database, client_for: Any
) -> None:
    demo_key = await seed_demo(db, INSECURE_DEV_SECRET)
    client = client_for(settings.model_copy(update={"secret_key": DEV_SECRET}))
    config = page_config((await client.get("/graphql", headers=HTML)).text)
    assert json.loads(config["headers"]) == {"Authorization": f"Bearer {demo_key}"}
    assert "query Welcome" in config["exampleOperation"]
    assert "subscription OrderUpdates" in config["exampleOperation"]
    assert config["endpoint"] == "/graphql"


@bundle_built
async def test_no_key_is_prefilled_with_a_real_secret(
    settings: Settings, db: Database, client_for: Any
) -> None:
    # The suite's own secret on SQLite and on PostgreSQL: not the demo server.
    demo_key = await seed_demo(db, settings.secret_key.get_secret_value())
    page = (await client_for(settings).get("/graphql", headers=HTML)).text
    assert page_config(page)["headers"] is None
    assert demo_key not in page
    assert "cg_test_" not in page


@bundle_built
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_no_key_is_prefilled_outside_sqlite_even_with_the_development_secret(
    settings: Settings, db: Database, client_for: Any
) -> None:
    await seed_demo(db, INSECURE_DEV_SECRET)
    debug = settings.model_copy(update={"secret_key": DEV_SECRET, "debug": True})
    page = (await client_for(debug).get("/graphql", headers=HTML)).text
    assert page_config(page)["headers"] is None
    assert "cg_test_" not in page


@bundle_built
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_key_is_prefilled_once_the_demo_key_is_revoked(
    settings: Settings, db: Database, client_for: Any
) -> None:
    await seed_demo(db, INSECURE_DEV_SECRET)
    client = client_for(settings.model_copy(update={"secret_key": DEV_SECRET}))
    admin = GraphQLClient(client, demo_admin_key(INSECURE_DEV_SECRET))
    keys = await admin.execute("{ apiKeys { edges { node { id admin } } } }")
    [standard] = [
        edge["node"] for edge in keys["data"]["apiKeys"]["edges"] if not edge["node"]["admin"]
    ]
    revoked = await admin.execute(
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { apiKey { revokedAt } } }",
        id=standard["id"],
    )
    assert revoked["data"]["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    page = (await client.get("/graphql", headers=HTML)).text
    assert page_config(page)["headers"] is None


async def test_an_unbuilt_bundle_gets_a_page_saying_how_to_build_it(
    settings: Settings, client_for: Any, tmp_path: Path
) -> None:
    client = client_for(settings, graphiql_bundle=tmp_path / "nothing-here")
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 503
    assert "GraphiQL is not built" in response.text
    assert "make graphiql" in response.text
    assert (await client.get("/graphiql/graphiql.js")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
