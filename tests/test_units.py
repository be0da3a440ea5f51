"""Bounded decimals: every amount is checked for form, digits and exponent before arithmetic."""

import time
from decimal import Decimal

import pytest

from app import units
from app.errors import ErrorCode, InvalidInput


@pytest.mark.parametrize(
    "text",
    [
        "1e999999",
        "1E+1000000",
        "-1e999999999",
        "1e-999999",
        "1e400",
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-inf",
        "1" * 65,
        "1" * 35,
        "0x10",
        "1_000",
        "١٢",  # Arabic-Indic digits: Decimal() accepts them, we do not
        "",
        " ",
        "1.2.3",
        "--1",
        "1e",
        float("inf"),
        float("nan"),
        1e300,
        2.5,  # JSON floats may have lost digits already: strings only
        " 3",
        "1\n",
        "\u00a01",
        "1.0000000000000000000000000001",  # 29 significant digits would round
        10**70,
        True,
        None,
        [],
    ],
)
def test_absurd_or_malformed_decimals_are_refused_in_microseconds(text: object) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidInput) as raised:
        units.parse_decimal(text, "mass.amount")
    assert time.perf_counter() - started < 0.01
    assert raised.value.code == ErrorCode.INVALID_INPUT
    assert raised.value.field == "mass.amount"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", Decimal("12.50")),
        ("1e3", Decimal(1000)),
        ("-0", Decimal(0)),
        ("0e-999999", Decimal(0)),
        (".5", Decimal("0.5")),
        (42, Decimal(42)),
        ("1e40", Decimal("1e40")),
    ],
)
def test_real_decimals_parse_exactly(value: object, expected: Decimal) -> None:
    assert units.parse_decimal(value) == expected


def test_masses_beyond_a_billion_tonnes_are_refused_before_int() -> None:
    with pytest.raises(InvalidInput, match="1,000,000,000 t"):
        units.grams_from("1e24", units.MassUnit.T)
    assert units.grams_from("1000000000", units.MassUnit.T) == 10**15


def test_fractions_of_a_gram_are_refused() -> None:
    with pytest.raises(InvalidInput, match="whole number of grams"):
        units.grams_from("0.0001", units.MassUnit.KG)


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("12.50", "USD", 1250), ("100", "JPY", 100), ("1.234", "BHD", 1234)],
)
def test_money_uses_each_currency_s_iso_4217_exponent(
    amount: str, currency: str, minor: int
) -> None:
    assert units.minor_from(amount, currency) == minor
    assert units.major_from(minor, currency) == Decimal(amount)


@pytest.mark.parametrize("currency", ["ZZZ", "XAU", "usd", "", "US"])
def test_unknown_currencies_are_an_error_never_two_decimals(currency: str) -> None:
    with pytest.raises(InvalidInput, match="Unsupported currency"):
        units.minor_from("1", currency)
    with pytest.raises(InvalidInput):
        units.major_from(100, currency)


def test_money_has_a_documented_maximum_and_decimal_places() -> None:
    with pytest.raises(InvalidInput, match="at most"):
        units.minor_from("1e13", "USD")
    with pytest.raises(InvalidInput, match="at most 0 decimals"):
        units.minor_from("1.5", "JPY")


@pytest.mark.parametrize(
    ("limit", "amount", "message"),
    [
        (units.DISTANCE_KM, "99999.0001", "at most 3 decimal places"),
        (units.DISTANCE_KM, "100001", "at most 100,000 km"),
        (units.ENERGY_KWH, "1e11", "at most 10,000,000,000 kWh"),
        (units.DISTANCE_KM, "0", "greater than zero"),
        (units.DISTANCE_KM, "-1", "greater than zero"),
    ],
)
def test_each_kind_of_amount_has_a_maximum_and_a_finest_step(
    limit: units.Limit, amount: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        limit.check(Decimal(amount), "distanceKm")
