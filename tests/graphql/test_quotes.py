"""Quotes through GraphQL: the split across bundles, exact costs and rounding, by mass and by
value, typed errors — and that a quote writes nothing."""

import uuid
from decimal import Decimal

import httpx
from sqlalchemy import func
from sqlmodel import select

from app.accounts.models import Account, Mode
from app.catalog import service as catalog
from app.db import Database
from app.events.models import Event
from app.offsets.models import OffsetOrder
from tests.conftest import GraphQLClient
from tests.offsets_fixtures import gid, principal_for, seed_catalog

QUOTE_FIELDS = """
  quote {
    mass { amount unit } totalCost { amount currency } inventorySufficient portfolio { id }
    bundles { bundle { id } weight mass { amount unit } unitPrice { amount currency }
      cost { amount currency } inventorySufficient }
  }
  userErrors { code field message }
"""
BY_MASS = (
    f"""query($input: QuoteByMassInput!) {{ quoteByMass(input: $input) {{ {QUOTE_FIELDS} }} }}"""
)
BY_VALUE = (
    f"""query($input: QuoteByValueInput!) {{ quoteByValue(input: $input) {{ {QUOTE_FIELDS} }} }}"""
)


async def quote_mass(
    gql: GraphQLClient, amount: str, unit: str = "G", portfolio: str | None = None
) -> dict:  # type: ignore[type-arg]
    input: dict[str, object] = {"mass": {"amount": amount, "unit": unit}}
    if portfolio is not None:
        input["portfolioId"] = portfolio
    body = await gql.execute(BY_MASS, input=input)
    assert "errors" not in body, body
    return body["data"]["quoteByMass"]  # type: ignore[no-any-return]


async def quote_value(
    gql: GraphQLClient, amount: str, currency: str = "USD", portfolio: str | None = None
) -> dict:  # type: ignore[type-arg]
    input: dict[str, object] = {"value": {"amount": amount, "currency": currency}}
    if portfolio is not None:
        input["portfolioId"] = portfolio
    body = await gql.execute(BY_VALUE, input=input)
    assert "errors" not in body, body
    return body["data"]["quoteByValue"]  # type: ignore[no-any-return]


def cents(money: dict) -> int:  # type: ignore[type-arg]
    assert money["currency"] == "USD"
    return int(Decimal(money["amount"]) * 100)


def grams(mass: dict) -> int:  # type: ignore[type-arg]
    assert mass["unit"] == "KG"
    return int(Decimal(mass["amount"]) * 1000)


def split(payload: dict) -> list[tuple[int, int]]:  # type: ignore[type-arg]
    """(grams, cents) per bundle, in portfolio order."""
    assert payload["userErrors"] == []
    return [(grams(b["mass"]), cents(b["cost"])) for b in payload["quote"]["bundles"]]


def error_of(payload: dict) -> tuple[str, str | None]:  # type: ignore[type-arg]
    assert payload["quote"] is None
    assert len(payload["userErrors"]) == 1, payload
    return payload["userErrors"][0]["code"], payload["userErrors"][0]["field"]


async def test_one_tonne_at_sixty_forty(db: Database, account: Account, gql: GraphQLClient) -> None:
    seeded = await seed_catalog(db, account)
    payload = await quote_mass(gql, "1", "T")
    assert payload["userErrors"] == []
    quote = payload["quote"]
    assert quote["mass"] == {"amount": "1000.000", "unit": "KG"}
    assert quote["totalCost"] == {"amount": "16.00", "currency": "USD"}
    assert quote["portfolio"] == {"id": seeded.portfolio_gid}
    assert quote["inventorySufficient"] is True
    cheap, premium = quote["bundles"]
    assert cheap["bundle"] == {"id": seeded.cheap_gid}
    assert Decimal(cheap["weight"]) == 60
    assert cheap["mass"] == {"amount": "600.000", "unit": "KG"}
    assert cheap["unitPrice"] == {"amount": "10.00", "currency": "USD"}
    assert cheap["cost"] == {"amount": "6.00", "currency": "USD"}
    assert premium["bundle"] == {"id": seeded.premium_gid}
    assert Decimal(premium["weight"]) == 40
    assert premium["mass"] == {"amount": "400.000", "unit": "KG"}
    assert premium["unitPrice"] == {"amount": "25.00", "currency": "USD"}
    assert premium["cost"] == {"amount": "10.00", "currency": "USD"}
    # Same mass in other units, same quote.
    for amount, unit in (("1000", "KG"), ("1000000", "G"), ("1.000000", "T")):
        again = await quote_mass(gql, amount, unit)
        assert again["quote"]["totalCost"]["amount"] == "16.00"


