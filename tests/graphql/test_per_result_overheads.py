"""What the schema does once rather than per operation or per streamed result still happens:
validation is cached across operations, and a subscription's every result still passes the
error policy and every extension that has a hook for it (app/graphql/schema.py)."""

from collections.abc import AsyncGenerator, Iterator
from typing import Any

import strawberry
from strawberry.extensions import SchemaExtension

from app.graphql.extensions import ErrorPolicy
from app.graphql.introspection import _validate
from app.graphql.schema import GatewaySchema, get_schema


async def test_a_repeated_document_is_validated_once() -> None:
    schema = get_schema()
    document = "query RepeatedForTheCache { __typename }"
    await schema.execute(document)
    hits = _validate.cache_info().hits
    for _ in range(3):
        result = await schema.execute(document)
        assert result.errors is None
    assert _validate.cache_info().hits == hits + 3


@strawberry.type
class Tick:
    number: int

    @strawberry.field
    def broken(self) -> int | None:
        raise RuntimeError("a secret detail of ours")


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Tick, None]:
        for number in range(3):
            yield Tick(number=number)


class Observer(SchemaExtension):
    seen: list[Any] = []

    def on_stream_result(self, result: Any) -> Iterator[None]:  # type: ignore[override]
        Observer.seen.append(result)
        yield

    def get_results(self) -> dict[str, Any]:
        return {"observed": len(Observer.seen)}


async def test_every_subscription_result_is_classified_and_seen_by_hooking_extensions() -> None:
    schema = GatewaySchema(
        query=Query, subscription=Subscription, extensions=[ErrorPolicy, Observer]
    )
    Observer.seen = []
    stream = await schema.subscribe("subscription { ticks { number broken } }")
    results = [result async for result in stream]  # type: ignore[union-attr]

    assert [result.data for result in results] == [
        {"ticks": {"number": number, "broken": None}} for number in range(3)
    ]
    for result in results:
        assert result.errors is not None
        [error] = result.errors
        assert error.extensions == {"code": "INTERNAL_ERROR"}
        assert "secret" not in error.message
    assert Observer.seen == results
    assert [result.extensions for result in results] == [{"observed": n} for n in range(3)]


async def test_without_stream_hooks_results_carry_only_extensions_that_report() -> None:
    schema = GatewaySchema(query=Query, subscription=Subscription, extensions=[ErrorPolicy])
    stream = await schema.subscribe("subscription { ticks { number } }")
    results = [result async for result in stream]  # type: ignore[union-attr]
    assert [(result.data, result.errors, result.extensions) for result in results] == [
        ({"ticks": {"number": number}}, None, {}) for number in range(3)
    ]
