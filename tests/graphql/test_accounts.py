"""The viewer, subaccounts and API keys through GraphQL."""

import httpx

from app.accounts import service
from app.accounts.models import AccountStatus, Mode
from app.db import Database
from tests.conftest import GraphQLClient, make_account, make_key

CREATE_SUBACCOUNT = """
mutation($name: String!) {
  createSubaccount(input: {name: $name, externalRef: "crm-1"}) {
    subaccount { id name externalRef }
    userErrors { code field message }
  }
}"""
VIEWER = "{ viewer { account { id name slug status } mode admin subaccount { id name } } }"


async def test_viewer_describes_the_key(gql: GraphQLClient) -> None:
    viewer = (await gql.execute(VIEWER))["data"]["viewer"]
    assert viewer["account"]["slug"] == "acme"
    assert viewer["account"]["status"] == "ACTIVE"
    assert viewer["mode"] == "TEST"
    assert viewer["admin"] is False
    assert viewer["subaccount"] is None


async def test_suspended_account_can_still_read_and_sees_its_status(
    db: Database, gql: GraphQLClient
) -> None:
    async with db.transaction() as session:
        await service.set_account_status(session, "acme", AccountStatus.SUSPENDED)
    viewer = (await gql.execute(VIEWER))["data"]["viewer"]
    assert viewer["account"]["status"] == "SUSPENDED"


async def test_create_subaccount_and_scope_requests_to_it(
    client: httpx.AsyncClient, gql: GraphQLClient, test_key: str
) -> None:
    created = (await gql.execute(CREATE_SUBACCOUNT, name="Client A"))["data"]["createSubaccount"]
    assert created["userErrors"] == []
    subaccount = created["subaccount"]
    assert subaccount["name"] == "Client A"
    assert subaccount["externalRef"] == "crm-1"

    scoped = GraphQLClient(client, test_key, **{"X-Subaccount-Id": subaccount["id"]})
    viewer = (await scoped.execute(VIEWER))["data"]["viewer"]
    assert viewer["subaccount"] == {"id": subaccount["id"], "name": "Client A"}

    refused = (await scoped.execute(CREATE_SUBACCOUNT, name="Nested"))["data"]["createSubaccount"]
    assert refused["subaccount"] is None
    assert refused["userErrors"][0]["code"] == "FORBIDDEN"


