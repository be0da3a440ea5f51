"""Estimates through GraphQL: hand-computed totals, stored factors, listing, scoping, bad input."""

from decimal import Decimal

import httpx
import pytest

from app.db import Database
from app.emissions.calculators import GREAT_CIRCLE_UPLIFT, find_airport, great_circle_km
from app.emissions.service import kg_to_milligrams
from tests.conftest import GraphQLClient, make_account, make_key

ESTIMATE_FIELDS = """
  estimate {
    id kind createdAt inputs
    totalEmission { amount unit }
    factors { factorId source sourceRef unit quantity kgCO2ePerUnit kgCO2e ghgScope }
  }
  userErrors { code field message }
"""
GROUND = (
    "mutation($input: EstimateGroundTransportInput!) { estimateGroundTransport(input: $input) {"
    + ESTIMATE_FIELDS
    + "} }"
)
FLIGHT = (
    "mutation($input: EstimateFlightInput!) { estimateFlight(input: $input) {"
    + ESTIMATE_FIELDS
    + "} }"
)
FREIGHT = (
    "mutation($input: EstimateFreightInput!) { estimateFreight(input: $input) {"
    + ESTIMATE_FIELDS
    + "} }"
)
ELECTRICITY = (
    "mutation($input: EstimateElectricityInput!) { estimateElectricity(input: $input) {"
    + ESTIMATE_FIELDS
    + "} }"
)
ESTIMATES = "{ estimates { totalCount edges { node { id kind totalEmission { amount } } } } }"


def _kg(amount: Decimal) -> str:
    """The API's exact kg text for a calculated amount: milligrams, rounded up."""
    return str((Decimal(kg_to_milligrams(amount)) / 1_000_000).quantize(Decimal("0.000001")))


async def _estimate(gql: GraphQLClient, mutation: str, **input: object) -> dict:  # type: ignore[type-arg]
    body = await gql.execute(mutation, input=input)
    assert "errors" not in body, body
    (payload,) = body["data"].values()
    return payload  # type: ignore[no-any-return]


async def test_100_km_in_the_average_car_is_100_times_the_file_factor(gql: GraphQLClient) -> None:
    payload = await _estimate(gql, GROUND, distanceKm="100", vehicleType="AVERAGE_CAR")

    assert payload["userErrors"] == []
    estimate = payload["estimate"]
    assert estimate["kind"] == "GROUND_TRANSPORT"
    assert estimate["totalEmission"] == {"amount": "16.725000", "unit": "KG"}  # 100 x 0.16725
    assert estimate["factors"] == [
        {
            "factorId": "desnz2025:25_301_3074_4_1",
            "source": "DESNZ GHG conversion factors 2025",
            "sourceRef": "25_301_3074_4_1",
            "unit": "km",
            "quantity": "100",
            "kgCO2ePerUnit": "0.16725",
            "kgCO2e": "16.72500",
            "ghgScope": "3",
        }
    ]
    assert estimate["inputs"] == {
        "distanceKm": "100",
        "vehicleType": "AVERAGE_CAR",
        "fuel": None,
        "passengers": 1,
    }


async def test_coach_passengers_multiply_the_per_passenger_factor(gql: GraphQLClient) -> None:
    payload = await _estimate(gql, GROUND, distanceKm=100, vehicleType="COACH_BUS", passengers=3)

    assert payload["estimate"]["totalEmission"]["amount"] == "8.328000"  # 300 x 0.02776


async def test_a_flight_is_uplifted_great_circle_km_times_the_band_factor(
    gql: GraphQLClient,
) -> None:
    payload = await _estimate(
        gql, FLIGHT, legs=[{"from": "LHR", "to": "JFK"}], cabinClass="ECONOMY", passengers=2
    )

    direct = great_circle_km(find_airport("LHR", "from"), find_airport("JFK", "to"))
    expected = direct * GREAT_CIRCLE_UPLIFT * 2 * Decimal("0.11704")  # long-haul economy, RF
    estimate = payload["estimate"]
    assert estimate["totalEmission"]["amount"] == _kg(expected)
    assert estimate["factors"][0]["factorId"] == "desnz2025:21_316_3170_11_1"
    assert estimate["inputs"]["legs"][0]["haulBand"] == "LONG_HAUL"


