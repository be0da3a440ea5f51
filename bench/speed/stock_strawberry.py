"""Stock Strawberry over in-memory objects: a schema of the nested read's shape whose data
is already in Python objects (read from our server's answer), nothing else in the way.

    python -m bench.speed.stock_strawberry RESPONSE_FILE --port N
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from bench.speed.servers import serve_like_ours

RESPONSE_FILE = "BENCH_RESPONSE_FILE"


@strawberry.type
class Mass:
    amount: str
    unit: str


@strawberry.type
class Money:
    amount: str
    currency: str


@strawberry.type
class Certificate:
    id: str
    public_url: str


@strawberry.type
class Project:
    id: strawberry.ID
    name: str


@strawberry.type
class Bundle:
    id: strawberry.ID
    name: str


@strawberry.type
class CreditBatch:
    vintage: int


@strawberry.type
class Allocation:
    mass: Mass
    project: Project
    bundle: Bundle
    credit_batch: CreditBatch


@strawberry.type
class Order:
    id: strawberry.ID
    state: str
    created_at: str
    mass: Mass
    price: Money
    certificate: Certificate | None
    allocations: list[Allocation]


@strawberry.type
class OrderEdge:
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]


@strawberry.type
class Query:
    edges_in_memory: strawberry.Private[list[OrderEdge]]

    @strawberry.field
    async def orders(self, first: int) -> OrderConnection:
        return OrderConnection(edges=self.edges_in_memory[:first])


def order_from_json(node: dict[str, Any]) -> Order:
    certificate = node["certificate"]
    return Order(
        id=strawberry.ID(node["id"]),
        state=node["state"],
        created_at=node["createdAt"],
        mass=Mass(**node["mass"]),
        price=Money(**node["price"]),
        certificate=Certificate(id=certificate["id"], public_url=certificate["publicUrl"])
        if certificate
        else None,
        allocations=[
            Allocation(
                mass=Mass(**allocation["mass"]),
                project=Project(**allocation["project"]),
                bundle=Bundle(**allocation["bundle"]),
                credit_batch=CreditBatch(**allocation["creditBatch"]),
            )
            for allocation in node["allocations"]
        ],
    )


class InMemoryGraphQL(GraphQL[None, Query]):
    def __init__(self, root: Query) -> None:
        super().__init__(strawberry.Schema(query=Query))
        self.root = root

    async def get_root_value(self, request: Any) -> Query:
        return self.root


def create_app() -> Starlette:
    answer = json.loads(Path(os.environ[RESPONSE_FILE]).read_bytes())
    edges = [OrderEdge(node=order_from_json(e["node"])) for e in answer["data"]["orders"]["edges"]]

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/graphql", InMemoryGraphQL(Query(edges_in_memory=edges)), methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


if __name__ == "__main__":
    os.environ[RESPONSE_FILE] = sys.argv[1]
    serve_like_ours(
        "bench.speed.stock_strawberry:create_app", int(sys.argv[sys.argv.index("--port") + 1])
    )