async def test_subaccount_of_another_account_or_mode_is_403_and_nothing_runs(
    db: Database, client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    created = (await gql.execute(CREATE_SUBACCOUNT, name="Client A"))["data"]["createSubaccount"]
    subaccount_id = created["subaccount"]["id"]
    other = await make_account(db, "other")
    _, other_key = await make_key(db, other)
    async with db.session() as session:
        acme = await service.get_account_by_slug(session, "acme")
    _, acme_live = await make_key(db, acme, Mode.LIVE)
    for key in (other_key, acme_live):
        intruder = GraphQLClient(client, key, **{"X-Subaccount-Id": subaccount_id})
        response = await intruder.post(CREATE_SUBACCOUNT, name="Sneaky")
        assert response.status_code == 403
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    subaccounts = (await gql.execute("{ subaccounts { totalCount } }"))["data"]["subaccounts"]
    assert subaccounts["totalCount"] == 1


async def test_subaccounts_are_separated_by_mode_and_account(
    db: Database, client: httpx.AsyncClient, gql: GraphQLClient, live_key: str
) -> None:
    await gql.execute(CREATE_SUBACCOUNT, name="Test client")
    live = GraphQLClient(client, live_key)
    await live.execute(CREATE_SUBACCOUNT, name="Live client")
    other = await make_account(db, "other")
    _, other_key = await make_key(db, other)
    query = "{ subaccounts { totalCount edges { node { name } } } }"
    names = {
        "test": (await gql.execute(query))["data"]["subaccounts"],
        "live": (await live.execute(query))["data"]["subaccounts"],
        "other": (await GraphQLClient(client, other_key).execute(query))["data"]["subaccounts"],
    }
    assert [e["node"]["name"] for e in names["test"]["edges"]] == ["Test client"]
    assert [e["node"]["name"] for e in names["live"]["edges"]] == ["Live client"]
    assert names["other"]["totalCount"] == 0


async def test_node_lookup_hides_other_accounts_subaccounts(
    db: Database, client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    created = (await gql.execute(CREATE_SUBACCOUNT, name="Client A"))["data"]["createSubaccount"]
    query = "query($id: ID!) { node(id: $id) { id ... on Subaccount { name } } }"
    own = (await gql.execute(query, id=created["subaccount"]["id"]))["data"]["node"]
    assert own["name"] == "Client A"
    other = await make_account(db, "other")
    _, other_key = await make_key(db, other)
    foreign = await GraphQLClient(client, other_key).execute(query, id=created["subaccount"]["id"])
    assert foreign["data"]["node"] is None


async def test_subaccounts_page_newest_first_with_cursors(gql: GraphQLClient) -> None:
    for index in range(5):
        await gql.execute(CREATE_SUBACCOUNT, name=f"Client {index}")
    query = """query($first: Int, $after: String, $last: Int, $before: String) {
      subaccounts(first: $first, after: $after, last: $last, before: $before) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { node { name } }
      }
    }"""
    first = (await gql.execute(query, first=2))["data"]["subaccounts"]
    assert first["totalCount"] == 5
    assert [e["node"]["name"] for e in first["edges"]] == ["Client 4", "Client 3"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = (await gql.execute(query, first=2, after=first["pageInfo"]["endCursor"]))["data"]
    assert [e["node"]["name"] for e in second["subaccounts"]["edges"]] == ["Client 2", "Client 1"]
    rest = await gql.execute(query, first=10, after=second["subaccounts"]["pageInfo"]["endCursor"])
    assert [e["node"]["name"] for e in rest["data"]["subaccounts"]["edges"]] == ["Client 0"]
    assert rest["data"]["subaccounts"]["pageInfo"]["hasNextPage"] is False
    back = await gql.execute(query, last=2, before=second["subaccounts"]["pageInfo"]["startCursor"])
    assert [e["node"]["name"] for e in back["data"]["subaccounts"]["edges"]] == [
        "Client 4",
        "Client 3",
    ]
    assert back["data"]["subaccounts"]["pageInfo"]["hasPreviousPage"] is False


async def test_bad_paging_arguments_are_typed_errors(gql: GraphQLClient) -> None:
    for arguments in ("first: 101", "first: -1", 'after: "garbage"', "first: 1, last: 1"):
        body = await gql.execute(f"{{ subaccounts({arguments}) {{ totalCount }} }}")
        assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_create_subaccount_validates_its_input(gql: GraphQLClient) -> None:
    for name in ("", "   ", "x" * 201):
        payload = (await gql.execute(CREATE_SUBACCOUNT, name=name))["data"]["createSubaccount"]
        assert payload["subaccount"] is None
        assert payload["userErrors"] == [
            {
                "code": "INVALID_INPUT",
                "field": "name",
                "message": payload["userErrors"][0]["message"],
            }
        ]
    assert (await gql.execute("{ subaccounts { totalCount } }"))["data"]["subaccounts"][
        "totalCount"
    ] == 0


async def test_api_key_management_needs_the_admin_role(
    client: httpx.AsyncClient, gql: GraphQLClient, admin_key: str
) -> None:
    create = """mutation {
      createApiKey(input: {name: "bot", admin: true}) { apiKey { id } secret userErrors { code } }
    }"""
    refused = (await gql.execute(create))["data"]["createApiKey"]
    assert refused == {"apiKey": None, "secret": None, "userErrors": [{"code": "FORBIDDEN"}]}
    listing = await gql.execute("{ apiKeys { totalCount } }")
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    admin = GraphQLClient(client, admin_key)
    created = (await admin.execute(create))["data"]["createApiKey"]
    assert created["userErrors"] == []
    assert created["secret"].startswith("cg_test_")
    keys = await admin.execute(
        "{ apiKeys { totalCount edges { node { name prefix admin mode } } } }"
    )
    nodes = [edge["node"] for edge in keys["data"]["apiKeys"]["edges"]]
    assert nodes[0] == {
        "name": "bot",
        "prefix": created["secret"][:12],
        "admin": True,
        "mode": "TEST",
    }
    assert keys["data"]["apiKeys"]["totalCount"] == 3  # test key, admin key, bot


async def test_revoke_unknown_or_malformed_key_id_is_a_typed_error(
    client: httpx.AsyncClient, admin_key: str
) -> None:
    admin = GraphQLClient(client, admin_key)
    mutation = """mutation($id: ID!) {
      revokeApiKey(input: {id: $id}) { apiKey { id } userErrors { code field } }
    }"""
    missing = "QXBpS2V5OjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA=="  # ApiKey:0000…
    for key_id, code in ((missing, "NOT_FOUND"), ("U3ViYWNjb3VudDox", "INVALID_INPUT")):
        payload = (await admin.execute(mutation, id=key_id))["data"]["revokeApiKey"]
        assert payload == {"apiKey": None, "userErrors": [{"code": code, "field": "id"}]}
