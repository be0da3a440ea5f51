"""Use cases of estimates: run a calculator for a principal and keep the result with its inputs."""

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.accounts.service import Principal, owned_by
from app.emissions import calculators
from app.emissions.calculators import Calculation, FactorUse
from app.emissions.models import Estimate, EstimateKind
from app.errors import DomainError, NotFound

MILLIGRAMS_PER_KG = 1_000_000


def kg_to_milligrams(kgco2e: Decimal) -> int:
    """Whole milligrams, rounded up: a stored emission never understates the calculation."""
    return int((kgco2e * MILLIGRAMS_PER_KG).to_integral_value(rounding=ROUND_CEILING))


@contextmanager
def calculation_errors(
    prefix: str = "", renamed: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Place a calculator's error (or a shared parser's, such as the country normaliser's)
    under the input path it concerns, keeping its code.

    `prefix` places the calculator's field under an input path (e.g. `items.3.config.`);
    `renamed` maps a calculator field to the input's own name for it.
    """
    try:
        yield
    except DomainError as error:
        field = error.field or ""
        field = (renamed or {}).get(field, field)
        raise DomainError(error.code, error.message, f"{prefix}{field}") from error


def factor_uses_as_json(uses: Sequence[FactorUse]) -> list[dict[str, Any]]:
    return [
        {
            "factor_id": use.factor_id,
            "quantity": str(use.quantity),
            "unit": use.unit,
            "kgco2e": str(use.kgco2e),
        }
        for use in uses
    ]


async def store_estimate(
    session: AsyncSession,
    principal: Principal,
    kind: EstimateKind,
    calculation: Calculation,
    inputs: dict[str, Any],
) -> Estimate:
    """Keep a calculation as an estimate of the principal (and its subaccount, if scoped)."""
    estimate = Estimate(
        account_id=principal.account_id,
        mode=principal.mode,
        subaccount_id=principal.subaccount_id,
        kind=kind,
        total_emission_mg=kg_to_milligrams(calculation.total_kgco2e),
        inputs=inputs,
        factors=factor_uses_as_json(calculation.factors_used),
    )
    session.add(estimate)
    await session.flush()
    return estimate


def _calculate(
    calculate: Callable[[], Calculation], renamed: Mapping[str, str] | None = None
) -> Calculation:
    with calculation_errors(renamed=renamed):
        return calculate()


async def estimate_ground_transport(
    session: AsyncSession,
    principal: Principal,
    *,
    distance_km: Decimal,
    vehicle_type: str,
    fuel: str | None = None,
    passengers: int = 1,
) -> Estimate:
    calculation = _calculate(
        lambda: calculators.estimate_ground_transport(distance_km, vehicle_type, fuel, passengers)
    )
    inputs = {
        "distanceKm": str(distance_km),
        "vehicleType": vehicle_type.strip().upper(),
        "fuel": fuel.strip().upper() if fuel else None,
        "passengers": passengers,
    }
    return await store_estimate(
        session, principal, EstimateKind.GROUND_TRANSPORT, calculation, inputs
    )


@dataclass(frozen=True)
class FlightLegInput:
    origin: str
    destination: str


async def estimate_flight(
    session: AsyncSession,
    principal: Principal,
    *,
    legs: Sequence[FlightLegInput],
    cabin_class: str = "AVERAGE",
    passengers: int = 1,
    radiative_forcing: bool = True,
) -> Estimate:
    with calculation_errors():
        calculation = calculators.estimate_flight(
            [calculators.FlightLeg(leg.origin, leg.destination) for leg in legs],
            cabin_class,
            passengers,
            radiative_forcing,
        )
    inputs = {
        "legs": [
            {
                "from": leg.origin,
                "to": leg.destination,
                "greatCircleKm": str(leg.great_circle_km),
                "distanceKm": str(leg.distance_km),
                "haulBand": leg.haul_band.value,
            }
            for leg in calculation.legs
        ],
        "cabinClass": cabin_class.strip().upper(),
        "passengers": passengers,
        "radiativeForcing": radiative_forcing,
    }
    return await store_estimate(session, principal, EstimateKind.FLIGHT, calculation, inputs)


@dataclass(frozen=True)
class FreightLegInput:
    mode: str
    distance_km: Decimal


async def estimate_freight(
    session: AsyncSession,
    principal: Principal,
    *,
    mass_kg: Decimal,
    legs: Sequence[FreightLegInput],
    radiative_forcing: bool = True,
) -> Estimate:
    calculation = _calculate(
        lambda: calculators.estimate_freight(
            mass_kg,
            [calculators.FreightLeg(leg.mode, leg.distance_km) for leg in legs],
            radiative_forcing,
        ),
        renamed={"mass": "mass.amount"},
    )
    inputs = {
        "massKg": str(mass_kg),
        "legs": [
            {"mode": leg.mode.strip().upper(), "distanceKm": str(leg.distance_km)} for leg in legs
        ],
        "radiativeForcing": radiative_forcing,
    }
    return await store_estimate(session, principal, EstimateKind.FREIGHT, calculation, inputs)


async def estimate_electricity(
    session: AsyncSession, principal: Principal, *, energy_kwh: Decimal, country_code: str
) -> Estimate:
    calculation = _calculate(lambda: calculators.estimate_electricity(energy_kwh, country_code))
    with calculation_errors():
        country = calculators.country_alpha2(country_code)
    inputs = {"energyKwh": str(energy_kwh), "countryCode": country}
    return await store_estimate(session, principal, EstimateKind.ELECTRICITY, calculation, inputs)


def estimates_of(principal: Principal) -> SelectOfScalar[Estimate]:
    """The estimates a principal may see, for paging by the caller."""
    return select(Estimate).where(*owned_by(principal, Estimate))


async def get_estimate(
    session: AsyncSession, principal: Principal, estimate_id: uuid.UUID
) -> Estimate:
    """The principal's estimate, or NotFound (field `estimateId`) for unknown or foreign ids."""
    estimate = (
        await session.exec(estimates_of(principal).where(Estimate.id == estimate_id))
    ).first()
    if estimate is None:
        raise NotFound("No such estimate.", "estimateId")
    return estimate


async def estimates_by_id(
    session: AsyncSession, principal: Principal, ids: Sequence[uuid.UUID]
) -> Sequence[Estimate]:
    return (await session.exec(estimates_of(principal).where(col(Estimate.id).in_(ids)))).all()
