"""Pure emission calculators: activity data times published factors, with the factors they used."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

import airportsdata

from app.countries import country_alpha2
from app.emissions.factors import (
    EmissionFactor,
    UnknownFactorError,
    get_desnz_factor,
    get_factor,
    get_grid_factor,
)
from app.errors import DomainError, ErrorCode
from app.units import (
    DAILY_USE_HOURS,
    DEVICE_WEIGHT_KG,
    DISTANCE_KM,
    EMBODIED_KG,
    ENERGY_KWH,
    FREIGHT_MASS_KG,
    MAX_LEGS,
    MAX_MONTHS,
    MAX_PASSENGERS,
    POWER_WATTS,
    Limit,
)


class CalculationError(DomainError):
    """Input a calculator cannot use; `field` is the input path, `code` INVALID_INPUT/NOT_FOUND."""

    def __init__(self, field: str, message: str, code: ErrorCode = ErrorCode.INVALID_INPUT) -> None:
        super().__init__(code, message, field)


@dataclass(frozen=True, slots=True)
class FactorUse:
    """One factor applied: `quantity` in `unit` (the factor's unit) gave `kgco2e`."""

    factor_id: str
    quantity: Decimal
    unit: str
    kgco2e: Decimal


@dataclass(frozen=True, slots=True)
class Calculation:
    total_kgco2e: Decimal
    factors_used: list[FactorUse]


def _apply(factor: EmissionFactor, quantity: Decimal) -> FactorUse:
    return FactorUse(
        factor_id=factor.id,
        quantity=quantity,
        unit=factor.unit,
        kgco2e=factor.kgco2e_per_unit * quantity,
    )


def _calculation(uses: list[FactorUse]) -> Calculation:
    return Calculation(
        total_kgco2e=sum((use.kgco2e for use in uses), Decimal(0)), factors_used=uses
    )


# --- input checks shared by the calculators -------------------------------------------------

_Choice = TypeVar("_Choice", bound=StrEnum)


def _parse_choice(choices: type[_Choice], value: _Choice | str, field: str) -> _Choice:
    try:
        return choices(str(value).strip().upper())
    except ValueError:
        expected = ", ".join(choice.value for choice in choices)
        raise CalculationError(
            field, f"Unknown value {value!r}; expected one of {expected}"
        ) from None


def _decimal(value: Decimal | int, field: str) -> Decimal:
    # bool is an int, and floats would bring binary rounding into exact kg figures.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise CalculationError(field, "Must be a decimal number")
    amount = Decimal(value)
    if not amount.is_finite():
        raise CalculationError(field, "Must be a finite number")
    return amount


def _within(limit: Limit, value: Decimal | int, field: str) -> Decimal:
    """A non-negative amount within its documented limit."""
    return limit.check(_decimal(value, field), field, positive=False)


def _positive_count(value: int, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise CalculationError(field, f"Must be a whole number from 1 to {maximum:,}")
    return value


# --- ground transport -----------------------------------------------------------------------


class VehicleType(StrEnum):
    PASSENGER_CAR_VAN_OR_SUV = "PASSENGER_CAR_VAN_OR_SUV"
    SMALL_CAR = "SMALL_CAR"
    MEDIUM_CAR = "MEDIUM_CAR"
    LARGE_CAR = "LARGE_CAR"
    AVERAGE_CAR = "AVERAGE_CAR"
    MOTORBIKE = "MOTORBIKE"
    TAXI = "TAXI"
    SMALL_BUS = "SMALL_BUS"
    SCHOOL_BUS = "SCHOOL_BUS"
    COACH_BUS = "COACH_BUS"
    LOCAL_BUS = "LOCAL_BUS"
    NATIONAL_RAIL = "NATIONAL_RAIL"
    LIGHT_RAIL = "LIGHT_RAIL"


class Fuel(StrEnum):
    PETROL = "PETROL"
    DIESEL = "DIESEL"
    HYBRID = "HYBRID"
    PLUG_IN_HYBRID = "PLUG_IN_HYBRID"
    BATTERY_ELECTRIC = "BATTERY_ELECTRIC"
    UNKNOWN = "UNKNOWN"


# DESNZ "Cars (by size)" per vehicle-km (uom "km"); every size has all six fuels.
_AVERAGE_CAR_BY_FUEL = {
    Fuel.DIESEL: "25_301_3069_4_1",
    Fuel.PETROL: "25_301_3070_4_1",
    Fuel.HYBRID: "25_301_3071_4_1",
    Fuel.UNKNOWN: "25_301_3074_4_1",
    Fuel.PLUG_IN_HYBRID: "25_301_3075_4_1",
    Fuel.BATTERY_ELECTRIC: "25_301_3076_4_1",
}
_CAR_FACTORS: dict[VehicleType, dict[Fuel, str]] = {
    VehicleType.SMALL_CAR: {
        Fuel.DIESEL: "25_301_3045_4_1",
        Fuel.PETROL: "25_301_3046_4_1",
        Fuel.HYBRID: "25_301_3047_4_1",
        Fuel.UNKNOWN: "25_301_3050_4_1",
        Fuel.PLUG_IN_HYBRID: "25_301_3051_4_1",
        Fuel.BATTERY_ELECTRIC: "25_301_3052_4_1",
    },
    VehicleType.MEDIUM_CAR: {
        Fuel.DIESEL: "25_301_3053_4_1",
        Fuel.PETROL: "25_301_3054_4_1",
        Fuel.HYBRID: "25_301_3055_4_1",
        Fuel.UNKNOWN: "25_301_3058_4_1",
        Fuel.PLUG_IN_HYBRID: "25_301_3059_4_1",
        Fuel.BATTERY_ELECTRIC: "25_301_3060_4_1",
    },
    VehicleType.LARGE_CAR: {
        Fuel.DIESEL: "25_301_3061_4_1",
        Fuel.PETROL: "25_301_3062_4_1",
        Fuel.HYBRID: "25_301_3063_4_1",
        Fuel.UNKNOWN: "25_301_3066_4_1",
        Fuel.PLUG_IN_HYBRID: "25_301_3067_4_1",
        Fuel.BATTERY_ELECTRIC: "25_301_3068_4_1",
    },
    VehicleType.AVERAGE_CAR: _AVERAGE_CAR_BY_FUEL,
    # The seed's catch-all type says nothing about size, so it is DESNZ's "Average car"; its
    # input carries no fuel either, so an absent fuel means DESNZ's "Unknown" fuel row.
    VehicleType.PASSENGER_CAR_VAN_OR_SUV: _AVERAGE_CAR_BY_FUEL,
}

# Per vehicle-km like cars: the trip's emissions do not grow with the people on board.
_PER_VEHICLE_FACTORS = {
    VehicleType.MOTORBIKE: "25_302_3080_4_1",  # Motorbike, Average
    VehicleType.TAXI: "25_313_3141_4_1",  # Taxis, Regular taxi, km
}

# Per passenger-km: DESNZ already divided the vehicle's emissions by its average occupancy.
_PER_PASSENGER_FACTORS = {
    # DESNZ has no minibus or school-bus factor. "Local bus (not London)" is the highest bus
    # factor per passenger-km (lower occupancy than London buses), closest to a small or
    # school bus and so does not understate them.
    VehicleType.SMALL_BUS: "25_314_3143_11_1",
    VehicleType.SCHOOL_BUS: "25_314_3143_11_1",
    VehicleType.COACH_BUS: "25_314_3146_11_1",  # Bus, Coach
    VehicleType.LOCAL_BUS: "25_314_3145_11_1",  # Bus, Average local bus
    VehicleType.NATIONAL_RAIL: "25_315_3147_11_1",  # Rail, National rail
    VehicleType.LIGHT_RAIL: "25_315_3149_11_1",  # Rail, Light rail and tram
}


def estimate_ground_transport(
    distance_km: Decimal | int,
    vehicle_type: VehicleType | str,
    fuel: Fuel | str | None = None,
    passengers: int = 1,
) -> Calculation:
    """Emissions of one trip of `distance_km`.

    Cars (and the seed's PASSENGER_CAR_VAN_OR_SUV), taxis and motorbikes use DESNZ per
    vehicle-km factors: the total is for the vehicle, whatever `passengers` says. Buses,
    coaches and rail use per passenger-km factors: the total is multiplied by `passengers`.
    `fuel` applies to cars only (absent means UNKNOWN).
    """
    distance = DISTANCE_KM.check(_decimal(distance_km, "distanceKm"), "distanceKm")
    vehicle = _parse_choice(VehicleType, vehicle_type, "vehicleType")
    chosen_fuel = None if fuel is None else _parse_choice(Fuel, fuel, "fuel")
    travellers = _positive_count(passengers, "passengers", MAX_PASSENGERS)

    if vehicle in _CAR_FACTORS:
        factor = get_desnz_factor(_CAR_FACTORS[vehicle][chosen_fuel or Fuel.UNKNOWN])
        return _calculation([_apply(factor, distance)])

    if chosen_fuel not in (None, Fuel.UNKNOWN):
        raise CalculationError(
            "fuel",
            f"DESNZ has no {chosen_fuel} factor for {vehicle}; leave fuel out or use UNKNOWN",
        )
    if vehicle in _PER_VEHICLE_FACTORS:
        factor = get_desnz_factor(_PER_VEHICLE_FACTORS[vehicle])
        return _calculation([_apply(factor, distance)])
    factor = get_desnz_factor(_PER_PASSENGER_FACTORS[vehicle])
    return _calculation([_apply(factor, distance * travellers)])


# --- flights --------------------------------------------------------------------------------


class CabinClass(StrEnum):
    AVERAGE = "AVERAGE"
    ECONOMY = "ECONOMY"
    PREMIUM_ECONOMY = "PREMIUM_ECONOMY"
    BUSINESS = "BUSINESS"
    FIRST = "FIRST"


class HaulBand(StrEnum):
    DOMESTIC = "DOMESTIC"  # both airports in the UK
    SHORT_HAUL = "SHORT_HAUL"  # to/from the UK, under 3700 km
    LONG_HAUL = "LONG_HAUL"  # to/from the UK, 3700 km or more
    INTERNATIONAL = "INTERNATIONAL"  # neither airport in the UK


EARTH_MEAN_RADIUS_KM = 6371.0088
# DESNZ flight factors assume great-circle distance plus 8% for indirect routes and stacking.
GREAT_CIRCLE_UPLIFT = Decimal("1.08")
# DESNZ methodology: short-haul is under 3700 km, long-haul above, for flights to/from the UK.
SHORT_HAUL_LIMIT_KM = Decimal(3700)
UNITED_KINGDOM = "GB"

# (band, cabin) -> (with RF, without RF) DESNZ ids; only the pairs DESNZ publishes.
_FLIGHT_FACTORS: dict[tuple[HaulBand, CabinClass], tuple[str, str]] = {
    (HaulBand.DOMESTIC, CabinClass.AVERAGE): ("21_316_3160_11_1", "21_316_3161_11_1"),
    (HaulBand.SHORT_HAUL, CabinClass.AVERAGE): ("21_316_3162_11_1", "21_316_3163_11_1"),
    (HaulBand.SHORT_HAUL, CabinClass.ECONOMY): ("21_316_3164_11_1", "21_316_3165_11_1"),
    (HaulBand.SHORT_HAUL, CabinClass.BUSINESS): ("21_316_3166_11_1", "21_316_3167_11_1"),
    (HaulBand.LONG_HAUL, CabinClass.AVERAGE): ("21_316_3168_11_1", "21_316_3169_11_1"),
    (HaulBand.LONG_HAUL, CabinClass.ECONOMY): ("21_316_3170_11_1", "21_316_3171_11_1"),
    (HaulBand.LONG_HAUL, CabinClass.PREMIUM_ECONOMY): ("21_316_3172_11_1", "21_316_3173_11_1"),
    (HaulBand.LONG_HAUL, CabinClass.BUSINESS): ("21_316_3174_11_1", "21_316_3175_11_1"),
    (HaulBand.LONG_HAUL, CabinClass.FIRST): ("21_316_3176_11_1", "21_316_3177_11_1"),
    (HaulBand.INTERNATIONAL, CabinClass.AVERAGE): ("21_316_3178_11_1", "21_316_3179_11_1"),
    (HaulBand.INTERNATIONAL, CabinClass.ECONOMY): ("21_316_3180_11_1", "21_316_3181_11_1"),
    (HaulBand.INTERNATIONAL, CabinClass.PREMIUM_ECONOMY): (
        "21_316_3182_11_1",
        "21_316_3183_11_1",
    ),
    (HaulBand.INTERNATIONAL, CabinClass.BUSINESS): ("21_316_3184_11_1", "21_316_3185_11_1"),
    (HaulBand.INTERNATIONAL, CabinClass.FIRST): ("21_316_3186_11_1", "21_316_3187_11_1"),
}


@dataclass(frozen=True, slots=True)
class Airport:
    iata: str
    name: str
    country: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class FlightLeg:
    origin: str
    destination: str


@dataclass(frozen=True, slots=True)
class FlightLegResult:
    origin: str
    destination: str
    great_circle_km: Decimal
    distance_km: Decimal  # great-circle distance with the DESNZ uplift, the one multiplied
    haul_band: HaulBand
    factor_id: str
    kgco2e: Decimal


@dataclass(frozen=True, slots=True)
class FlightCalculation(Calculation):
    legs: list[FlightLegResult]


@cache
def _airports_by_iata() -> Mapping[str, Any]:
    return airportsdata.load("IATA")


def find_airport(iata_code: str, field: str) -> Airport:
    code = iata_code.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise CalculationError(field, f"{iata_code!r} is not a three-letter IATA airport code")
    entry = _airports_by_iata().get(code)
    if entry is None:
        raise CalculationError(field, f"No airport with IATA code {code}", ErrorCode.NOT_FOUND)
    return Airport(
        iata=code,
        name=str(entry["name"]),
        country=str(entry["country"]),
        latitude=float(entry["lat"]),
        longitude=float(entry["lon"]),
    )


def great_circle_km(origin: Airport, destination: Airport) -> Decimal:
    """Haversine distance on a sphere of the Earth's mean radius, to the metre."""
    lat1, lat2 = math.radians(origin.latitude), math.radians(destination.latitude)
    half_dlat = (lat2 - lat1) / 2
    half_dlon = math.radians(destination.longitude - origin.longitude) / 2
    chord = math.sin(half_dlat) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(half_dlon) ** 2
    kilometres = 2 * EARTH_MEAN_RADIUS_KM * math.asin(math.sqrt(chord))
    # Trigonometry needs floats; round once so everything after it is exact Decimal arithmetic.
    return Decimal(kilometres).quantize(Decimal("0.001"))


def haul_band(great_circle_km: Decimal, origin_country: str, destination_country: str) -> HaulBand:
    """DESNZ's band, judged on the great-circle distance (before the 8% uplift)."""
    origin_uk = origin_country == UNITED_KINGDOM
    destination_uk = destination_country == UNITED_KINGDOM
    if origin_uk and destination_uk:
        return HaulBand.DOMESTIC
    if not origin_uk and not destination_uk:
        # DESNZ's "International, to/from non-UK" factors are the ones meant for flights that
        # never touch the UK, whatever their length.
        return HaulBand.INTERNATIONAL
    if great_circle_km < SHORT_HAUL_LIMIT_KM:
        return HaulBand.SHORT_HAUL
    return HaulBand.LONG_HAUL


def estimate_flight(
    legs: Sequence[FlightLeg],
    cabin_class: CabinClass | str = CabinClass.AVERAGE,
    passengers: int = 1,
    radiative_forcing: bool = True,
) -> FlightCalculation:
    """Emissions of a journey of one or more legs, for all `passengers` together.

    Each leg: great-circle distance between the airports times 1.08, times the DESNZ passenger-km
    factor for its haul band and cabin class ("With RF" when `radiative_forcing`), times
    `passengers`. A cabin class DESNZ does not publish for a leg's band is an error.
    """
    cabin = _parse_choice(CabinClass, cabin_class, "cabinClass")
    travellers = _positive_count(passengers, "passengers", MAX_PASSENGERS)
    if not 0 < len(legs) <= MAX_LEGS:
        raise CalculationError("legs", f"A flight has from 1 to {MAX_LEGS} legs")

    results: list[FlightLegResult] = []
    uses: list[FactorUse] = []
    for index, leg in enumerate(legs):
        origin = find_airport(leg.origin, f"legs.{index}.from")
        destination = find_airport(leg.destination, f"legs.{index}.to")
        if origin.iata == destination.iata:
            raise CalculationError(f"legs.{index}.to", "Must differ from the departure airport")
        direct_km = great_circle_km(origin, destination)
        band = haul_band(direct_km, origin.country, destination.country)
        factor_ids = _FLIGHT_FACTORS.get((band, cabin))
        if factor_ids is None:
            offered = ", ".join(c for (b, c) in _FLIGHT_FACTORS if b == band)
            raise CalculationError(
                "cabinClass",
                f"DESNZ has no {cabin} factor for {band} flights such as leg {index} "
                f"({origin.iata}-{destination.iata}); use one of {offered}",
            )
        with_rf, without_rf = factor_ids
        factor = get_desnz_factor(with_rf if radiative_forcing else without_rf)
        flown_km = direct_km * GREAT_CIRCLE_UPLIFT
        use = _apply(factor, flown_km * travellers)
        uses.append(use)
        results.append(
            FlightLegResult(
                origin=origin.iata,
                destination=destination.iata,
                great_circle_km=direct_km,
                distance_km=flown_km,
                haul_band=band,
                factor_id=factor.id,
                kgco2e=use.kgco2e,
            )
        )
    total = _calculation(uses)
    return FlightCalculation(
        total_kgco2e=total.total_kgco2e, factors_used=total.factors_used, legs=results
    )


# --- freight --------------------------------------------------------------------------------


class FreightMode(StrEnum):
    ROAD = "ROAD"
    RAIL = "RAIL"
    SEA = "SEA"
    AIR = "AIR"


# One representative DESNZ tonne.km row per mode, for shipments whose vehicle is unknown.
_FREIGHT_FACTORS = {
    FreightMode.ROAD: "27_304_3140_14_1",  # HGV (all diesel), All HGVs, Average laden
    FreightMode.RAIL: "27_315_3151_14_1",  # Rail, Freight train
    FreightMode.SEA: "27_320_3235_14_1",  # Cargo ship, Container ship, Average
}
# Air freight by distance: (with RF, without RF). A freight leg has no airports, so the band
# is read from its distance alone; DESNZ's long-haul and non-UK values are identical.
_AIR_FREIGHT_SHORT_HAUL = ("27_317_3154_14_1", "27_317_3155_14_1")
_AIR_FREIGHT_LONG_HAUL = ("27_317_3156_14_1", "27_317_3157_14_1")


@dataclass(frozen=True, slots=True)
class FreightLeg:
    mode: FreightMode | str
    distance_km: Decimal | int


def freight_factor(
    mode: FreightMode, distance_km: Decimal, radiative_forcing: bool = True
) -> EmissionFactor:
    """The tonne.km factor used for a leg of `mode` and `distance_km`."""
    if mode is FreightMode.AIR:
        short_haul = distance_km < SHORT_HAUL_LIMIT_KM
        with_rf, without_rf = _AIR_FREIGHT_SHORT_HAUL if short_haul else _AIR_FREIGHT_LONG_HAUL
        return get_desnz_factor(with_rf if radiative_forcing else without_rf)
    return get_desnz_factor(_FREIGHT_FACTORS[mode])


def _tonne_km(mass_kg: Decimal, distance_km: Decimal) -> Decimal:
    return mass_kg / 1000 * distance_km


def estimate_freight(
    mass_kg: Decimal | int, legs: Sequence[FreightLeg], radiative_forcing: bool = True
) -> Calculation:
    """Emissions of moving `mass_kg` along each leg: tonnes times km times the mode's factor.

    Leg distances are taken as travelled (no uplift). `radiative_forcing` affects air legs only.
    """
    mass = FREIGHT_MASS_KG.check(_decimal(mass_kg, "mass"), "mass")
    if not 0 < len(legs) <= MAX_LEGS:
        raise CalculationError("legs", f"A shipment has from 1 to {MAX_LEGS} legs")
    uses = []
    for index, leg in enumerate(legs):
        mode = _parse_choice(FreightMode, leg.mode, f"legs.{index}.mode")
        distance = DISTANCE_KM.check(
            _decimal(leg.distance_km, f"legs.{index}.distanceKm"), f"legs.{index}.distanceKm"
        )
        factor = freight_factor(mode, distance, radiative_forcing)
        uses.append(_apply(factor, _tonne_km(mass, distance)))
    return _calculation(uses)


# --- electricity ----------------------------------------------------------------------------


def grid_factor_for(country_code: str, field: str = "countryCode") -> EmissionFactor:
    alpha2 = country_alpha2(country_code, field)
    try:
        return get_grid_factor(alpha2)
    except UnknownFactorError:
        raise CalculationError(
            field, f"No grid electricity intensity is published for {alpha2}", ErrorCode.NOT_FOUND
        ) from None


def estimate_electricity(energy_kwh: Decimal | int, country_code: str) -> Calculation:
    """Emissions of `energy_kwh` drawn from the country's grid (average intensity)."""
    energy = ENERGY_KWH.check(_decimal(energy_kwh, "energyKwh"), "energyKwh")
    return _calculation([_apply(grid_factor_for(country_code), energy)])


# --- products (the seed's customer-order method) --------------------------------------------


class FigureQuality(StrEnum):
    """How a part's figure was obtained, in the seed's lowercase words."""

    estimated = "estimated"  # lowercase: the seed labels parts this way
    indicative = "indicative"  # from typical usage, not metered


ESTIMATED = FigureQuality.estimated
INDICATIVE = FigureQuality.indicative
# Average calendar month (365.25 / 12 days), so a 48-month lifetime is exactly 4 years of use.
DAYS_PER_MONTH = Decimal("30.4375")
_KG_PER_MASS_UNIT = {"tonnes": Decimal(1000), "kg": Decimal(1)}


@dataclass(frozen=True, slots=True)
class PartLabel:
    """How the seed labels a part of a device's footprint."""

    ghg_scope: str
    ghg_category: str
    type: FigureQuality


_PURCHASED_GOODS = "Category 1: Purchased goods and services"
EMBODIED_LABEL = PartLabel("3", _PURCHASED_GOODS, ESTIMATED)
PACKAGING_LABEL = PartLabel("3", _PURCHASED_GOODS, ESTIMATED)
TRANSPORTATION_LABEL = PartLabel(
    "3", "Category 4: Upstream transportation and distribution", ESTIMATED
)
# Indicative: usage hours are the catalog's typical figure, not metered.
USE_LABEL = PartLabel("2", "Electricity", INDICATIVE)


@dataclass(frozen=True, slots=True)
class ProductFootprint:
    """What the catalog knows about a product for the customer-order method."""

    lifetime_embodied_kgco2e: Decimal
    lifetime_months: int
    default_weight_kg: Decimal
    packaging_factor_id: str  # a DESNZ material factor, e.g. "desnz2025:19_506_5156_15_1"
    packaging_mass_kg: Decimal
    shipping_mode: FreightMode
    shipping_distance_km: Decimal
    power_watts: Decimal
    daily_use_hours: Decimal
    grid_country: str


@dataclass(frozen=True, slots=True)
class EmissionPart:
    description: str
    emission_kgco2e: Decimal
    label: PartLabel
    factors_used: list[FactorUse]

    @property
    def ghg_scope(self) -> str:
        return self.label.ghg_scope

    @property
    def ghg_category(self) -> str:
        return self.label.ghg_category

    @property
    def type(self) -> str:
        return self.label.type


@dataclass(frozen=True, slots=True)
class ProductEmissionBreakdown:
    product_embodied_emission: EmissionPart
    packaging: EmissionPart
    transportation: EmissionPart
    product_use: EmissionPart

    @property
    def parts(self) -> tuple[EmissionPart, ...]:
        return (
            self.product_embodied_emission,
            self.packaging,
            self.transportation,
            self.product_use,
        )

    @property
    def total_kgco2e(self) -> Decimal:
        return sum((part.emission_kgco2e for part in self.parts), Decimal(0))

    def as_calculation(self) -> Calculation:
        uses = [use for part in self.parts for use in part.factors_used]
        return Calculation(total_kgco2e=self.total_kgco2e, factors_used=uses)


def packaging_factor(factor_id: str, field: str = "packaging.factorId") -> EmissionFactor:
    """The material factor for packaging; it must be per unit of mass."""
    try:
        factor = get_factor(factor_id)
    except UnknownFactorError:
        raise CalculationError(
            field, f"No emission factor with id {factor_id!r}", ErrorCode.NOT_FOUND
        ) from None
    if factor.unit not in _KG_PER_MASS_UNIT:
        raise CalculationError(field, f"Factor {factor_id} is per {factor.unit}, not per mass")
    return factor


def validate_product_footprint(product: ProductFootprint) -> None:
    """Raise CalculationError, with the field named as in a product input, if data is unusable."""
    _within(EMBODIED_KG, product.lifetime_embodied_kgco2e, "embodiedEmissionKg")
    _positive_count(product.lifetime_months, "lifetimeMonths", MAX_MONTHS)
    DEVICE_WEIGHT_KG.check(_decimal(product.default_weight_kg, "weightKg"), "weightKg")
    packaging_factor(product.packaging_factor_id)
    _within(DEVICE_WEIGHT_KG, product.packaging_mass_kg, "packaging.massKg")
    _parse_choice(FreightMode, product.shipping_mode, "shipping.mode")
    _within(DISTANCE_KM, product.shipping_distance_km, "shipping.distanceKm")
    _within(POWER_WATTS, product.power_watts, "powerWatts")
    hours = _within(DAILY_USE_HOURS, product.daily_use_hours, "dailyUseHours")
    if hours > 24:
        raise CalculationError("dailyUseHours", "A day has 24 hours")
    grid_factor_for(product.grid_country, "gridCountry")


def estimate_product_item(
    product: ProductFootprint, tenure_months: int, weight_kg: Decimal | int | None = None
) -> ProductEmissionBreakdown:
    """One rented device's share of its product's footprint, split as the seed splits it.

    Embodied and use phase are the lifetime figures times tenure / lifetime (the embodied share
    never exceeds the whole manufacturing footprint). Packaging is its mass times the material
    factor. Transportation moves the device (`weight_kg`, else the catalog weight) plus its
    packaging — the carrier carries both — over the product's shipping leg.
    """
    validate_product_footprint(product)
    tenure = _positive_count(tenure_months, "tenureMonths", MAX_MONTHS)
    device_kg = (
        product.default_weight_kg
        if weight_kg is None
        else DEVICE_WEIGHT_KG.check(_decimal(weight_kg, "weightKg"), "weightKg")
    )
    lifetime = product.lifetime_months

    embodied_months = min(tenure, lifetime)
    embodied = EmissionPart(
        description=(
            f"Manufacturing footprint of {product.lifetime_embodied_kgco2e} kgCO2e "
            f"amortised over {embodied_months} of {lifetime} lifetime months"
        ),
        emission_kgco2e=product.lifetime_embodied_kgco2e * embodied_months / lifetime,
        label=EMBODIED_LABEL,
        factors_used=[],
    )

    material = packaging_factor(product.packaging_factor_id)
    material_use = _apply(material, product.packaging_mass_kg / _KG_PER_MASS_UNIT[material.unit])
    packaging = EmissionPart(
        description=(
            f"{product.packaging_mass_kg} kg of {material.levels[2]} packaging "
            f"({material.column_text.lower()})"
        ),
        emission_kgco2e=material_use.kgco2e,
        label=PACKAGING_LABEL,
        factors_used=[material_use],
    )

    mode = FreightMode(product.shipping_mode)
    shipped_kg = device_kg + product.packaging_mass_kg
    carrier = freight_factor(mode, product.shipping_distance_km)
    carriage = _apply(carrier, _tonne_km(shipped_kg, product.shipping_distance_km))
    transportation = EmissionPart(
        description=(
            f"{shipped_kg} kg (device and packaging) shipped "
            f"{product.shipping_distance_km} km by {mode.value.lower()}"
        ),
        emission_kgco2e=carriage.kgco2e,
        label=TRANSPORTATION_LABEL,
        factors_used=[carriage],
    )

    grid = grid_factor_for(product.grid_country, "gridCountry")
    lifetime_kwh = product.power_watts / 1000 * product.daily_use_hours * DAYS_PER_MONTH * lifetime
    electricity = _apply(grid, lifetime_kwh * tenure / lifetime)
    product_use = EmissionPart(
        description=(
            f"{product.power_watts} W for {product.daily_use_hours} h a day over "
            f"{tenure} months on the {grid.levels[1]} grid"
        ),
        emission_kgco2e=electricity.kgco2e,
        label=USE_LABEL,
        factors_used=[electricity],
    )
    return ProductEmissionBreakdown(
        product_embodied_emission=embodied,
        packaging=packaging,
        transportation=transportation,
        product_use=product_use,
    )
