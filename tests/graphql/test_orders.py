"""Orders through GraphQL: creation by mass, value, estimate and ride; fulfilment, allocation
and certificates; cancellation; idempotency; validation; suspended accounts."""

import json
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import func
from sqlmodel import select

from app.accounts import service as accounts
from app.accounts.models import Account, AccountStatus, Mode
from app.catalog import service as catalog
from app.config import Settings
from app.db import Database
from app.emissions.models import Estimate
from app.events.models import Event
from app.offsets.models import OffsetOrder
from tests.conftest import GraphQLClient
from tests.offsets_fixtures import (
    fulfil,
    gid,
    make_subaccount,
    place_order,
    principal_for,
    seed_catalog,
)

USER_ERRORS = "userErrors { code field message }"
ORDER_FIELDS = """
  id state mass { amount unit } price { amount currency } certificateId description metadata
  idempotencyKey callbackUrl createdAt fulfilledAt cancelledAt portfolio { id }
  allocations {
    bundle { id } project { id name } mass { amount unit } serialRange
    creditBatch { id vintage serialPrefix remaining { amount } }
  }
  projects { id name }
  certificate { id publicUrl downloadUrl issuedAt }
  history { previousState state at }
"""
BY_MASS = f"""mutation($input: CreateOrderByMassInput!) {{
  createOrderByMass(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"""
BY_VALUE = f"""mutation($input: CreateOrderByValueInput!) {{
  createOrderByValue(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"""
BY_ESTIMATE = f"""mutation($input: CreateOrderByEstimateInput!) {{
  createOrderByEstimate(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"""
RIDE = f"""mutation($input: CreateRideOrderInput!) {{
  createRideOrder(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"""
CANCEL = f"""mutation($input: CancelOrderInput!) {{
  cancelOrder(input: $input) {{ order {{ {ORDER_FIELDS} }} {USER_ERRORS} }} }}"""
ORDER = f"query($id: ID!) {{ order(id: $id) {{ {ORDER_FIELDS} }} }}"
ESTIMATE_RIDE = """mutation($km: Decimal!) {
  estimateGroundTransport(input: {distanceKm: $km, vehicleType: PASSENGER_CAR_VAN_OR_SUV}) {
    estimate { id totalEmission { amount unit } } userErrors { code field message } } }"""
ONE_TONNE = {"amount": "1", "unit": "T"}


async def run(gql: GraphQLClient, mutation: str, **input: object) -> dict:  # type: ignore[type-arg]
    body = await gql.execute(mutation, input=input)
    assert "errors" not in body, body
    return next(iter(body["data"].values()))  # type: ignore[no-any-return]


async def created(gql: GraphQLClient, mutation: str, **input: object) -> dict:  # type: ignore[type-arg]
    payload = await run(gql, mutation, **input)
    assert payload["userErrors"] == [], payload
    return payload["order"]  # type: ignore[no-any-return]


def refused(payload: dict) -> tuple[str, str | None]:  # type: ignore[type-arg]
    assert payload["order"] is None, payload
    assert len(payload["userErrors"]) == 1, payload
    assert payload["userErrors"][0]["message"]
    return payload["userErrors"][0]["code"], payload["userErrors"][0]["field"]


async def read(gql: GraphQLClient, order_id: str) -> dict:  # type: ignore[type-arg]
    return (await gql.execute(ORDER, id=order_id))["data"]["order"]  # type: ignore[no-any-return]


async def rows(db: Database, model: object) -> int:
    async with db.session() as session:
        statement = select(func.count()).select_from(model)  # type: ignore[call-overload]
        return int((await session.exec(statement)).one())


async def remaining(gql: GraphQLClient, batch: uuid.UUID) -> str:
    query = "query($id: ID!) { node(id: $id) { ... on CreditBatch { remaining { amount } } } }"
    node = (await gql.execute(query, id=gid("CreditBatch", batch)))["data"]["node"]
    return node["remaining"]["amount"]  # type: ignore[no-any-return]


