"""Exact, bounded amounts: the decimals clients send, checked before any arithmetic, and the
stored integers they become.

Every decimal from outside passes `parse_decimal` first (form, digit count and exponent, in
microseconds), then the `Limit` of what it measures (a documented maximum and finest step), so
no input can make arithmetic, `int()` or the database work on an absurd number.
"""

import functools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from iso4217 import Currency

from app.errors import InvalidInput

GRAMS_PER_TONNE = 1_000_000

# A decimal's text: at most this many characters, significant digits, and this exponent.
# Real masses, values, distances and energies need far less; a billion tonnes is 1e15 g.
MAX_DECIMAL_CHARACTERS = 64
# 28: the default decimal context's precision, so every later step (scaling to grams or minor
# units, comparing with a limit) is exact; with more digits it would round silently.
MAX_SIGNIFICANT_DIGITS = 28
MAX_ADJUSTED_EXPONENT = 40
_DECIMAL_FORM = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,9})?")


class MassUnit(StrEnum):
    G = "G"
    KG = "KG"
    T = "T"


GRAMS_PER_UNIT = {MassUnit.G: 1, MassUnit.KG: 1_000, MassUnit.T: GRAMS_PER_TONNE}


def parse_decimal(value: object, field: str | None = None) -> Decimal:
    """A client's decimal, checked for form, digits and exponent before anything computes
    with it; else InvalidInput. Send decimals as strings: a JSON integer is accepted, but a
    JSON float is binary and may already have lost digits (1.0000000000000001 arrives as
    1.0), so it is refused rather than silently rounded."""
    if isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value) if abs(value) < 10**MAX_DECIMAL_CHARACTERS else "overflow"
    else:
        raise InvalidInput(
            'Send a decimal as a string, e.g. "12.5" (JSON floats lose digits).', field
        )
    if len(text) > MAX_DECIMAL_CHARACTERS or not _DECIMAL_FORM.fullmatch(text):
        raise InvalidInput(
            "Not a decimal number: use digits with an optional sign, point and exponent "
            f"(at most {MAX_DECIMAL_CHARACTERS} characters).",
            field,
        )
    try:
        amount = Decimal(text)  # exact and cheap, whatever the exponent: nothing computes yet
    except InvalidOperation as error:  # the pattern admits only valid decimals; be safe anyway
        raise InvalidInput("Not a decimal number.", field) from error
    if amount.is_zero():
        return Decimal(0)
    if len(amount.as_tuple().digits) > MAX_SIGNIFICANT_DIGITS or not (
        -MAX_ADJUSTED_EXPONENT <= amount.adjusted() <= MAX_ADJUSTED_EXPONENT
    ):
        raise InvalidInput(
            f"Out of range: at most {MAX_SIGNIFICANT_DIGITS} significant digits, "
            f"between 1e-{MAX_ADJUSTED_EXPONENT} and 1e{MAX_ADJUSTED_EXPONENT}.",
            field,
        )
    return amount


@dataclass(frozen=True, slots=True)
class Limit:
    """What one kind of amount may be: a maximum and a finest step (decimal places)."""

    what: str
    maximum: Decimal
    places: int
    unit: str

    def check(self, amount: Decimal | int, field: str, *, positive: bool = True) -> Decimal:
        """The amount, if it is within the limit (and above zero when `positive`)."""
        amount = parse_decimal(amount, field)
        if positive and amount <= 0:
            raise InvalidInput(f"The {self.what} must be greater than zero.", field)
        if amount < 0:
            raise InvalidInput(f"The {self.what} must not be negative.", field)
        if amount > self.maximum:
            raise InvalidInput(
                f"The {self.what} must be at most {self.maximum:,} {self.unit}.", field
            )
        if amount != amount.quantize(Decimal(1).scaleb(-self.places)):
            raise InvalidInput(
                f"The {self.what} has at most {self.places} decimal places in {self.unit}.",
                field,
            )
        return amount


