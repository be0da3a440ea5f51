"""Emission factor datasets shipped in app/emissions/data: loaded once, validated, found by id."""

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from types import MappingProxyType

import pycountry

DATA_DIR = Path(__file__).parent / "data"

DESNZ_2025_FILES = ("desnz_2025.csv", "desnz_2025_materials.csv")
GRID_INTENSITY_FILE = "grid_intensity.csv"

DESNZ_2025_SOURCE = "DESNZ GHG conversion factors 2025"
DESNZ_2025_YEAR = 2025

DESNZ_COLUMNS = (
    "desnz_id",
    "level1",
    "level2",
    "level3",
    "level4",
    "column_text",
    "uom",
    "kgCO2e_per_unit",
    "suggested_ghg_scope_category",
)
GRID_COLUMNS = (
    "country_alpha2",
    "country_alpha3",
    "country_name",
    "year",
    "gco2e_per_kwh",
    "source",
    "source_ref",
)

# The GHG Protocol's names for the fifteen scope 3 categories; the DESNZ file only says "Cat 6".
SCOPE_3_CATEGORY_NAMES = {
    1: "Category 1: Purchased goods and services",
    2: "Category 2: Capital goods",
    3: "Category 3: Fuel- and energy-related activities",
    4: "Category 4: Upstream transportation and distribution",
    5: "Category 5: Waste generated in operations",
    6: "Category 6: Business travel",
    7: "Category 7: Employee commuting",
    8: "Category 8: Upstream leased assets",
    9: "Category 9: Downstream transportation and distribution",
    10: "Category 10: Processing of sold products",
    11: "Category 11: Use of sold products",
    12: "Category 12: End-of-life treatment of sold products",
    13: "Category 13: Downstream leased assets",
    14: "Category 14: Franchises",
    15: "Category 15: Investments",
}
# Matches the start of e.g. "Scope 3 Cat 6/7 (business travel/commuting); Scope 1 if ...":
# the first scope and first category named are the ones that apply to a typical reporter.
_SCOPE_CATEGORY = re.compile(r"^Scope (?P<scope>[123])(?: Cat (?P<category>\d+))?")

# Purchased electricity is scope 2; "Electricity" is the category label the seed shows.
GRID_GHG_SCOPE = "2"
GRID_GHG_CATEGORY = "Electricity"


class FactorDataError(Exception):
    """A shipped dataset file is missing or malformed; the service must not start with it."""


class UnknownFactorError(LookupError):
    """No factor with that id (or for that country) is in the shipped datasets."""


@dataclass(frozen=True, slots=True)
class EmissionFactor:
    """One published conversion factor: kg CO2e per `unit` of activity."""

    id: str
    levels: tuple[str, ...]
    column_text: str
    unit: str
    kgco2e_per_unit: Decimal
    source: str
    year: int
    ghg_scope: str
    ghg_category: str
    source_ref: str

    @property
    def activity(self) -> str:
        parts = [level for level in self.levels if level]
        if self.column_text:
            parts.append(self.column_text)
        return " > ".join(parts)


def desnz_factor_id(desnz_id: str) -> str:
    return f"desnz2025:{desnz_id}"


def grid_factor_id(country_alpha2: str) -> str:
    return f"grid:{country_alpha2}"


@cache
def load_factors() -> Mapping[str, EmissionFactor]:
    """Every shipped factor by id; read and validated on first use, then kept."""
    return read_factor_datasets(DATA_DIR)


def read_factor_datasets(data_dir: Path) -> Mapping[str, EmissionFactor]:
    """Read and validate the dataset files in `data_dir`; raises FactorDataError if one is bad."""
    factors: dict[str, EmissionFactor] = {}
    for file_name in DESNZ_2025_FILES:
        for factor in _read_desnz_file(data_dir / file_name):
            _add_unique(factors, factor, file_name)
    for factor in _read_grid_file(data_dir / GRID_INTENSITY_FILE):
        _add_unique(factors, factor, GRID_INTENSITY_FILE)
    return MappingProxyType(factors)


def get_factor(factor_id: str) -> EmissionFactor:
    try:
        return load_factors()[factor_id]
    except KeyError:
        raise UnknownFactorError(f"No emission factor with id {factor_id!r}") from None


def get_desnz_factor(desnz_id: str) -> EmissionFactor:
    return get_factor(desnz_factor_id(desnz_id))


def get_grid_factor(country_alpha2: str) -> EmissionFactor:
    """The grid electricity factor (kg CO2e per kWh) for an ISO 3166-1 alpha-2 country."""
    try:
        return load_factors()[grid_factor_id(country_alpha2.upper())]
    except KeyError:
        raise UnknownFactorError(
            f"No grid electricity intensity for country {country_alpha2!r}"
        ) from None


