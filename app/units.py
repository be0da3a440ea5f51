"""Exact conversions between the amounts clients send (decimal + unit) and stored integers."""

from decimal import Decimal, InvalidOperation
from enum import StrEnum

from app.errors import InvalidInput

GRAMS_PER_TONNE = 1_000_000


class MassUnit(StrEnum):
    G = "G"
    KG = "KG"
    T = "T"


GRAMS_PER_UNIT = {MassUnit.G: 1, MassUnit.KG: 1_000, MassUnit.T: GRAMS_PER_TONNE}

# ISO 4217 minor-unit exponents of the currencies we price in.
CURRENCY_EXPONENTS = {
    "USD": 2, "EUR": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "PLN": 2, "CZK": 2, "SGD": 2, "HKD": 2, "INR": 2, "BRL": 2, "MXN": 2, "ZAR": 2,
    "CNY": 2, "JPY": 0, "KRW": 0,
}  # fmt: skip


def _decimal(value: Decimal | str | int, field: str) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as error:
        raise InvalidInput("Not a decimal number.", field) from error
    if not amount.is_finite():
        raise InvalidInput("Not a finite number.", field)
    return amount


def grams_from(amount: Decimal | str | int, unit: MassUnit, field: str = "mass.amount") -> int:
    """Whole grams, or InvalidInput: masses are exact, so a fraction of a gram is refused."""
    grams = _decimal(amount, field) * GRAMS_PER_UNIT[unit]
    if grams != grams.to_integral_value():
        raise InvalidInput("Mass must be a whole number of grams.", field)
    return int(grams)


def mass_in(grams: int, unit: MassUnit) -> Decimal:
    return Decimal(grams) / GRAMS_PER_UNIT[unit]


def currency_exponent(currency: str, field: str = "value.currency") -> int:
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise InvalidInput(
            f"Unsupported currency {currency!r}; use an ISO 4217 code such as USD.", field
        )
    return exponent


def minor_from(amount: Decimal | str | int, currency: str, field: str = "value.amount") -> int:
    """Minor units (cents) of a major-unit amount, or InvalidInput if it has more decimals
    than the currency has (e.g. 12.345 USD)."""
    exponent = currency_exponent(currency, field.rsplit(".", 1)[0] + ".currency")
    minor = _decimal(amount, field).scaleb(exponent)
    if minor != minor.to_integral_value():
        raise InvalidInput(f"{currency} amounts have at most {exponent} decimals.", field)
    return int(minor)


def major_from(minor: int, currency: str) -> Decimal:
    """Major units with the currency's decimals, e.g. 1250 USD cents -> Decimal('12.50')."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))