# The documented maximum of every amount the API accepts (README, "Limits").
MAX_MASS_GRAMS = 10**15  # a billion tonnes: the largest credit batch; one order is far less
DISTANCE_KM = Limit("distance", Decimal(100_000), 3, "km")  # 2.5 times round the Earth
ENERGY_KWH = Limit("energy", Decimal(10**10), 3, "kWh")  # 10 TWh
FREIGHT_MASS_KG = Limit("freight mass", Decimal(10**9), 3, "kg")  # a million tonnes
DEVICE_WEIGHT_KG = Limit("weight", Decimal(10_000), 3, "kg")
EMBODIED_KG = Limit("embodied emission", Decimal(10**9), 6, "kgCO2e")
POWER_WATTS = Limit("power", Decimal(10**6), 3, "W")
DAILY_USE_HOURS = Limit("daily use", Decimal(24), 2, "hours")
PERCENTAGE = Limit("weight", Decimal(100), 2, "%")
MAX_PASSENGERS = 1_000
MAX_LEGS = 50  # of a journey or a shipment
MAX_MONTHS = 1_200  # tenures and product lifetimes: a century
MAX_MONEY_MAJOR = Decimal(10**12)  # a trillion in any currency's major units


def grams_from(amount: Decimal | str | int, unit: MassUnit, field: str = "mass.amount") -> int:
    """Whole grams, or InvalidInput: masses are exact, so a fraction of a gram is refused."""
    value = parse_decimal(amount, field)
    if abs(value) > Decimal(MAX_MASS_GRAMS) / GRAMS_PER_UNIT[unit]:
        raise InvalidInput(f"Mass must be at most {MAX_MASS_GRAMS // GRAMS_PER_TONNE:,} t.", field)
    grams = value * GRAMS_PER_UNIT[unit]
    if grams != grams.to_integral_value():
        raise InvalidInput("Mass must be a whole number of grams.", field)
    return int(grams)


def kilograms_from(
    amount: Decimal | str | int, unit: MassUnit, limit: Limit, field: str
) -> Decimal:
    """An exact mass in kilograms (what the calculators take), within `limit`."""
    value = parse_decimal(amount, field)
    if abs(value) > limit.maximum * GRAMS_PER_UNIT[MassUnit.KG] / GRAMS_PER_UNIT[unit]:
        raise InvalidInput(f"The {limit.what} must be at most {limit.maximum:,} kg.", field)
    kilograms = value * GRAMS_PER_UNIT[unit] / GRAMS_PER_UNIT[MassUnit.KG]
    return limit.check(kilograms, field)


def mass_in(grams: int, unit: MassUnit) -> Decimal:
    return Decimal(grams) / GRAMS_PER_UNIT[unit]


@functools.lru_cache(maxsize=512)  # bounded: the codes come from clients too
def _iso_exponent(currency: str) -> int | None:
    try:
        exponent = Currency(currency).exponent
    except ValueError:
        return None
    return None if exponent is None else int(exponent)


def currency_exponent(currency: str, field: str = "value.currency") -> int:
    """The ISO 4217 minor-unit exponent of a currency (2 for USD, 0 for JPY, 3 for BHD)."""
    exponent = _iso_exponent(currency)
    if exponent is None:  # unknown, or a code without minor units (gold, test codes)
        raise InvalidInput(
            f"Unsupported currency {currency!r}; use an ISO 4217 code such as USD.", field
        )
    return int(exponent)


def minor_from(amount: Decimal | str | int, currency: str, field: str = "value.amount") -> int:
    """Minor units (cents) of a major-unit amount, or InvalidInput if it has more decimals
    than the currency has (e.g. 12.345 USD) or is beyond the documented maximum."""
    exponent = currency_exponent(currency, field.rsplit(".", 1)[0] + ".currency")
    value = parse_decimal(amount, field)
    if abs(value) > MAX_MONEY_MAJOR:
        raise InvalidInput(f"Amount must be at most {MAX_MONEY_MAJOR:,} {currency}.", field)
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise InvalidInput(f"{currency} amounts have at most {exponent} decimals.", field)
    return int(minor)


def major_from(minor: int, currency: str) -> Decimal:
    """Major units with the currency's decimals, e.g. 1250 USD cents -> Decimal('12.50').

    Stored amounts are in currencies we accepted, so an unknown one here is a bug: it raises
    rather than assume two decimals."""
    exponent = currency_exponent(currency, "currency")
    return Decimal(minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent))
