"""The catalog through GraphQL: admin mutations, their typed errors, and the catalog queries."""

import uuid

import httpx
import pytest

from app.accounts.models import Account, Mode
from app.db import Database
from tests.conftest import GraphQLClient, make_account, make_key
from tests.offsets_fixtures import gid, make_subaccount, seed_catalog

USER_ERRORS = "userErrors { code field message }"
CREATE_PROJECT = f"""
mutation($input: CreateProjectInput!) {{
  createProject(input: $input) {{
    project {{ id name type registry registryId country description availableMass {{ amount }} }}
    {USER_ERRORS}
  }}
}}"""
ADD_BATCH = f"""
mutation($input: AddCreditBatchInput!) {{
  addCreditBatch(input: $input) {{
    creditBatch {{
      id vintage serialPrefix quantity {{ amount unit }} remaining {{ amount unit }}
      project {{ id name }}
    }}
    {USER_ERRORS}
  }}
}}"""
CREATE_BUNDLE = f"""
mutation($input: CreateBundleInput!) {{
  createBundle(input: $input) {{
    bundle {{
      id name description unitPrice {{ amount currency }} availableMass {{ amount unit }}
      projects {{ name }}
    }}
    {USER_ERRORS}
  }}
}}"""
CREATE_PORTFOLIO = f"""
mutation($input: CreatePortfolioInput!) {{
  createPortfolio(input: $input) {{
    portfolio {{ id name currency isDefault bundles {{ weight bundle {{ id name }} }} }}
    {USER_ERRORS}
  }}
}}"""
SET_DEFAULT = f"""
mutation($input: SetDefaultPortfolioInput!) {{
  setDefaultPortfolio(input: $input) {{ portfolio {{ id isDefault }} {USER_ERRORS} }}
}}"""
COUNTS = "{ projects { totalCount } bundles { totalCount } portfolios { totalCount } }"
PROJECT_INPUT = {
    "name": "Rio Doce Forest",
    "type": "REFORESTATION",
    "registry": "Verra",
    "registryId": "VCS-4821",
    "country": "BR",
    "description": "Native species.",
}


@pytest.fixture
def admin(client: httpx.AsyncClient, admin_key: str) -> GraphQLClient:
    return GraphQLClient(client, admin_key)


async def _mutate(gql: GraphQLClient, mutation: str, name: str, /, **input: object) -> dict:  # type: ignore[type-arg]
    body = await gql.execute(mutation, input=input)
    assert "errors" not in body, body
    return body["data"][name]  # type: ignore[no-any-return]


def _error(payload: dict) -> tuple[str, str | None]:  # type: ignore[type-arg]
    assert len(payload["userErrors"]) == 1, payload
    error = payload["userErrors"][0]
    assert error["message"]
    return error["code"], error["field"]


async def _counts(gql: GraphQLClient) -> dict[str, int]:
    data = (await gql.execute(COUNTS))["data"]
    return {name: data[name]["totalCount"] for name in ("projects", "bundles", "portfolios")}