async def test_freight_is_tonnes_times_km_times_the_mode_factor(gql: GraphQLClient) -> None:
    payload = await _estimate(
        gql,
        FREIGHT,
        mass={"amount": "1", "unit": "T"},
        legs=[{"mode": "ROAD", "distanceKm": "100"}, {"mode": "SEA", "distanceKm": "1000"}],
    )

    # 100 tonne.km x 0.10163 (HGV) + 1000 tonne.km x 0.01612 (container ship)
    assert payload["estimate"]["totalEmission"]["amount"] == "26.283000"
    assert [f["kgCO2e"] for f in payload["estimate"]["factors"]] == ["10.16300", "16.12000"]


async def test_electricity_is_kwh_times_the_grid_intensity(gql: GraphQLClient) -> None:
    payload = await _estimate(gql, ELECTRICITY, energyKwh="1000", countryCode="GBR")

    assert payload["estimate"]["totalEmission"]["amount"] == "207.050000"  # 1000 x 0.20705
    assert payload["estimate"]["factors"][0]["factorId"] == "grid:GB"
    assert payload["estimate"]["inputs"] == {"energyKwh": "1000", "countryCode": "GB"}


@pytest.mark.parametrize(
    ("mutation", "input", "code", "field"),
    [
        (GROUND, {"distanceKm": "0", "vehicleType": "TAXI"}, "INVALID_INPUT", "distanceKm"),
        (GROUND, {"distanceKm": "-5", "vehicleType": "TAXI"}, "INVALID_INPUT", "distanceKm"),
        (
            GROUND,
            {"distanceKm": "5", "vehicleType": "COACH_BUS", "fuel": "DIESEL"},
            "INVALID_INPUT",
            "fuel",
        ),
        (
            GROUND,
            {"distanceKm": "5", "vehicleType": "COACH_BUS", "passengers": 0},
            "INVALID_INPUT",
            "passengers",
        ),
        (FLIGHT, {"legs": []}, "INVALID_INPUT", "legs"),
        (FLIGHT, {"legs": [{"from": "LHR", "to": "QQQ"}]}, "NOT_FOUND", "legs.0.to"),
        (FLIGHT, {"legs": [{"from": "L1", "to": "JFK"}]}, "INVALID_INPUT", "legs.0.from"),
        (
            FLIGHT,
            {"legs": [{"from": "LHR", "to": "EDI"}], "cabinClass": "FIRST"},
            "INVALID_INPUT",
            "cabinClass",
        ),
        (
            FREIGHT,
            {"mass": {"amount": "0", "unit": "KG"}, "legs": [{"mode": "ROAD", "distanceKm": 1}]},
            "INVALID_INPUT",
            "mass.amount",
        ),
        (
            FREIGHT,
            {"mass": {"amount": "1", "unit": "KG"}, "legs": [{"mode": "SEA", "distanceKm": -1}]},
            "INVALID_INPUT",
            "legs.0.distanceKm",
        ),
        (ELECTRICITY, {"energyKwh": "0", "countryCode": "FR"}, "INVALID_INPUT", "energyKwh"),
        (ELECTRICITY, {"energyKwh": "1", "countryCode": "XX"}, "INVALID_INPUT", "countryCode"),
        (ELECTRICITY, {"energyKwh": "1", "countryCode": "AQ"}, "NOT_FOUND", "countryCode"),
    ],
)
async def test_bad_estimate_input_is_a_typed_user_error_and_stores_nothing(
    gql: GraphQLClient,
    mutation: str,
    input: dict,
    code: str,
    field: str,  # type: ignore[type-arg]
) -> None:
    payload = await _estimate(gql, mutation, **input)

    assert payload["estimate"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)]
    assert (await gql.execute(ESTIMATES))["data"]["estimates"]["totalCount"] == 0


