"""Tests for app/emissions/calculators.py against hand-computed values from the shipped factors."""

from dataclasses import replace
from decimal import Decimal

import pytest

from app.emissions.calculators import (
    DAYS_PER_MONTH,
    CabinClass,
    FlightLeg,
    FreightLeg,
    FreightMode,
    Fuel,
    HaulBand,
    ProductFootprint,
    VehicleType,
    estimate_electricity,
    estimate_flight,
    estimate_freight,
    estimate_ground_transport,
    estimate_product_item,
    find_airport,
    great_circle_km,
    haul_band,
)
from app.emissions.factors import get_factor
from app.errors import DomainError, ErrorCode

INVALID_INPUT, NOT_FOUND = ErrorCode.INVALID_INPUT, ErrorCode.NOT_FOUND


def _raises(code: str, field: str) -> pytest.RaisesExc[DomainError]:
    # A calculator's own CalculationError, or a shared parser's (units, countries): both are
    # domain errors with a code and the input field.
    return pytest.raises(DomainError, check=lambda e: (e.code, e.field) == (code, field))


# --- ground transport -----------------------------------------------------------------------


def test_100_km_in_the_average_car_is_100_times_its_factor() -> None:
    trip = estimate_ground_transport(Decimal(100), VehicleType.AVERAGE_CAR)

    assert trip.total_kgco2e == Decimal("16.725")  # 100 x 0.16725 (Average car, Unknown)
    [use] = trip.factors_used
    assert (use.factor_id, use.quantity, use.unit) == ("desnz2025:25_301_3074_4_1", 100, "km")


def test_the_seed_car_type_is_the_average_car_of_unknown_fuel() -> None:
    trip = estimate_ground_transport(Decimal(100), "PASSENGER_CAR_VAN_OR_SUV")

    assert trip.factors_used[0].factor_id == "desnz2025:25_301_3074_4_1"


def test_car_fuel_picks_the_fuel_row() -> None:
    trip = estimate_ground_transport(Decimal(10), VehicleType.SMALL_CAR, Fuel.BATTERY_ELECTRIC)

    assert trip.total_kgco2e == Decimal("0.3688")  # 10 x 0.03688
    assert trip.factors_used[0].factor_id == "desnz2025:25_301_3052_4_1"


def test_passengers_do_not_multiply_a_per_vehicle_factor() -> None:
    alone = estimate_ground_transport(Decimal(50), VehicleType.TAXI)
    shared = estimate_ground_transport(Decimal(50), VehicleType.TAXI, passengers=4)

    assert alone.total_kgco2e == shared.total_kgco2e == Decimal("10.403")  # 50 x 0.20806


def test_passengers_multiply_a_per_passenger_factor() -> None:
    trip = estimate_ground_transport(Decimal(100), VehicleType.COACH_BUS, passengers=3)

    assert trip.total_kgco2e == Decimal("8.328")  # 300 passenger.km x 0.02776
    assert (trip.factors_used[0].quantity, trip.factors_used[0].unit) == (300, "passenger.km")


@pytest.mark.parametrize("vehicle", list(VehicleType))
def test_every_vehicle_type_has_a_distance_factor(vehicle: VehicleType) -> None:
    trip = estimate_ground_transport(Decimal(1), vehicle)

    factor = get_factor(trip.factors_used[0].factor_id)
    assert factor.levels[0] == "Business travel- land"
    assert factor.unit in ("km", "passenger.km")
    assert trip.total_kgco2e == factor.kgco2e_per_unit


@pytest.mark.parametrize(
    "vehicle",
    [VehicleType.SMALL_CAR, VehicleType.MEDIUM_CAR, VehicleType.LARGE_CAR, VehicleType.AVERAGE_CAR],
)
@pytest.mark.parametrize("fuel", list(Fuel))
def test_every_car_size_has_every_fuel(vehicle: VehicleType, fuel: Fuel) -> None:
    trip = estimate_ground_transport(Decimal(1), vehicle, fuel)

    factor = get_factor(trip.factors_used[0].factor_id)
    assert factor.levels[1] == "Cars (by size)"
    assert factor.unit == "km"


def test_a_fuel_for_a_bus_is_an_unsupported_combination() -> None:
    with _raises(INVALID_INPUT, "fuel"):
        estimate_ground_transport(Decimal(10), VehicleType.LOCAL_BUS, Fuel.DIESEL)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"distance_km": Decimal(0)}, "distanceKm"),
        ({"distance_km": Decimal(-5)}, "distanceKm"),
        ({"distance_km": Decimal("NaN")}, "distanceKm"),
        ({"vehicle_type": "HOVERCRAFT"}, "vehicleType"),
        ({"fuel": "STEAM"}, "fuel"),
        ({"passengers": 0}, "passengers"),
    ],
)
def test_bad_ground_transport_input_names_its_field(
    arguments: dict[str, object], field: str
) -> None:
    inputs: dict[str, object] = {"distance_km": Decimal(10), "vehicle_type": "AVERAGE_CAR"}
    inputs.update(arguments)

    with _raises(INVALID_INPUT, field):
        estimate_ground_transport(**inputs)  # type: ignore[arg-type]


