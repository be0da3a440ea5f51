"""A request scoped to a subaccount sees that subaccount and none of its siblings; an
unscoped request of the account sees them all."""

import httpx

from tests.conftest import GraphQLClient

CREATE = """mutation($name: String!) {
  createSubaccount(input: {name: $name}) { subaccount { id name } }
}"""
LIST = "{ subaccounts { totalCount edges { node { id name } } } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on Subaccount { name } } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Subaccount { name } } }"


async def test_a_scoped_request_sees_only_its_own_subaccount(
    client: httpx.AsyncClient, gql: GraphQLClient, test_key: str
) -> None:
    a = (await gql.execute(CREATE, name="Client A"))["data"]["createSubaccount"]["subaccount"]
    b = (await gql.execute(CREATE, name="Client B"))["data"]["createSubaccount"]["subaccount"]
    scoped = GraphQLClient(client, test_key, **{"X-Subaccount-Id": a["id"]})

    listing = (await scoped.execute(LIST))["data"]["subaccounts"]
    assert listing["totalCount"] == 1
    assert [edge["node"] for edge in listing["edges"]] == [a]
    assert (await scoped.execute(NODE, id=b["id"]))["data"]["node"] is None
    assert (await scoped.execute(NODE, id=a["id"]))["data"]["node"] == a
    siblings = await scoped.execute(NODES, ids=[a["id"], b["id"]])
    assert "Client B" not in str(siblings)

    everything = (await gql.execute(LIST))["data"]["subaccounts"]
    assert everything["totalCount"] == 2
    assert {edge["node"]["name"] for edge in everything["edges"]} == {"Client A", "Client B"}
    assert (await gql.execute(NODE, id=b["id"]))["data"]["node"] == b