async def test_estimates_are_listed_newest_first_and_fetched_by_id(gql: GraphQLClient) -> None:
    ids = []
    for km in (1, 2, 3):
        payload = await _estimate(gql, GROUND, distanceKm=km, vehicleType="TAXI")
        ids.append(payload["estimate"]["id"])

    listed = (await gql.execute(ESTIMATES))["data"]["estimates"]
    assert listed["totalCount"] == 3
    assert [edge["node"]["id"] for edge in listed["edges"]] == ids[::-1]
    page = (await gql.execute("{ estimates(first: 1) { pageInfo { hasNextPage } } }"))["data"]
    assert page["estimates"]["pageInfo"]["hasNextPage"] is True

    query = "query($id: ID!) { estimate(id: $id) { id kind } node(id: $id) { id } }"
    fetched = (await gql.execute(query, id=ids[0]))["data"]
    assert fetched["estimate"] == {"id": ids[0], "kind": "GROUND_TRANSPORT"}
    assert fetched["node"] == {"id": ids[0]}


async def test_estimates_are_kept_apart_by_account_mode_and_subaccount(
    db: Database, client: httpx.AsyncClient, gql: GraphQLClient, test_key: str, live_key: str
) -> None:
    own = await _estimate(gql, GROUND, distanceKm=10, vehicleType="TAXI")
    estimate_id = own["estimate"]["id"]
    subaccount = (
        await gql.execute('mutation { createSubaccount(input: {name: "A"}) { subaccount { id } } }')
    )["data"]["createSubaccount"]["subaccount"]["id"]
    scoped = GraphQLClient(client, test_key, **{"X-Subaccount-Id": subaccount})
    scoped_estimate = await _estimate(scoped, GROUND, distanceKm=20, vehicleType="TAXI")

    other = await make_account(db, "other")
    _, other_key = await make_key(db, other)
    query = "query($id: ID!) { estimate(id: $id) { id } }"
    for viewer in (GraphQLClient(client, live_key), GraphQLClient(client, other_key), scoped):
        assert (await viewer.execute(query, id=estimate_id))["data"]["estimate"] is None
        listed = (await viewer.execute(ESTIMATES))["data"]["estimates"]["edges"]
        assert estimate_id not in [edge["node"]["id"] for edge in listed]
    scoped_ids = [
        e["node"]["id"] for e in (await scoped.execute(ESTIMATES))["data"]["estimates"]["edges"]
    ]
    assert scoped_ids == [scoped_estimate["estimate"]["id"]]
    assert (await gql.execute(ESTIMATES))["data"]["estimates"]["totalCount"] == 1


async def test_a_malformed_estimate_id_is_no_estimate(gql: GraphQLClient) -> None:
    body = await gql.execute('{ estimate(id: "nonsense") { id } }')

    assert body == {"data": {"estimate": None}, "extensions": body["extensions"]}


@pytest.mark.parametrize(
    ("mutation", "input", "field"),
    [
        (GROUND, {"distanceKm": "5", "vehicleType": "ROCKET"}, "vehicleType"),
        (GROUND, {"distanceKm": "5", "vehicleType": "TAXI", "fuel": "STEAM"}, "fuel"),
        (FLIGHT, {"legs": [{"from": "LHR", "to": "JFK"}], "cabinClass": "LOUNGE"}, "cabinClass"),
        (
            FREIGHT,
            {"mass": {"amount": "1", "unit": "KG"}, "legs": [{"mode": "BOAT", "distanceKm": 1}]},
            "legs.0.mode",
        ),
    ],
)
async def test_values_outside_an_enum_are_refused_before_anything_runs(
    gql: GraphQLClient, mutation: str, input: dict[str, object], field: str
) -> None:
    body = await gql.execute(mutation, input=input)

    assert body["data"] is None
    assert body["errors"][0]["extensions"] == {"code": "BAD_REQUEST", "field": field}
    assert (await gql.execute(ESTIMATES))["data"]["estimates"]["totalCount"] == 0