# --- flights --------------------------------------------------------------------------------


def test_london_to_new_york_is_about_5540_km_great_circle() -> None:
    distance = great_circle_km(find_airport("LHR", "from"), find_airport("JFK", "to"))

    assert abs(distance - 5540) / 5540 < Decimal("0.01")


def test_a_long_haul_flight_uplifts_distance_and_multiplies_passengers() -> None:
    flight = estimate_flight([FlightLeg("LHR", "JFK")], CabinClass.ECONOMY, passengers=2)

    [leg] = flight.legs
    assert leg.haul_band is HaulBand.LONG_HAUL
    assert leg.distance_km == leg.great_circle_km * Decimal("1.08")
    assert leg.factor_id == "desnz2025:21_316_3170_11_1"  # Long-haul, Economy, With RF
    assert flight.total_kgco2e == leg.distance_km * 2 * Decimal("0.11704")
    assert flight.factors_used[0].unit == "passenger.km"


def test_without_radiative_forcing_picks_the_without_rf_row() -> None:
    flight = estimate_flight([FlightLeg("LHR", "JFK")], "ECONOMY", radiative_forcing=False)

    assert flight.legs[0].factor_id == "desnz2025:21_316_3171_11_1"


def test_a_flight_within_the_uk_is_domestic() -> None:
    flight = estimate_flight([FlightLeg("lhr", "edi")], CabinClass.AVERAGE)

    assert flight.legs[0].haul_band is HaulBand.DOMESTIC
    assert flight.legs[0].factor_id == "desnz2025:21_316_3160_11_1"


def test_a_flight_not_touching_the_uk_uses_the_non_uk_factors() -> None:
    flight = estimate_flight([FlightLeg("CDG", "FRA")], CabinClass.FIRST)

    assert flight.legs[0].haul_band is HaulBand.INTERNATIONAL
    assert flight.legs[0].factor_id == "desnz2025:21_316_3186_11_1"


def test_the_short_haul_band_ends_at_3700_km() -> None:
    assert haul_band(Decimal("3699.999"), "GB", "TR") is HaulBand.SHORT_HAUL
    assert haul_band(Decimal("3700.000"), "GB", "TR") is HaulBand.LONG_HAUL
    assert haul_band(Decimal("3700.000"), "TR", "GB") is HaulBand.LONG_HAUL
    assert haul_band(Decimal("100"), "GB", "GB") is HaulBand.DOMESTIC
    assert haul_band(Decimal("100"), "FR", "DE") is HaulBand.INTERNATIONAL


def test_each_leg_is_banded_and_summed_on_its_own() -> None:
    journey = estimate_flight([FlightLeg("EDI", "LHR"), FlightLeg("LHR", "JFK")])

    assert [leg.haul_band for leg in journey.legs] == [HaulBand.DOMESTIC, HaulBand.LONG_HAUL]
    assert journey.total_kgco2e == sum(leg.kgco2e for leg in journey.legs)


@pytest.mark.parametrize(
    ("route", "cabin"),
    [(("LHR", "EDI"), CabinClass.ECONOMY), (("LHR", "MAD"), CabinClass.FIRST)],
)
def test_a_cabin_class_desnz_does_not_publish_for_the_band_is_refused(
    route: tuple[str, str], cabin: CabinClass
) -> None:
    with _raises(INVALID_INPUT, "cabinClass"):
        estimate_flight([FlightLeg(*route)], cabin)


@pytest.mark.parametrize(
    ("legs", "code", "field"),
    [
        ([FlightLeg("ZZZ", "JFK")], NOT_FOUND, "legs.0.from"),
        ([FlightLeg("LHR", "JFK"), FlightLeg("JFK", "QQQ")], NOT_FOUND, "legs.1.to"),
        ([FlightLeg("LH", "JFK")], INVALID_INPUT, "legs.0.from"),
        ([FlightLeg("LHR", "LHR")], INVALID_INPUT, "legs.0.to"),
        ([], INVALID_INPUT, "legs"),
    ],
)
def test_bad_flight_legs_name_their_field(legs: list[FlightLeg], code: str, field: str) -> None:
    with _raises(code, field):
        estimate_flight(legs)


