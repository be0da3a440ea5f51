"""Estimates in the graph: the four estimate mutations, `estimates` and `estimate(id)`."""

from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import relay
from strawberry.scalars import JSON

from app.emissions import calculators, models, service
from app.emissions.factors import UnknownFactorError, get_factor
from app.graphql.context import Info
from app.graphql.emissions.vocabulary import CabinClass, FreightMode, Fuel, VehicleType
from app.graphql.errors import UserError, perform
from app.graphql.money import Mass, MassInput
from app.graphql.relay import connection_field, node_by_id, nodes_loaded_by, row_id_of

EstimateKind = strawberry.enum(models.EstimateKind, name="EstimateKind")


@strawberry.type(description="One published factor applied by an estimate.")
class FactorUsed:
    factor_id: str = strawberry.field(description="e.g. `desnz2025:25_301_3074_4_1`, `grid:GB`.")
    source: str = strawberry.field(description='e.g. "DESNZ GHG conversion factors 2025".')
    source_ref: str = strawberry.field(
        description="The source's own id for the factor (the DESNZ `desnz_id`)."
    )
    year: int
    activity: str
    unit: str = strawberry.field(description="What the factor is per, e.g. km, tonne.km, kWh.")
    kgco2e_per_unit: Decimal = strawberry.field(name="kgCO2ePerUnit")
    quantity: Decimal = strawberry.field(description="How much of `unit` the estimate applied.")
    kgco2e: Decimal = strawberry.field(name="kgCO2e", description="quantity x kgCO2ePerUnit.")
    ghg_scope: str
    ghg_category: str

    @classmethod
    def from_json(cls, use: dict[str, Any]) -> "FactorUsed":
        try:
            factor = get_factor(use["factor_id"])
        except UnknownFactorError:  # a factor since withdrawn from the datasets
            return cls(
                factor_id=use["factor_id"],
                source="",
                source_ref="",
                year=0,
                activity="",
                unit=use["unit"],
                kgco2e_per_unit=Decimal(0),
                quantity=Decimal(use["quantity"]),
                kgco2e=Decimal(use["kgco2e"]),
                ghg_scope="",
                ghg_category="",
            )
        return cls(
            factor_id=factor.id,
            source=factor.source,
            source_ref=factor.source_ref,
            year=factor.year,
            activity=factor.activity,
            unit=use["unit"],
            kgco2e_per_unit=factor.kgco2e_per_unit,
            quantity=Decimal(use["quantity"]),
            kgco2e=Decimal(use["kgco2e"]),
            ghg_scope=factor.ghg_scope,
            ghg_category=factor.ghg_category,
        )


@strawberry.type(description="A stored calculation: its inputs, the factors used, the total.")
class Estimate(relay.Node):
    id: relay.NodeID[str]
    kind: EstimateKind  # type: ignore[valid-type]
    total_emission: Mass = strawberry.field(
        description="kg CO2e, exact to the milligram (each part rounded up)."
    )
    factors: list[FactorUsed]
    inputs: JSON = strawberry.field(description="The inputs as understood, normalised.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Estimate) -> "Estimate":
        return cls(
            id=str(row.id),
            kind=row.kind,
            total_emission=Mass.from_milligrams(row.total_emission_mg),
            factors=[FactorUsed.from_json(use) for use in row.factors],
            inputs=cast(JSON, row.inputs),
            created_at=row.created_at,
        )

    resolve_nodes = nodes_loaded_by(lambda loaders: loaders.estimate_by_id)


@strawberry.type
class EstimateConnection(relay.Connection[Estimate]):
    total_count: int


@strawberry.type
class EstimatePayload:
    estimate: Estimate | None
    user_errors: list[UserError]


@strawberry.input
class EstimateGroundTransportInput:
    distance_km: Decimal
    vehicle_type: VehicleType  # type: ignore[valid-type]
    fuel: Fuel | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Cars only; UNKNOWN (the average) when not given."
    )
    passengers: int = strawberry.field(
        default=1, description="Multiplies per passenger-km factors (bus, coach, rail) only."
    )


@strawberry.input
class FlightLegInput:
    from_: str = strawberry.field(name="from", description="IATA airport code, e.g. LHR.")
    to: str = strawberry.field(description="IATA airport code, e.g. JFK.")


