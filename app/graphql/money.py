"""Exact amounts in the graph: Mass and Money as Decimal strings with their unit or currency.

Stored amounts are integers (grams or milligrams of CO2e, minor units of a currency); these
types turn them into exact decimals and back, refusing inputs finer than what is stored.
"""

from decimal import Decimal

import strawberry

from app import units
from app.graphql.plans import plannable

MassUnit = strawberry.enum(units.MassUnit, name="MassUnit")

MILLIGRAMS_PER_GRAM = 1000
# Decimal places that show every gram, or every milligram, in each unit: "109.350" kg from
# grams, "9.928900" kg from milligrams.
_GRAM_PLACES = {units.MassUnit.G: 0, units.MassUnit.KG: 3, units.MassUnit.T: 6}
_MILLIGRAM_PLACES = {units.MassUnit.G: 3, units.MassUnit.KG: 6, units.MassUnit.T: 9}


@strawberry.type(description="A mass, exact: `amount` is a decimal string in `unit`.")
class Mass:
    amount: Decimal
    unit: MassUnit  # type: ignore[valid-type]

    @classmethod
    def from_grams(cls, grams: int, unit: units.MassUnit = units.MassUnit.KG) -> "Mass":
        # Each unit is a power of ten grams: shifting the exponent is the exact division,
        # with the unit's places already (1000 g -> "1.000" kg), cheaper than divide + quantize.
        return cls(amount=Decimal(grams).scaleb(-_GRAM_PLACES[unit]), unit=unit)

    @classmethod
    def from_milligrams(cls, milligrams: int, unit: units.MassUnit = units.MassUnit.KG) -> "Mass":
        amount = Decimal(milligrams) / (units.GRAMS_PER_UNIT[unit] * MILLIGRAMS_PER_GRAM)
        places = _MILLIGRAM_PLACES[unit]
        return cls(amount=amount.quantize(Decimal(1).scaleb(-places)), unit=unit)


@strawberry.input(description="A mass: a decimal amount (string or number) and its unit.")
class MassInput:
    amount: Decimal
    unit: MassUnit  # type: ignore[valid-type]

    def to_grams(self, field: str) -> int:
        """Whole grams, or InvalidInput at `field.amount` for a fraction of a gram."""
        return units.grams_from(self.amount, units.MassUnit(self.unit), f"{field}.amount")

    def to_kilograms(self, field: str) -> Decimal:
        """The exact mass in kilograms (for calculators, which work in kg), within the freight
        limit (the one calculator that takes a mass)."""
        return units.kilograms_from(
            self.amount, units.MassUnit(self.unit), units.FREIGHT_MASS_KG, f"{field}.amount"
        )


@strawberry.type(description="An amount of money in major units, e.g. `12.50` USD.")
class Money:
    amount: Decimal
    currency: str = strawberry.field(description="ISO 4217 code, e.g. USD.")

    @classmethod
    def from_minor_units(cls, minor: int, currency: str) -> "Money":
        return cls(amount=units.major_from(minor, currency), currency=currency)


@strawberry.input(description="An amount of money in major units and its ISO 4217 currency.")
class MoneyInput:
    amount: Decimal
    currency: str

    def to_minor_units(self, field: str) -> int:
        """Minor units, or InvalidInput for an unknown currency or too many decimals."""
        return units.minor_from(self.amount, self.currency.strip().upper(), f"{field}.amount")


plannable(Mass)  # compiled plans read their attributes (app/graphql/plans.py)
plannable(Money)