async def test_awkward_masses_split_to_the_gram_and_costs_add_up(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    expected = {
        # grams: [(cheap g, cents), (premium g, cents)], worked by hand:
        # cheap cents = g * 1000 / 1e6, premium cents = g * 2500 / 1e6, each rounded half up.
        1: [(1, 0), (0, 0)],
        7: [(4, 0), (3, 0)],
        333_333: [(200_000, 200), (133_333, 333)],
        1_250_000: [(750_000, 750), (500_000, 1250)],
    }
    for total, parts in expected.items():
        payload = await quote_mass(gql, str(total))
        assert split(payload) == parts, total
        assert grams(payload["quote"]["mass"]) == total
        assert sum(g for g, _ in parts) == total
        assert cents(payload["quote"]["totalCost"]) == sum(c for _, c in parts)
    for total in (2, 3, 999, 1001, 12_345, 999_999, 2_718_281):
        payload = await quote_mass(gql, str(total))
        parts = split(payload)
        assert sum(g for g, _ in parts) == total
        assert cents(payload["quote"]["totalCost"]) == sum(c for _, c in parts), total


async def test_costs_round_half_up_to_the_cent(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    # 500 g: premium 200 g x $25/t = 0.5 cent -> 1 cent (half-even would give 0).
    assert split(await quote_mass(gql, "500")) == [(300, 0), (200, 1)]
    # 833 g: cheap 500 g x $10/t = 0.5 cent -> 1; premium 333 g = 0.8325 cent -> 1.
    payload = await quote_mass(gql, "833")
    assert split(payload) == [(500, 1), (333, 1)]
    assert payload["quote"]["totalCost"]["amount"] == "0.02"
    # 2,500.5 kg: cheap 1,500,300 g = 1500.3 cents -> 1500; premium 1,000,200 g = 2500.5 -> 2501.
    payload = await quote_mass(gql, "2500.5", "KG")
    assert split(payload) == [(1_500_300, 1500), (1_000_200, 2501)]
    assert payload["quote"]["totalCost"]["amount"] == "40.01"


async def test_inventory_sufficient_per_bundle_and_overall(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)  # cheap draws on 3 t, premium on 1 t
    exact = (await quote_mass(gql, "2.5", "T"))["quote"]  # 1.5 t cheap, 1 t premium
    assert [b["inventorySufficient"] for b in exact["bundles"]] == [True, True]
    assert exact["inventorySufficient"] is True
    over = (await quote_mass(gql, "2500.003", "KG"))["quote"]  # premium gets 1,000,001 g
    assert [b["inventorySufficient"] for b in over["bundles"]] == [True, False]
    assert over["inventorySufficient"] is False
    huge = (await quote_mass(gql, "1000000", "T"))["quote"]  # the largest mass allowed
    assert huge["inventorySufficient"] is False
    assert huge["totalCost"]["amount"] == "16000000.00"


async def test_quote_by_value_buys_the_largest_mass_within_the_value(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    for value in ("16.00", "0.01", "0.05", "7.77", "1234.56"):
        payload = await quote_value(gql, value)
        assert payload["userErrors"] == [], value
        quote = payload["quote"]
        limit = int(Decimal(value) * 100)
        mass = grams(quote["mass"])
        assert mass > 0
        assert cents(quote["totalCost"]) <= limit
        assert cents(quote["totalCost"]) == sum(cents(b["cost"]) for b in quote["bundles"])
        assert sum(grams(b["mass"]) for b in quote["bundles"]) == mass
        by_mass = (await quote_mass(gql, str(mass)))["quote"]
        assert by_mass["totalCost"] == quote["totalCost"]
        one_more = (await quote_mass(gql, str(mass + 1)))["quote"]
        assert cents(one_more["totalCost"]) > limit, value
    sixteen = (await quote_value(gql, "16"))["quote"]
    assert grams(sixteen["mass"]) >= 1_000_000  # $16.00 buys at least the tonne it prices


async def test_quote_by_value_that_buys_less_than_a_gram(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    seeded = await seed_catalog(db, account)
    async with db.transaction() as session:
        principal = principal_for(account)
        precious, _ = await catalog.create_bundle(
            session,
            principal,
            name="Precious",
            unit_price=Decimal("1000000.00"),  # $1.00 a gram
            currency="USD",
            project_ids=[seeded.dac],
        )
        portfolio = await catalog.create_portfolio(
            session, principal, name="Precious only", weights=[(precious.id, Decimal(100))]
        )
    precious_portfolio = gid("Portfolio", portfolio.portfolio.id)
    payload = await quote_value(gql, "0.99", portfolio=precious_portfolio)
    assert error_of(payload) == ("QUANTITY_NOT_POSITIVE", "value.amount")
    one_gram = await quote_value(gql, "1.49", portfolio=precious_portfolio)
    assert one_gram["quote"]["mass"] == {"amount": "0.001", "unit": "KG"}
    assert one_gram["quote"]["totalCost"] == {"amount": "1.00", "currency": "USD"}


async def test_quote_bad_input(db: Database, account: Account, gql: GraphQLClient) -> None:
    await seed_catalog(db, account)
    mass_cases = [
        (("0", "G"), ("QUANTITY_NOT_POSITIVE", "mass.amount")),
        (("-1", "KG"), ("QUANTITY_NOT_POSITIVE", "mass.amount")),
        (("0.5", "G"), ("INVALID_INPUT", "mass.amount")),
        (("1.0000005", "T"), ("INVALID_INPUT", "mass.amount")),
        (("1000000.000001", "T"), ("INVALID_INPUT", "mass.amount")),
        (("1e30", "T"), ("INVALID_INPUT", "mass.amount")),
    ]
    for (amount, unit), expected in mass_cases:
        assert error_of(await quote_mass(gql, amount, unit)) == expected, amount
    value_cases = [
        (("10", "EUR"), ("INVALID_INPUT", "value.currency")),
        (("10", "XYZ"), ("INVALID_INPUT", "value.currency")),
        (("10.001", "USD"), ("INVALID_INPUT", "value.amount")),
    ]
    for (amount, currency), expected in value_cases:
        assert error_of(await quote_value(gql, amount, currency)) == expected, amount
    for amount in ("0", "-5"):
        code, field = error_of(await quote_value(gql, amount))
        assert field == "value.amount"
        assert code in ("QUANTITY_NOT_POSITIVE", "INVALID_INPUT")
    unknown = gid("Portfolio", uuid.uuid4())
    assert error_of(await quote_mass(gql, "1", "T", unknown)) == ("NOT_FOUND", "portfolioId")
    assert error_of(await quote_value(gql, "1", "USD", unknown)) == ("NOT_FOUND", "portfolioId")
    not_a_portfolio = gid("Bundle", uuid.uuid4())
    assert error_of(await quote_mass(gql, "1", "T", not_a_portfolio)) == (
        "INVALID_INPUT",
        "portfolioId",
    )


async def test_absurd_value_is_invalid_input_not_a_crash(
    db: Database, account: Account, gql: GraphQLClient
) -> None:
    await seed_catalog(db, account)
    # More than a million tonnes' worth: refused like an absurd mass.
    assert error_of(await quote_value(gql, "16000000.01")) == ("INVALID_INPUT", "value.amount")
    assert error_of(await quote_value(gql, "1e30")) == ("INVALID_INPUT", "value.amount")


async def test_quotes_use_the_named_portfolio_or_fail_without_a_default(
    db: Database, account: Account, client: httpx.AsyncClient, gql: GraphQLClient, live_key: str
) -> None:
    seeded = await seed_catalog(db, account)
    async with db.transaction() as session:
        premium_only = await catalog.create_portfolio(
            session,
            principal_for(account),
            name="Premium only",
            weights=[(seeded.premium, Decimal(100))],
        )
    named = await quote_mass(gql, "1", "T", gid("Portfolio", premium_only.portfolio.id))
    assert named["quote"]["totalCost"]["amount"] == "25.00"
    assert split(named) == [(1_000_000, 2500)]
    # Live mode has a catalog without a default portfolio.
    live = await seed_catalog(db, account, Mode.LIVE, default=False)
    live_client = GraphQLClient(client, live_key)
    assert error_of(await quote_mass(live_client, "1", "T")) == ("NOT_FOUND", "portfolioId")
    assert error_of(await quote_value(live_client, "10")) == ("NOT_FOUND", "portfolioId")
    # A test portfolio is unknown to the live key.
    assert error_of(await quote_mass(live_client, "1", "T", seeded.portfolio_gid)) == (
        "NOT_FOUND",
        "portfolioId",
    )
    assert (await quote_mass(live_client, "1", "T", live.portfolio_gid))["userErrors"] == []


async def test_quotes_write_nothing(db: Database, account: Account, gql: GraphQLClient) -> None:
    await seed_catalog(db, account)
    await quote_mass(gql, "1", "T")
    await quote_value(gql, "100")
    await quote_mass(gql, "0", "G")
    async with db.session() as session:
        orders = (await session.exec(select(func.count()).select_from(OffsetOrder))).one()
        events = (await session.exec(select(func.count()).select_from(Event))).one()
    assert (orders, events) == (0, 0)
    stock = (await gql.execute("{ bundles { edges { node { availableMass { amount } } } } }"))[
        "data"
    ]["bundles"]["edges"]
    assert [e["node"]["availableMass"]["amount"] for e in stock] == ["1000.000", "3000.000"]