async def test_build_a_catalog_end_to_end(admin: GraphQLClient) -> None:
    created = await _mutate(admin, CREATE_PROJECT, "createProject", **PROJECT_INPUT)
    assert created["userErrors"] == []
    project = created["project"]
    assert project["name"] == "Rio Doce Forest"
    assert (project["type"], project["registry"], project["registryId"]) == (
        "REFORESTATION",
        "Verra",
        "VCS-4821",
    )
    assert project["country"] == "BR"
    assert project["availableMass"]["amount"] == "0.000"

    batch = await _mutate(
        admin,
        ADD_BATCH,
        "addCreditBatch",
        projectId=project["id"],
        vintage=2021,
        serialPrefix="VCS-4821-2021",
        quantity={"amount": "1.5", "unit": "T"},
    )
    assert batch["userErrors"] == []
    credit_batch = batch["creditBatch"]
    assert credit_batch["vintage"] == 2021
    assert credit_batch["serialPrefix"] == "VCS-4821-2021"
    assert credit_batch["quantity"] == {"amount": "1500.000", "unit": "KG"}
    assert credit_batch["remaining"] == {"amount": "1500.000", "unit": "KG"}
    assert credit_batch["project"] == {"id": project["id"], "name": "Rio Doce Forest"}

    bundle = await _mutate(
        admin,
        CREATE_BUNDLE,
        "createBundle",
        name="Forests",
        description="Nature-based.",
        unitPrice={"amount": "18.5", "currency": "usd"},
        projectIds=[project["id"]],
    )
    assert bundle["userErrors"] == []
    assert bundle["bundle"]["unitPrice"] == {"amount": "18.50", "currency": "USD"}
    assert bundle["bundle"]["availableMass"] == {"amount": "1500.000", "unit": "KG"}
    assert bundle["bundle"]["projects"] == [{"name": "Rio Doce Forest"}]
    assert bundle["bundle"]["description"] == "Nature-based."

    portfolio = await _mutate(
        admin,
        CREATE_PORTFOLIO,
        "createPortfolio",
        name="Everything",
        bundles=[{"bundleId": bundle["bundle"]["id"], "weight": "100"}],
        isDefault=True,
    )
    assert portfolio["userErrors"] == []
    assert portfolio["portfolio"]["isDefault"] is True
    assert portfolio["portfolio"]["currency"] == "USD"
    [weighted] = portfolio["portfolio"]["bundles"]
    assert float(weighted["weight"]) == 100
    assert weighted["bundle"] == {"id": bundle["bundle"]["id"], "name": "Forests"}
    assert await _counts(admin) == {"projects": 1, "bundles": 1, "portfolios": 1}