def grid_countries() -> frozenset[str]:
    """Alpha-2 codes of the countries that have a grid electricity factor."""
    prefix = grid_factor_id("")
    return frozenset(key.removeprefix(prefix) for key in load_factors() if key.startswith(prefix))


def _add_unique(factors: dict[str, EmissionFactor], factor: EmissionFactor, file_name: str) -> None:
    if factor.id in factors:
        raise FactorDataError(f"{file_name}: factor id {factor.id!r} appears twice")
    factors[factor.id] = factor


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(encoding="utf-8", newline="") as data_file:
            reader = csv.DictReader(data_file)
            if tuple(reader.fieldnames or ()) != columns:
                raise FactorDataError(
                    f"{path.name}: expected columns {', '.join(columns)}; "
                    f"found {', '.join(reader.fieldnames or ())}"
                )
            rows = [(reader.line_num, row) for row in reader]
    except OSError as error:
        raise FactorDataError(f"{path.name}: cannot be read ({error})") from error
    except (UnicodeDecodeError, csv.Error) as error:
        raise FactorDataError(f"{path.name}: not a UTF-8 CSV file ({error})") from error
    if not rows:
        raise FactorDataError(f"{path.name}: has no rows")
    for line, row in rows:
        if None in row or any(value is None for value in row.values()):
            raise FactorDataError(f"{path.name}:{line}: wrong number of fields")
    return rows


def _positive_decimal(text: str, where: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FactorDataError(f"{where}: {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise FactorDataError(f"{where}: factor must be a positive number, got {text!r}")
    return value


def _scope_and_category(text: str, where: str) -> tuple[str, str]:
    match = _SCOPE_CATEGORY.match(text)
    if match is None:
        raise FactorDataError(f"{where}: cannot read a GHG scope from {text!r}")
    scope = match["scope"]
    if match["category"] is None:
        return scope, ""
    category_name = SCOPE_3_CATEGORY_NAMES.get(int(match["category"]))
    if scope != "3" or category_name is None:
        raise FactorDataError(f"{where}: unknown GHG category in {text!r}")
    return scope, category_name


def _read_desnz_file(path: Path) -> list[EmissionFactor]:
    factors = []
    for line, row in _read_rows(path, DESNZ_COLUMNS):
        where = f"{path.name}:{line}"
        desnz_id = row["desnz_id"].strip()
        if not desnz_id or not row["level1"].strip() or not row["uom"].strip():
            raise FactorDataError(f"{where}: desnz_id, level1 and uom are required")
        scope, category = _scope_and_category(row["suggested_ghg_scope_category"], where)
        factors.append(
            EmissionFactor(
                id=desnz_factor_id(desnz_id),
                levels=(row["level1"], row["level2"], row["level3"], row["level4"]),
                column_text=row["column_text"],
                unit=row["uom"],
                kgco2e_per_unit=_positive_decimal(row["kgCO2e_per_unit"], where),
                source=DESNZ_2025_SOURCE,
                year=DESNZ_2025_YEAR,
                ghg_scope=scope,
                ghg_category=category,
                source_ref=desnz_id,
            )
        )
    return factors


def _read_grid_file(path: Path) -> list[EmissionFactor]:
    factors = []
    for line, row in _read_rows(path, GRID_COLUMNS):
        where = f"{path.name}:{line}"
        alpha2, alpha3 = row["country_alpha2"], row["country_alpha3"]
        country = pycountry.countries.get(alpha_2=alpha2)
        if country is None or country.alpha_3 != alpha3:
            raise FactorDataError(f"{where}: {alpha2}/{alpha3} is not an ISO 3166-1 country")
        if not row["year"].isdigit():
            raise FactorDataError(f"{where}: year {row['year']!r} is not a year")
        if not row["source"].strip() or not row["source_ref"].strip():
            raise FactorDataError(f"{where}: source and source_ref are required")
        # The file keeps the sources' own unit (g/kWh) so it can be compared with them by eye.
        kg_per_kwh = _positive_decimal(row["gco2e_per_kwh"], where) / 1000
        factors.append(
            EmissionFactor(
                id=grid_factor_id(alpha2),
                levels=("Electricity generation", row["country_name"]),
                column_text="",
                unit="kWh",
                kgco2e_per_unit=kg_per_kwh,
                source=row["source"],
                year=int(row["year"]),
                ghg_scope=GRID_GHG_SCOPE,
                ghg_category=GRID_GHG_CATEGORY,
                source_ref=row["source_ref"],
            )
        )
    return factors