def test_zero_passengers_are_refused() -> None:
    with _raises(INVALID_INPUT, "passengers"):
        estimate_flight([FlightLeg("LHR", "JFK")], passengers=0)


# --- freight --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (FreightMode.ROAD, Decimal("10.163")),  # 100 tonne.km x 0.10163 (All HGVs, avg laden)
        (FreightMode.RAIL, Decimal("2.779")),  # x 0.02779 (Freight train)
        (FreightMode.SEA, Decimal("1.612")),  # x 0.01612 (Container ship, Average)
        (FreightMode.AIR, Decimal("127.835")),  # x 1.27835 (Short-haul, With RF)
    ],
)
def test_one_tonne_over_100_km(mode: FreightMode, expected: Decimal) -> None:
    shipment = estimate_freight(Decimal(1000), [FreightLeg(mode, Decimal(100))])

    assert shipment.total_kgco2e == expected
    assert (shipment.factors_used[0].quantity, shipment.factors_used[0].unit) == (100, "tonne.km")


def test_air_freight_from_3700_km_is_long_haul() -> None:
    with_rf = estimate_freight(Decimal(1000), [FreightLeg("AIR", Decimal(3700))])
    without_rf = estimate_freight(
        Decimal(1000), [FreightLeg("AIR", Decimal(3700))], radiative_forcing=False
    )

    assert with_rf.total_kgco2e == Decimal(3700) * Decimal("0.89939")
    assert without_rf.total_kgco2e == Decimal(3700) * Decimal("0.5313")


def test_legs_add_up() -> None:
    shipment = estimate_freight(
        Decimal(500), [FreightLeg("SEA", Decimal(10000)), FreightLeg("ROAD", Decimal(200))]
    )

    assert shipment.total_kgco2e == Decimal("5000") * Decimal("0.01612") + Decimal("100") * Decimal(
        "0.10163"
    )


@pytest.mark.parametrize(
    ("mass", "legs", "field"),
    [
        (Decimal(0), [FreightLeg("ROAD", Decimal(1))], "mass"),
        (Decimal(-1), [FreightLeg("ROAD", Decimal(1))], "mass"),
        (Decimal(1), [], "legs"),
        (
            Decimal(1),
            [FreightLeg("ROAD", Decimal(1)), FreightLeg("ROAD", Decimal(0))],
            "legs.1.distanceKm",
        ),
        (Decimal(1), [FreightLeg("TELEPORT", Decimal(1))], "legs.0.mode"),
    ],
)
def test_bad_freight_input_names_its_field(
    mass: Decimal, legs: list[FreightLeg], field: str
) -> None:
    with _raises(INVALID_INPUT, field):
        estimate_freight(mass, legs)


# --- electricity ----------------------------------------------------------------------------


def test_electricity_is_kwh_times_the_country_grid_factor() -> None:
    uk = estimate_electricity(Decimal(100), "GB")

    assert uk.total_kgco2e == Decimal("20.705")  # 100 x 0.20705 (DESNZ 2024)
    assert uk.factors_used[0].factor_id == "grid:GB"


@pytest.mark.parametrize("code", ["FR", "fr", "FRA", " fra "])
def test_alpha_2_and_alpha_3_codes_are_the_same_country(code: str) -> None:
    assert estimate_electricity(Decimal(100), code).total_kgco2e == Decimal("4.418")


def test_uk_is_accepted_for_the_united_kingdom() -> None:
    assert estimate_electricity(Decimal(1), "UK").factors_used[0].factor_id == "grid:GB"


@pytest.mark.parametrize(
    ("energy", "country", "code", "field"),
    [
        (Decimal(1), "ZZ", INVALID_INPUT, "countryCode"),
        (Decimal(1), "FRANCE", INVALID_INPUT, "countryCode"),
        (Decimal(1), "AQ", NOT_FOUND, "countryCode"),
        (Decimal(0), "FR", INVALID_INPUT, "energyKwh"),
    ],
)
def test_bad_electricity_input_names_its_field(
    energy: Decimal, country: str, code: str, field: str
) -> None:
    with _raises(code, field):
        estimate_electricity(energy, country)


# --- products -------------------------------------------------------------------------------

BOARD = "desnz2025:19_506_5156_15_1"  # Paper and board: board, primary production, per tonne

LAPTOP = ProductFootprint(
    lifetime_embodied_kgco2e=Decimal("109.35"),
    lifetime_months=48,
    default_weight_kg=Decimal("1.24"),
    packaging_factor_id=BOARD,
    packaging_mass_kg=Decimal("0.5"),
    shipping_mode=FreightMode.ROAD,
    shipping_distance_km=Decimal(300),
    power_watts=Decimal(30),
    daily_use_hours=Decimal(8),
    grid_country="GB",
)