async def test_set_default_portfolio_moves_the_flag(
    db: Database, account: Account, admin: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    other = await _mutate(
        admin,
        CREATE_PORTFOLIO,
        "createPortfolio",
        name="Premium only",
        bundles=[{"bundleId": seeded.premium_gid, "weight": "100.00"}],
    )
    assert other["portfolio"]["isDefault"] is False
    switched = await _mutate(
        admin, SET_DEFAULT, "setDefaultPortfolio", portfolioId=other["portfolio"]["id"]
    )
    assert switched == {
        "portfolio": {"id": other["portfolio"]["id"], "isDefault": True},
        "userErrors": [],
    }
    listed = (await admin.execute("{ portfolios { edges { node { id name isDefault } } } }"))[
        "data"
    ]["portfolios"]["edges"]
    # Newest first; exactly one default.
    assert [(e["node"]["name"], e["node"]["isDefault"]) for e in listed] == [
        ("Premium only", True),
        ("Default mix", False),
    ]
    unknown = await _mutate(
        admin, SET_DEFAULT, "setDefaultPortfolio", portfolioId=gid("Portfolio", uuid.uuid4())
    )
    assert unknown["portfolio"] is None
    assert _error(unknown) == ("NOT_FOUND", "portfolioId")


async def test_catalog_mutations_are_admin_only(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    attempts = [
        (CREATE_PROJECT, "createProject", {**PROJECT_INPUT, "registryId": "VCS-9"}),
        (
            ADD_BATCH,
            "addCreditBatch",
            {
                "projectId": gid("Project", seeded.forest),
                "vintage": 2024,
                "serialPrefix": "X-1",
                "quantity": {"amount": "1", "unit": "T"},
            },
        ),
        (
            CREATE_BUNDLE,
            "createBundle",
            {
                "name": "B",
                "unitPrice": {"amount": "1", "currency": "USD"},
                "projectIds": [gid("Project", seeded.forest)],
            },
        ),
        (
            CREATE_PORTFOLIO,
            "createPortfolio",
            {"name": "P", "bundles": [{"bundleId": seeded.cheap_gid, "weight": "100"}]},
        ),
        (SET_DEFAULT, "setDefaultPortfolio", {"portfolioId": seeded.portfolio_gid}),
    ]
    for mutation, name, input in attempts:
        payload = await _mutate(gql, mutation, name, **input)
        assert _error(payload) == ("FORBIDDEN", None), name
    assert await _counts(gql) == {"projects": 2, "bundles": 2, "portfolios": 1}
    batches = await gql.execute(
        "query($id: ID!) { project(id: $id) { creditBatches { id } } }",
        id=gid("Project", seeded.forest),
    )
    assert len(batches["data"]["project"]["creditBatches"]) == 2


async def test_create_project_bad_input(
    db: Database, account: Account, admin: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    cases = [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"registry": ""}, "registry"),
        ({"registryId": ""}, "registryId"),
        ({"country": "XX"}, "country"),
        ({"country": "Brazil"}, "country"),
        ({"registryId": "VCS-1001"}, "registryId"),  # the seeded forest's: a duplicate
        ({"description": "d" * 2001}, "description"),
    ]
    for change, field in cases:
        payload = await _mutate(
            admin, CREATE_PROJECT, "createProject", **{**PROJECT_INPUT, **change}
        )
        assert payload["project"] is None
        assert _error(payload) == ("INVALID_INPUT", field), change
    assert (await _counts(admin))["projects"] == 2
    alpha3 = await _mutate(
        admin, CREATE_PROJECT, "createProject", **{**PROJECT_INPUT, "country": "bra"}
    )
    assert alpha3["project"]["country"] == "BR"


async def test_add_credit_batch_bad_input(
    db: Database, account: Account, admin: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    base = {
        "projectId": gid("Project", seeded.dac),
        "vintage": 2024,
        "serialPrefix": "PURO-2002-2024",
        "quantity": {"amount": "1", "unit": "T"},
    }
    cases = [
        ({"vintage": 1989}, "INVALID_INPUT", "vintage"),
        ({"vintage": 2101}, "INVALID_INPUT", "vintage"),
        ({"serialPrefix": ""}, "INVALID_INPUT", "serialPrefix"),
        ({"serialPrefix": "-starts-with-dash"}, "INVALID_INPUT", "serialPrefix"),
        ({"serialPrefix": "has space"}, "INVALID_INPUT", "serialPrefix"),
        ({"serialPrefix": "x" * 101}, "INVALID_INPUT", "serialPrefix"),
        ({"quantity": {"amount": "0", "unit": "T"}}, "INVALID_INPUT", "quantity.amount"),
        ({"quantity": {"amount": "-1", "unit": "KG"}}, "INVALID_INPUT", "quantity.amount"),
        ({"quantity": {"amount": "0.5", "unit": "G"}}, "INVALID_INPUT", "quantity.amount"),
        ({"quantity": {"amount": "1.0000001", "unit": "T"}}, "INVALID_INPUT", "quantity.amount"),
        ({"quantity": {"amount": "1e40", "unit": "T"}}, "INVALID_INPUT", "quantity.amount"),
        ({"projectId": gid("Project", uuid.uuid4())}, "NOT_FOUND", "projectId"),
        ({"projectId": seeded.cheap_gid}, "INVALID_INPUT", "projectId"),
    ]
    for change, code, field in cases:
        payload = await _mutate(admin, ADD_BATCH, "addCreditBatch", **{**base, **change})
        assert payload["creditBatch"] is None
        assert _error(payload) == (code, field), change
    bundles = (await admin.execute("{ bundles { edges { node { availableMass { amount } } } } }"))[
        "data"
    ]["bundles"]["edges"]
    # Premium (newest) still has its 1 t, cheap its 3 t: nothing was added.
    assert [e["node"]["availableMass"]["amount"] for e in bundles] == ["1000.000", "3000.000"]


async def test_create_bundle_bad_input(
    db: Database, account: Account, admin: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    forest = gid("Project", seeded.forest)
    base = {
        "name": "B",
        "unitPrice": {"amount": "10.00", "currency": "USD"},
        "projectIds": [forest],
    }
    cases = [
        ({"name": ""}, "INVALID_INPUT", "name"),
        (
            {"unitPrice": {"amount": "10.005", "currency": "USD"}},
            "INVALID_INPUT",
            "unitPrice.amount",
        ),
        ({"unitPrice": {"amount": "0", "currency": "USD"}}, "INVALID_INPUT", "unitPrice.amount"),
        ({"unitPrice": {"amount": "-3", "currency": "USD"}}, "INVALID_INPUT", "unitPrice.amount"),
        ({"unitPrice": {"amount": "10", "currency": "ABC"}}, "INVALID_INPUT", "unitPrice.currency"),
        ({"unitPrice": {"amount": "10.5", "currency": "JPY"}}, "INVALID_INPUT", "unitPrice.amount"),
        ({"projectIds": []}, "INVALID_INPUT", "projectIds"),
        ({"projectIds": [gid("Project", uuid.uuid4())]}, "NOT_FOUND", "projectIds.0"),
        ({"projectIds": [forest, gid("Project", uuid.uuid4())]}, "NOT_FOUND", "projectIds.1"),
        ({"projectIds": [forest, seeded.cheap_gid]}, "INVALID_INPUT", "projectIds.1"),
        # An absurd price per tonne (beyond 64-bit minor units) is bad input, not a crash.
        (
            {"unitPrice": {"amount": "100000000000000000", "currency": "USD"}},
            "INVALID_INPUT",
            "unitPrice.amount",
        ),
    ]
    for change, code, field in cases:
        payload = await _mutate(admin, CREATE_BUNDLE, "createBundle", **{**base, **change})
        assert payload["bundle"] is None
        assert _error(payload) == (code, field), change
    assert (await _counts(admin))["bundles"] == 2


async def test_create_portfolio_bad_input(
    db: Database, account: Account, admin: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    euro = await _mutate(
        admin,
        CREATE_BUNDLE,
        "createBundle",
        name="Euro forest",
        unitPrice={"amount": "9.00", "currency": "EUR"},
        projectIds=[gid("Project", seeded.forest)],
    )
    euro_id = euro["bundle"]["id"]
    cheap, premium = seeded.cheap_gid, seeded.premium_gid

    def weights(*pairs: tuple[str, str]) -> list[dict[str, str]]:
        return [{"bundleId": bundle, "weight": weight} for bundle, weight in pairs]

    cases = [
        ({"name": ""}, "INVALID_INPUT", "name"),
        ({"bundles": []}, "INVALID_INPUT", "bundles"),
        ({"bundles": weights((cheap, "60"), (premium, "39"))}, "INVALID_INPUT", "bundles"),
        ({"bundles": weights((cheap, "60"), (premium, "41"))}, "INVALID_INPUT", "bundles"),
        ({"bundles": weights((cheap, "0"), (premium, "100"))}, "INVALID_INPUT", "bundles.0.weight"),
        (
            {"bundles": weights((cheap, "-10"), (premium, "110"))},
            "INVALID_INPUT",
            "bundles.0.weight",
        ),
        ({"bundles": weights((cheap, "100.01"))}, "INVALID_INPUT", "bundles.0.weight"),
        (
            {"bundles": weights((cheap, "66.667"), (premium, "33.333"))},
            "INVALID_INPUT",
            "bundles.0.weight",
        ),
        ({"bundles": weights((cheap, "50"), (cheap, "50"))}, "INVALID_INPUT", "bundles"),
        ({"bundles": weights((cheap, "50"), (euro_id, "50"))}, "INVALID_INPUT", "bundles"),
        (
            {"bundles": weights((cheap, "50"), (gid("Bundle", uuid.uuid4()), "50"))},
            "NOT_FOUND",
            "bundles.1.bundleId",
        ),
        (
            {"bundles": weights((cheap, "50"), (gid("Project", seeded.dac), "50"))},
            "INVALID_INPUT",
            "bundles.1.bundleId",
        ),
    ]
    base = {"name": "P", "bundles": weights((cheap, "60"), (premium, "40")), "isDefault": True}
    for change, code, field in cases:
        payload = await _mutate(admin, CREATE_PORTFOLIO, "createPortfolio", **{**base, **change})
        assert payload["portfolio"] is None
        assert _error(payload) == (code, field), change
    listed = await admin.execute("{ portfolios { totalCount edges { node { id isDefault } } } }")
    portfolios = listed["data"]["portfolios"]
    # Nothing written, and the default did not move.
    assert portfolios["totalCount"] == 1
    assert portfolios["edges"][0]["node"] == {"id": seeded.portfolio_gid, "isDefault": True}
    fractional = await _mutate(
        admin,
        CREATE_PORTFOLIO,
        "createPortfolio",
        name="Thirds",
        bundles=weights((cheap, "33.33"), (premium, "66.67")),
    )
    assert fractional["userErrors"] == []
    assert [float(b["weight"]) for b in fractional["portfolio"]["bundles"]] == [33.33, 66.67]


async def test_catalog_queries(db: Database, account: Account, gql: GraphQLClient) -> None:
    seeded = await seed_catalog(db, account)
    query = """{
      projects { totalCount edges { node { name registryId country availableMass { amount unit }
        creditBatches { vintage serialPrefix quantity { amount } remaining { amount } } } } }
      bundles { totalCount edges { node { id name unitPrice { amount currency }
        availableMass { amount unit } projects { name } } } }
      portfolios { totalCount edges { node { id name currency isDefault
        bundles { weight bundle { id name unitPrice { amount } } } } } }
    }"""
    data = (await gql.execute(query))["data"]
    projects = [edge["node"] for edge in data["projects"]["edges"]]
    assert data["projects"]["totalCount"] == 2
    assert [p["name"] for p in projects] == ["Hellisheidi DAC", "Rio Doce Forest"]
    forest = projects[1]
    assert forest["availableMass"] == {"amount": "3000.000", "unit": "KG"}
    assert [(b["vintage"], b["serialPrefix"]) for b in forest["creditBatches"]] == [
        (2020, "VCS-1001-2020"),
        (2022, "VCS-1001-2022"),
    ]
    assert forest["creditBatches"][0]["remaining"] == {"amount": "1000.000"}

    bundles = {edge["node"]["name"]: edge["node"] for edge in data["bundles"]["edges"]}
    assert [edge["node"]["name"] for edge in data["bundles"]["edges"]] == [
        "Premium DAC",
        "Cheap forest",
    ]
    assert bundles["Cheap forest"]["unitPrice"] == {"amount": "10.00", "currency": "USD"}
    assert bundles["Premium DAC"]["unitPrice"] == {"amount": "25.00", "currency": "USD"}
    assert bundles["Cheap forest"]["availableMass"] == {"amount": "3000.000", "unit": "KG"}
    assert bundles["Premium DAC"]["availableMass"] == {"amount": "1000.000", "unit": "KG"}
    assert bundles["Premium DAC"]["projects"] == [{"name": "Hellisheidi DAC"}]

    [portfolio] = [edge["node"] for edge in data["portfolios"]["edges"]]
    assert portfolio["id"] == seeded.portfolio_gid
    assert (portfolio["name"], portfolio["currency"], portfolio["isDefault"]) == (
        "Default mix",
        "USD",
        True,
    )
    assert [(float(b["weight"]), b["bundle"]["id"]) for b in portfolio["bundles"]] == [
        (60.0, seeded.cheap_gid),
        (40.0, seeded.premium_gid),
    ]


async def test_project_by_id_and_node_for_every_catalog_type(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    project = await gql.execute(
        "query($id: ID!) { project(id: $id) { id name } }", id=gid("Project", seeded.dac)
    )
    assert project["data"]["project"] == {
        "id": gid("Project", seeded.dac),
        "name": "Hellisheidi DAC",
    }
    missing = await gql.execute(
        "query($id: ID!) { project(id: $id) { id } }", id=gid("Project", uuid.uuid4())
    )
    assert missing["data"]["project"] is None

    node_query = """query($id: ID!) { node(id: $id) { __typename id
      ... on Project { name } ... on CreditBatch { vintage } ... on Bundle { name }
      ... on Portfolio { name } } }"""
    expected = {
        gid("Project", seeded.forest): ("Project", "name", "Rio Doce Forest"),
        gid("CreditBatch", seeded.batches["dac-2023"]): ("CreditBatch", "vintage", 2023),
        seeded.cheap_gid: ("Bundle", "name", "Cheap forest"),
        seeded.portfolio_gid: ("Portfolio", "name", "Default mix"),
    }
    for global_id, (typename, field, value) in expected.items():
        node = (await gql.execute(node_query, id=global_id))["data"]["node"]
        assert node["__typename"] == typename
        assert node["id"] == global_id
        assert node[field] == value
    for typename in ("Project", "CreditBatch", "Bundle", "Portfolio"):
        unknown = await gql.execute(node_query, id=gid(typename, uuid.uuid4()))
        assert unknown["data"]["node"] is None


async def test_catalog_is_separated_by_mode_and_account(
    db: Database, account: Account, client: httpx.AsyncClient, gql: GraphQLClient, live_key: str
) -> None:
    seeded = await seed_catalog(db, account)
    other = await make_account(db, "other", "Other Ltd")
    _, other_key = await make_key(db, other)
    lookup = """query($p: ID!, $b: ID!, $f: ID!) { project(id: $p) { id }
      bundle: node(id: $b) { id } portfolio: node(id: $f) { id } }"""
    for key in (live_key, other_key):
        outsider = GraphQLClient(client, key)
        assert await _counts(outsider) == {"projects": 0, "bundles": 0, "portfolios": 0}
        found = (
            await outsider.execute(
                lookup, p=gid("Project", seeded.forest), b=seeded.cheap_gid, f=seeded.portfolio_gid
            )
        )["data"]
        assert found == {"project": None, "bundle": None, "portfolio": None}
    live = await seed_catalog(db, account, Mode.LIVE, forest_tonnes=(7, 7))
    live_reader = GraphQLClient(client, live_key)
    bundles = (
        await live_reader.execute("{ bundles { edges { node { id availableMass { amount } } } } }")
    )["data"]["bundles"]["edges"]
    assert {e["node"]["id"] for e in bundles} == {live.cheap_gid, live.premium_gid}
    test_bundles = (
        await gql.execute("{ bundles { edges { node { id availableMass { amount } } } } }")
    )["data"]["bundles"]["edges"]
    assert {e["node"]["id"]: e["node"]["availableMass"]["amount"] for e in test_bundles} == {
        seeded.cheap_gid: "3000.000",
        seeded.premium_gid: "1000.000",
    }


async def test_subaccount_scoped_requests_read_the_catalog(
    db: Database, account: Account, client: httpx.AsyncClient, test_key: str
) -> None:
    seeded = await seed_catalog(db, account)
    subaccount = await make_subaccount(db, account)
    scoped = GraphQLClient(
        client, test_key, **{"X-Subaccount-Id": gid("Subaccount", subaccount.id)}
    )
    assert await _counts(scoped) == {"projects": 2, "bundles": 2, "portfolios": 1}
    portfolio = await scoped.execute(
        "query($id: ID!) { node(id: $id) { ... on Portfolio { isDefault } } }",
        id=seeded.portfolio_gid,
    )
    assert portfolio["data"]["node"] == {"isDefault": True}