@strawberry.input
class EstimateFlightInput:
    legs: list[FlightLegInput]
    cabin_class: CabinClass = strawberry.field(  # type: ignore[valid-type]
        default=calculators.CabinClass.AVERAGE,
        description="As DESNZ publishes them for the leg's haul band.",
    )
    passengers: int = 1
    radiative_forcing: bool = strawberry.field(
        default=True, description="Use DESNZ's factors with radiative forcing (non-CO2 effects)."
    )


@strawberry.input
class FreightLegInput:
    mode: FreightMode  # type: ignore[valid-type]
    distance_km: Decimal


@strawberry.input
class EstimateFreightInput:
    mass: MassInput
    legs: list[FreightLegInput]
    radiative_forcing: bool = strawberry.field(default=True, description="Air legs only.")


@strawberry.input
class EstimateElectricityInput:
    energy_kwh: Decimal
    country_code: str = strawberry.field(description="ISO 3166-1 alpha-2 or alpha-3 code.")


async def _estimate_payload(info: Info, use_case: Any) -> EstimatePayload:
    outcome = await perform(info.context.db, use_case)
    return EstimatePayload(
        estimate=outcome.map(Estimate.from_row),
        user_errors=outcome.user_errors,
    )


@strawberry.type
class EstimateQueries:
    estimates = connection_field(
        EstimateConnection,
        service.estimates_of,
        models.Estimate,
        Estimate.from_row,
        description="Your estimates (all kinds, customer orders too), newest first.",
    )

    @strawberry.field(description="One of your estimates, or null.")
    async def estimate(self, info: Info, id: strawberry.ID) -> Estimate | None:
        info.context.require_principal()
        return await node_by_id(
            info, info.context.loaders.estimate_by_id, row_id_of(id, "Estimate"), Estimate.from_row
        )


@strawberry.type
class EstimateMutations:
    @strawberry.mutation(description="A trip by road or rail: km x the vehicle's DESNZ factor.")
    async def estimate_ground_transport(
        self, info: Info, input: EstimateGroundTransportInput
    ) -> EstimatePayload | None:
        principal = info.context.require_principal()

        async def estimate(session: AsyncSession) -> models.Estimate:
            return await service.estimate_ground_transport(
                session,
                principal,
                distance_km=input.distance_km,
                vehicle_type=input.vehicle_type,
                fuel=input.fuel,
                passengers=input.passengers,
            )

        return await _estimate_payload(info, estimate)

    @strawberry.mutation(description="Flights between airports: great-circle km x 1.08 x factor.")
    async def estimate_flight(
        self, info: Info, input: EstimateFlightInput
    ) -> EstimatePayload | None:
        principal = info.context.require_principal()

        async def estimate(session: AsyncSession) -> models.Estimate:
            return await service.estimate_flight(
                session,
                principal,
                legs=[service.FlightLegInput(leg.from_, leg.to) for leg in input.legs],
                cabin_class=input.cabin_class,
                passengers=input.passengers,
                radiative_forcing=input.radiative_forcing,
            )

        return await _estimate_payload(info, estimate)

    @strawberry.mutation(description="A shipment: tonnes x km x the mode's factor, per leg.")
    async def estimate_freight(
        self, info: Info, input: EstimateFreightInput
    ) -> EstimatePayload | None:
        principal = info.context.require_principal()

        async def estimate(session: AsyncSession) -> models.Estimate:
            return await service.estimate_freight(
                session,
                principal,
                mass_kg=input.mass.to_kilograms("mass"),
                legs=[service.FreightLegInput(leg.mode, leg.distance_km) for leg in input.legs],
                radiative_forcing=input.radiative_forcing,
            )

        return await _estimate_payload(info, estimate)

    @strawberry.mutation(description="Electricity drawn from a country's grid: kWh x intensity.")
    async def estimate_electricity(
        self, info: Info, input: EstimateElectricityInput
    ) -> EstimatePayload | None:
        principal = info.context.require_principal()

        async def estimate(session: AsyncSession) -> models.Estimate:
            return await service.estimate_electricity(
                session,
                principal,
                energy_kwh=input.energy_kwh,
                country_code=input.country_code,
            )

        return await _estimate_payload(info, estimate)