def test_embodied_emission_follows_the_seed_worked_example() -> None:
    breakdown = estimate_product_item(LAPTOP, tenure_months=3)

    assert breakdown.product_embodied_emission.emission_kgco2e == Decimal("6.834375")


def test_use_phase_is_the_lifetime_use_times_tenure_over_lifetime() -> None:
    lifetime_kwh = Decimal("0.030") * 8 * DAYS_PER_MONTH * 48
    lifetime_use = lifetime_kwh * Decimal("0.20705")

    breakdown = estimate_product_item(LAPTOP, tenure_months=3)

    assert breakdown.product_use.emission_kgco2e == lifetime_use * 3 / 48
    assert breakdown.product_use.emission_kgco2e == Decimal("4.53750075")


def test_packaging_is_its_mass_times_the_material_factor() -> None:
    breakdown = estimate_product_item(LAPTOP, tenure_months=3)

    assert breakdown.packaging.emission_kgco2e == Decimal("0.0005") * Decimal("1199.72542")


def test_transport_carries_the_device_and_its_packaging() -> None:
    default_weight = estimate_product_item(LAPTOP, tenure_months=3)
    weighed = estimate_product_item(LAPTOP, tenure_months=3, weight_kg=Decimal("2.5"))

    hgv = Decimal("0.10163")
    assert default_weight.transportation.emission_kgco2e == Decimal("1.74") / 1000 * 300 * hgv
    assert weighed.transportation.emission_kgco2e == Decimal("3.0") / 1000 * 300 * hgv
    assert weighed.product_use == default_weight.product_use


def test_parts_carry_the_seed_labels_and_sum_to_the_total() -> None:
    breakdown = estimate_product_item(LAPTOP, tenure_months=3)

    labels = [(p.ghg_scope, p.ghg_category, p.type) for p in breakdown.parts]
    assert labels == [
        ("3", "Category 1: Purchased goods and services", "estimated"),
        ("3", "Category 1: Purchased goods and services", "estimated"),
        ("3", "Category 4: Upstream transportation and distribution", "estimated"),
        ("2", "Electricity", "indicative"),
    ]
    assert breakdown.total_kgco2e == sum(p.emission_kgco2e for p in breakdown.parts)
    calculation = breakdown.as_calculation()
    assert calculation.total_kgco2e == breakdown.total_kgco2e
    assert [use.factor_id for use in calculation.factors_used] == [
        BOARD,
        "desnz2025:27_304_3140_14_1",
        "grid:GB",
    ]


def test_tenure_scales_embodied_and_use_linearly() -> None:
    three = estimate_product_item(LAPTOP, tenure_months=3)
    six = estimate_product_item(LAPTOP, tenure_months=6)

    assert six.product_embodied_emission.emission_kgco2e == (
        2 * three.product_embodied_emission.emission_kgco2e
    )
    assert six.product_use.emission_kgco2e == 2 * three.product_use.emission_kgco2e
    assert six.packaging == three.packaging


def test_embodied_share_stops_at_the_whole_lifetime_footprint() -> None:
    breakdown = estimate_product_item(LAPTOP, tenure_months=60)

    assert breakdown.product_embodied_emission.emission_kgco2e == Decimal("109.35")


@pytest.mark.parametrize(
    ("product", "tenure", "weight", "code", "field"),
    [
        (LAPTOP, 0, None, INVALID_INPUT, "tenureMonths"),
        (LAPTOP, 3, Decimal(0), INVALID_INPUT, "weightKg"),
        (LAPTOP, 3, Decimal(-1), INVALID_INPUT, "weightKg"),
        (replace(LAPTOP, packaging_factor_id="nope"), 3, None, NOT_FOUND, "packaging.factorId"),
        (
            replace(LAPTOP, packaging_factor_id="desnz2025:25_301_3074_4_1"),
            3,
            None,
            INVALID_INPUT,
            "packaging.factorId",
        ),
        (replace(LAPTOP, daily_use_hours=Decimal(25)), 3, None, INVALID_INPUT, "dailyUseHours"),
        (replace(LAPTOP, lifetime_months=0), 3, None, INVALID_INPUT, "lifetimeMonths"),
        (replace(LAPTOP, grid_country="AQ"), 3, None, NOT_FOUND, "gridCountry"),
    ],
)
def test_bad_product_or_item_input_names_its_field(
    product: ProductFootprint, tenure: int, weight: Decimal | None, code: str, field: str
) -> None:
    with _raises(code, field):
        estimate_product_item(product, tenure_months=tenure, weight_kg=weight)