def history(order: dict) -> list[tuple[str | None, str]]:  # type: ignore[type-arg]
    return [(change["previousState"], change["state"]) for change in order["history"]]


async def estimate_ride(gql: GraphQLClient, km: str) -> dict:  # type: ignore[type-arg]
    body = await gql.execute(ESTIMATE_RIDE, km=km)
    payload = body["data"]["estimateGroundTransport"]
    assert payload["userErrors"] == [], payload
    return payload["estimate"]  # type: ignore[no-any-return]


def grams_of_estimate(estimate: dict) -> int:  # type: ignore[type-arg]
    """An estimate's kg (to the milligram) rounded up to the gram."""
    assert estimate["totalEmission"]["unit"] == "KG"
    kilograms = Decimal(estimate["totalEmission"]["amount"])
    return int((kilograms * 1000).to_integral_value(rounding="ROUND_CEILING"))


async def test_order_by_mass_is_placed_then_fulfilled_with_certificate(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    order = await created(
        gql,
        BY_MASS,
        mass=ONE_TONNE,
        description="Team offsite 2026",
        metadata={"po": "PO-17"},
        callbackUrl="https://hooks.example.com/cg",
        idempotencyKey="order-1",
    )
    assert order["state"] == "PLACED"
    assert order["mass"] == {"amount": "1000.000", "unit": "KG"}
    assert order["price"] == {"amount": "16.00", "currency": "USD"}
    assert order["portfolio"] == {"id": seeded.portfolio_gid}
    assert (order["description"], order["metadata"]) == ("Team offsite 2026", {"po": "PO-17"})
    assert order["callbackUrl"] == "https://hooks.example.com/cg"
    assert order["idempotencyKey"] == "order-1"
    assert order["certificate"] is None
    assert order["certificateId"] is None
    assert (order["fulfilledAt"], order["cancelledAt"]) == (None, None)
    assert (order["allocations"], order["projects"]) == ([], [])
    assert history(order) == [(None, "PLACED")]

    result = await fulfil(db, settings)
    assert (result.fulfilled, result.parked) == (1, 0)

    done = await read(gql, order["id"])
    assert done["state"] == "FULFILLED"
    assert done["price"] == {"amount": "16.00", "currency": "USD"}
    assert done["fulfilledAt"] is not None
    assert done["cancelledAt"] is None
    assert history(done) == [(None, "PLACED"), ("PLACED", "FULFILLED")]
    assert done["history"][0]["at"] <= done["history"][1]["at"]
    certificate = done["certificate"]
    assert certificate is not None
    assert certificate["id"] == done["certificateId"]
    assert len(certificate["id"]) == 32
    assert certificate["publicUrl"].endswith(f"/certificates/{certificate['id']}")
    assert certificate["downloadUrl"] == certificate["publicUrl"] + ".pdf"
    allocations = done["allocations"]
    # Cheap 600 kg from the forest's oldest vintage (2020), premium 400 kg from the DAC batch.
    assert [
        (a["bundle"]["id"], a["project"]["name"], a["creditBatch"]["vintage"], a["mass"]["amount"])
        for a in allocations
    ] == [
        (seeded.cheap_gid, "Rio Doce Forest", 2020, "600.000"),
        (seeded.premium_gid, "Hellisheidi DAC", 2023, "400.000"),
    ]
    assert [a["serialRange"] for a in allocations] == [
        "VCS-1001-2020-000000000000-000000599999",
        "PURO-2002-2023-000000000000-000000399999",
    ]
    assert [a["creditBatch"]["serialPrefix"] for a in allocations] == [
        "VCS-1001-2020",
        "PURO-2002-2023",
    ]
    assert [p["name"] for p in done["projects"]] == ["Rio Doce Forest", "Hellisheidi DAC"]
    assert await remaining(gql, seeded.batches["forest-2020"]) == "400.000"
    assert await remaining(gql, seeded.batches["forest-2022"]) == "2000.000"
    assert await remaining(gql, seeded.batches["dac-2023"]) == "600.000"
    node = await gql.execute(
        "query($id: ID!) { node(id: $id) { __typename ... on Order { state } } }", id=order["id"]
    )
    assert node["data"]["node"] == {"__typename": "Order", "state": "FULFILLED"}


async def test_allocation_takes_oldest_vintages_first_and_serials_never_overlap(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    async with db.transaction() as session:
        forest_only = await catalog.create_portfolio(
            session,
            principal_for(account),
            name="Forest only",
            weights=[(seeded.cheap, Decimal(100))],
        )
    portfolio = gid("Portfolio", forest_only.portfolio.id)
    first = await created(
        gql, BY_MASS, mass={"amount": "1500", "unit": "KG"}, portfolioId=portfolio
    )
    second = await created(
        gql, BY_MASS, mass={"amount": "200", "unit": "KG"}, portfolioId=portfolio
    )
    assert first["price"]["amount"] == "15.00"
    assert (await fulfil(db, settings)).fulfilled == 2
    first, second = await read(gql, first["id"]), await read(gql, second["id"])
    assert [(a["creditBatch"]["vintage"], a["mass"]["amount"]) for a in first["allocations"]] == [
        (2020, "1000.000"),
        (2022, "500.000"),
    ]
    assert sum(Decimal(a["mass"]["amount"]) for a in first["allocations"]) == 1500
    assert [a["serialRange"] for a in first["allocations"]] == [
        "VCS-1001-2020-000000000000-000000999999",
        "VCS-1001-2022-000000000000-000000499999",
    ]
    # The same 2022 batch again: the next serials, no overlap.
    assert [a["serialRange"] for a in second["allocations"]] == [
        "VCS-1001-2022-000000500000-000000699999"
    ]
    assert [p["name"] for p in first["projects"]] == ["Rio Doce Forest"]
    assert await remaining(gql, seeded.batches["forest-2020"]) == "0.000"
    assert await remaining(gql, seeded.batches["forest-2022"]) == "1300.000"
    assert await remaining(gql, seeded.batches["dac-2023"]) == "1000.000"


async def test_order_without_stock_waits_until_a_batch_arrives(
    db: Database,
    account: Account,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    admin_key: str,
) -> None:
    seeded = await seed_catalog(db, account)
    # 3 t: premium needs 1.2 t and its only batch holds 1 t.
    order = await created(gql, BY_MASS, mass={"amount": "3", "unit": "T"})
    assert (await fulfil(db, settings)).parked == 1
    waiting = await read(gql, order["id"])
    assert waiting["state"] == "PLACED"
    assert (waiting["allocations"], waiting["certificate"]) == ([], None)
    # Nothing was taken from any batch, not even the forest's, which had enough.
    assert await remaining(gql, seeded.batches["forest-2020"]) == "1000.000"
    assert await remaining(gql, seeded.batches["dac-2023"]) == "1000.000"
    assert (await fulfil(db, settings)).fulfilled == 0

    added = await GraphQLClient(client, admin_key).execute(
        """mutation($input: AddCreditBatchInput!) { addCreditBatch(input: $input) {
          creditBatch { id } userErrors { code } } }""",
        input={
            "projectId": gid("Project", seeded.dac),
            "vintage": 2024,
            "serialPrefix": "PURO-2002-2024",
            "quantity": {"amount": "0.5", "unit": "T"},
        },
    )
    assert added["data"]["addCreditBatch"]["userErrors"] == []
    assert (await fulfil(db, settings)).fulfilled == 1
    done = await read(gql, order["id"])
    assert done["state"] == "FULFILLED"
    premium = [a for a in done["allocations"] if a["bundle"]["id"] == seeded.premium_gid]
    assert [(a["creditBatch"]["vintage"], a["mass"]["amount"]) for a in premium] == [
        (2023, "1000.000"),
        (2024, "200.000"),
    ]
    assert sum(Decimal(a["mass"]["amount"]) for a in done["allocations"]) == 3000


async def test_cancel_order(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    placed = await created(gql, BY_MASS, mass={"amount": "10", "unit": "KG"})
    cancelled = await created(gql, CANCEL, id=placed["id"])
    assert cancelled["id"] == placed["id"]
    assert cancelled["state"] == "CANCELLED"
    assert cancelled["cancelledAt"] is not None
    assert (cancelled["fulfilledAt"], cancelled["certificate"]) == (None, None)
    assert history(cancelled) == [(None, "PLACED"), ("PLACED", "CANCELLED")]
    assert (await fulfil(db, settings)).fulfilled == 0
    assert (await read(gql, placed["id"]))["state"] == "CANCELLED"
    assert await remaining(gql, seeded.batches["forest-2020"]) == "1000.000"
    assert refused(await run(gql, CANCEL, id=placed["id"])) == ("ORDER_NOT_CANCELLABLE", "id")

    fulfilled = await created(gql, BY_MASS, mass={"amount": "10", "unit": "KG"})
    await fulfil(db, settings)
    assert refused(await run(gql, CANCEL, id=fulfilled["id"])) == ("ORDER_NOT_CANCELLABLE", "id")
    assert (await read(gql, fulfilled["id"]))["state"] == "FULFILLED"

    assert refused(await run(gql, CANCEL, id=gid("Order", uuid.uuid4()))) == ("NOT_FOUND", "id")
    assert refused(await run(gql, CANCEL, id=seeded.portfolio_gid)) == ("INVALID_INPUT", "id")
    async with db.session() as session:
        events = (await session.exec(select(Event.type).order_by(Event.position))).all()
    assert sorted(events) == sorted(
        ["order.placed", "order.cancelled", "order.placed", "order.fulfilled"]
    )


async def test_order_by_value(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    quote = (
        await gql.execute(
            """query { quoteByValue(input: {value: {amount: "16.00", currency: "USD"}}) {
              quote { mass { amount } totalCost { amount } } } }"""
        )
    )["data"]["quoteByValue"]["quote"]
    order = await created(gql, BY_VALUE, value={"amount": "16.00", "currency": "usd"})
    assert order["state"] == "PLACED"
    assert order["mass"]["amount"] == quote["mass"]["amount"]
    assert order["price"] == {"amount": quote["totalCost"]["amount"], "currency": "USD"}
    assert Decimal(order["price"]["amount"]) <= 16
    assert (await fulfil(db, settings)).fulfilled == 1
    assert (await read(gql, order["id"]))["state"] == "FULFILLED"
    cases = [
        ({"amount": "16", "currency": "EUR"}, ("INVALID_INPUT", "value.currency")),
        ({"amount": "16", "currency": "XYZ"}, ("INVALID_INPUT", "value.currency")),
        ({"amount": "1.001", "currency": "USD"}, ("INVALID_INPUT", "value.amount")),
        ({"amount": "16000000.01", "currency": "USD"}, ("INVALID_INPUT", "value.amount")),
    ]
    for value, expected in cases:
        assert refused(await run(gql, BY_VALUE, value=value)) == expected, value
    for amount in ("0", "-1"):
        code, field = refused(await run(gql, BY_VALUE, value={"amount": amount, "currency": "USD"}))
        assert field == "value.amount"
        assert code in ("QUANTITY_NOT_POSITIVE", "INVALID_INPUT")
    assert await rows(db, OffsetOrder) == 1


async def test_order_by_mass_bad_mass_and_portfolio(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    cases = [
        ({"amount": "0", "unit": "G"}, ("QUANTITY_NOT_POSITIVE", "mass.amount")),
        ({"amount": "-2", "unit": "T"}, ("QUANTITY_NOT_POSITIVE", "mass.amount")),
        ({"amount": "0.1", "unit": "G"}, ("INVALID_INPUT", "mass.amount")),
        ({"amount": "1000001", "unit": "T"}, ("INVALID_INPUT", "mass.amount")),
    ]
    for mass, expected in cases:
        assert refused(await run(gql, BY_MASS, mass=mass)) == expected, mass
    unknown = await run(gql, BY_MASS, mass=ONE_TONNE, portfolioId=gid("Portfolio", uuid.uuid4()))
    assert refused(unknown) == ("NOT_FOUND", "portfolioId")
    assert await rows(db, OffsetOrder) == 0
    assert await rows(db, Event) == 0


async def test_common_inputs_are_validated_and_nothing_is_written(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    estimate = await estimate_ride(gql, "10")
    quantities = [
        (BY_MASS, {"mass": ONE_TONNE}),
        (BY_VALUE, {"value": {"amount": "5", "currency": "USD"}}),
        (BY_ESTIMATE, {"estimateId": estimate["id"]}),
        (RIDE, {"distanceKm": "10"}),
    ]
    bad = [
        ({"description": "d" * 513}, "description"),
        ({"metadata": {"k": "v" * 505}}, "metadata"),  # 513 bytes as compact JSON
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"metadata": "a string"}, "metadata"),
        ({"metadata": 7}, "metadata"),
        ({"callbackUrl": "ftp://x"}, "callbackUrl"),
        ({"callbackUrl": "not a url"}, "callbackUrl"),
        ({"callbackUrl": "http://"}, "callbackUrl"),
        ({"callbackUrl": "https://example.com/" + "x" * 2048}, "callbackUrl"),
        ({"idempotencyKey": ""}, "idempotencyKey"),
        ({"idempotencyKey": "k" * 256}, "idempotencyKey"),
    ]
    estimates_before = await rows(db, Estimate)
    for mutation, quantity in quantities:
        for change, field in bad:
            payload = await run(gql, mutation, **quantity, **change)
            assert refused(payload) == ("INVALID_INPUT", field), (mutation[:40], change)
    assert await rows(db, OffsetOrder) == 0
    assert await rows(db, Estimate) == estimates_before  # refused rides stored no estimate
    assert await rows(db, Event) == 0
    # The limits themselves are allowed.
    assert len(json.dumps({"k": "v" * 504}, separators=(",", ":"))) == 512
    edge = await created(
        gql,
        BY_MASS,
        mass=ONE_TONNE,
        description="é" * 512,
        metadata={"k": "v" * 504},
        callbackUrl="http://localhost:8080/hook",
        idempotencyKey="k" * 255,
    )
    assert edge["description"] == "é" * 512
    assert edge["metadata"] == {"k": "v" * 504}


async def test_idempotency_replays_and_conflicts(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    input = {"mass": ONE_TONNE, "idempotencyKey": "abc-123", "metadata": {"a": 1, "b": 2}}
    first = await created(gql, BY_MASS, **input)
    # Same input (key order in metadata is irrelevant) and the same mass in other units.
    again = await created(gql, BY_MASS, **{**input, "metadata": {"b": 2, "a": 1}})
    in_kg = await created(gql, BY_MASS, **{**input, "mass": {"amount": "1000", "unit": "KG"}})
    assert first["id"] == again["id"] == in_kg["id"]
    assert await rows(db, OffsetOrder) == 1
    await fulfil(db, settings)
    replay = await created(gql, BY_MASS, **input)
    assert (replay["id"], replay["state"]) == (first["id"], "FULFILLED")

    for change in (
        {"mass": {"amount": "2", "unit": "T"}},
        {"description": "different"},
        {"metadata": {"a": 1}},
        {"callbackUrl": "https://example.com/x"},
    ):
        conflict = await run(gql, BY_MASS, **{**input, **change})
        assert refused(conflict) == ("IDEMPOTENCY_CONFLICT", "idempotencyKey"), change
    by_value = await run(
        gql, BY_VALUE, value={"amount": "16", "currency": "USD"}, idempotencyKey="abc-123"
    )
    assert refused(by_value) == ("IDEMPOTENCY_CONFLICT", "idempotencyKey")
    assert await rows(db, OffsetOrder) == 1

    lookup = "query($key: String!) { orderByIdempotencyKey(key: $key) { id idempotencyKey } }"
    found = (await gql.execute(lookup, key="abc-123"))["data"]["orderByIdempotencyKey"]
    assert found == {"id": first["id"], "idempotencyKey": "abc-123"}
    assert (await gql.execute(lookup, key="nope"))["data"]["orderByIdempotencyKey"] is None
    other = await created(gql, BY_MASS, mass=ONE_TONNE, idempotencyKey="abc-124")
    assert other["id"] != first["id"]


async def test_order_by_estimate_once_per_estimate(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    unknown = await run(gql, BY_ESTIMATE, estimateId=gid("Estimate", uuid.uuid4()))
    assert refused(unknown) == ("NOT_FOUND", "estimateId")
    estimate = await estimate_ride(gql, "123.4")
    order = await created(gql, BY_ESTIMATE, estimateId=estimate["id"])
    assert order["state"] == "PLACED"
    expected = grams_of_estimate(estimate)
    assert int(Decimal(order["mass"]["amount"]) * 1000) == expected
    assert Decimal(order["mass"]["amount"]) >= Decimal(estimate["totalEmission"]["amount"])
    twice = await run(gql, BY_ESTIMATE, estimateId=estimate["id"])
    assert refused(twice) == ("ESTIMATE_ALREADY_ORDERED", "estimateId")
    await created(gql, CANCEL, id=order["id"])
    again = await created(gql, BY_ESTIMATE, estimateId=estimate["id"])
    assert again["id"] != order["id"]
    assert again["mass"] == order["mass"]
    assert refused(await run(gql, BY_ESTIMATE, estimateId=estimate["id"])) == (
        "ESTIMATE_ALREADY_ORDERED",
        "estimateId",
    )
    assert await rows(db, OffsetOrder) == 2


async def test_order_links_its_estimate(db: Database, account: Account, gql: GraphQLClient) -> None:
    """Issue #3 lists `estimate` among the Order fields."""
    await seed_catalog(db, account)
    estimate = await estimate_ride(gql, "5")
    order = await created(gql, BY_ESTIMATE, estimateId=estimate["id"])
    body = await gql.execute(
        "query($id: ID!) { order(id: $id) { estimate { id } } }", id=order["id"]
    )
    assert body.get("errors") is None, body
    assert body["data"]["order"]["estimate"] == {"id": estimate["id"]}


async def test_deprecated_ride_order_estimates_then_orders(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    order = await created(gql, RIDE, distanceKm="42.5", idempotencyKey="ride-1")
    estimate = await estimate_ride(gql, "42.5")
    assert order["state"] == "PLACED"
    assert int(Decimal(order["mass"]["amount"]) * 1000) == grams_of_estimate(estimate)
    assert await rows(db, OffsetOrder) == 1
    assert (await fulfil(db, settings)).fulfilled == 1
    bad = await run(gql, RIDE, distanceKm="-3")
    assert bad["order"] is None
    assert bad["userErrors"][0]["code"] == "INVALID_INPUT"
    introspection = await gql.execute(
        """{ __type(name: "Mutation") { fields(includeDeprecated: true) {
          name isDeprecated deprecationReason } } }"""
    )
    fields = {f["name"]: f for f in introspection["data"]["__type"]["fields"]}
    assert fields["createRideOrder"]["isDeprecated"] is True
    assert fields["createRideOrder"]["deprecationReason"] == (
        "Use estimateGroundTransport then createOrderByEstimate"
    )
    for name in ("createOrderByMass", "createOrderByValue", "createOrderByEstimate", "cancelOrder"):
        assert fields[name]["isDeprecated"] is False


async def test_ride_order_replays_with_its_idempotency_key(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    order = await created(gql, RIDE, distanceKm="42.5", idempotencyKey="ride-1")
    replay = await run(gql, RIDE, distanceKm="42.5", idempotencyKey="ride-1")
    assert replay["userErrors"] == []
    assert replay["order"]["id"] == order["id"]
    assert await rows(db, OffsetOrder) == 1
    assert await rows(db, Estimate) == 1
    conflict = await run(gql, RIDE, distanceKm="42.6", idempotencyKey="ride-1")
    assert refused(conflict) == ("IDEMPOTENCY_CONFLICT", "idempotencyKey")


async def test_suspended_account_cannot_order_but_can_read(
    db: Database, account: Account, settings: Settings, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    existing = await place_order(db, account, 10_000, idempotency_key="before")
    estimate = await estimate_ride(gql, "10")
    estimates = await rows(db, Estimate)
    async with db.transaction() as session:
        await accounts.set_account_status(session, account.slug, AccountStatus.SUSPENDED)
    attempts = [
        (BY_MASS, {"mass": ONE_TONNE}),
        (BY_VALUE, {"value": {"amount": "5", "currency": "USD"}}),
        (BY_ESTIMATE, {"estimateId": estimate["id"]}),
        (RIDE, {"distanceKm": "10"}),
        (BY_MASS, {"mass": ONE_TONNE, "idempotencyKey": "new"}),
    ]
    for mutation, input in attempts:
        code, _ = refused(await run(gql, mutation, **input))
        assert code == "ACCOUNT_SUSPENDED", mutation[:40]
    assert await rows(db, OffsetOrder) == 1
    assert await rows(db, Estimate) == estimates
    listed = (await gql.execute("{ orders { totalCount edges { node { id state } } } }"))["data"]
    assert listed["orders"]["totalCount"] == 1
    assert listed["orders"]["edges"][0]["node"]["id"] == gid("Order", existing.id)
    quote = await gql.execute(
        '{ quoteByMass(input: {mass: {amount: "1", unit: T}}) { quote { totalCost { amount } } } }'
    )
    assert quote["data"]["quoteByMass"]["quote"]["totalCost"]["amount"] == "16.00"


async def test_malformed_ids_are_typed_user_errors(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    """A malformed id is bad input like any other: INVALID_INPUT naming the field."""
    seeded = await seed_catalog(db, account)
    wrong_type = await run(gql, BY_ESTIMATE, estimateId=seeded.portfolio_gid)
    assert refused(wrong_type) == ("INVALID_INPUT", "estimateId")
    cases = [
        (CANCEL, {"id": "garbage"}, "id"),
        (BY_ESTIMATE, {"estimateId": "garbage"}, "estimateId"),
        (BY_MASS, {"mass": ONE_TONNE, "portfolioId": "garbage"}, "portfolioId"),
    ]
    for mutation, input, field in cases:
        body = await gql.execute(mutation, input=input)
        assert body.get("errors") is None, body
        payload = next(iter(body["data"].values()))
        assert refused(payload) == ("INVALID_INPUT", field)


async def test_estimates_of_other_scopes_cannot_be_ordered(
    db: Database,
    account: Account,
    client: httpx.AsyncClient,
    gql: GraphQLClient,
    test_key: str,
    live_key: str,
) -> None:
    await seed_catalog(db, account)
    await seed_catalog(db, account, Mode.LIVE)
    subaccount = await make_subaccount(db, account)
    scoped = GraphQLClient(
        client,
        test_key,
        **{"X-Subaccount-Id": str(subaccount.id)},
    )
    theirs = await estimate_ride(scoped, "10")
    for requester in (gql, GraphQLClient(client, live_key)):
        payload = await run(requester, BY_ESTIMATE, estimateId=theirs["id"])
        assert refused(payload) == ("NOT_FOUND", "estimateId")
    assert (await created(scoped, BY_ESTIMATE, estimateId=theirs["id"]))["state"] == "PLACED"
    assert await rows(db, OffsetOrder) == 1
