"""Tests for app/emissions/factors.py: the shipped datasets load, validate and are found by id."""

import csv
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from app.emissions.factors import (
    DATA_DIR,
    DESNZ_2025_FILES,
    GRID_INTENSITY_FILE,
    EmissionFactor,
    FactorDataError,
    UnknownFactorError,
    get_desnz_factor,
    get_factor,
    get_grid_factor,
    grid_countries,
    load_factors,
    read_factor_datasets,
)


def _csv_rows(file_name: str) -> list[dict[str, str]]:
    with (DATA_DIR / file_name).open(encoding="utf-8", newline="") as data_file:
        return list(csv.DictReader(data_file))


def test_every_desnz_row_is_loaded_with_its_exact_value() -> None:
    for file_name in DESNZ_2025_FILES:
        for row in _csv_rows(file_name):
            factor = get_desnz_factor(row["desnz_id"])
            assert factor.kgco2e_per_unit == Decimal(row["kgCO2e_per_unit"])
            assert factor.unit == row["uom"]
            assert factor.source_ref == row["desnz_id"]


def test_the_key_factor_file_keeps_all_485_desnz_factors() -> None:
    assert len(_csv_rows("desnz_2025.csv")) == 485


def test_a_factor_carries_its_source_year_and_ghg_labels() -> None:
    average_car = get_desnz_factor("25_301_3074_4_1")

    assert average_car == EmissionFactor(
        id="desnz2025:25_301_3074_4_1",
        levels=("Business travel- land", "Cars (by size)", "Average car", ""),
        column_text="Unknown",
        unit="km",
        kgco2e_per_unit=Decimal("0.16725"),
        source="DESNZ GHG conversion factors 2025",
        year=2025,
        ghg_scope="3",
        ghg_category="Category 6: Business travel",
        source_ref="25_301_3074_4_1",
    )
    assert average_car.activity == "Business travel- land > Cars (by size) > Average car > Unknown"


def test_freight_and_material_factors_get_their_scope_3_categories() -> None:
    freight_train = get_desnz_factor("27_315_3151_14_1")
    board = get_desnz_factor("19_506_5156_15_1")

    assert (freight_train.ghg_scope, freight_train.ghg_category) == (
        "3",
        "Category 4: Upstream transportation and distribution",
    )
    assert (board.ghg_scope, board.ghg_category) == (
        "3",
        "Category 1: Purchased goods and services",
    )
    assert board.unit == "tonnes"


def test_grid_factors_are_kg_per_kwh_converted_from_grams() -> None:
    france = get_grid_factor("FR")

    assert france.kgco2e_per_unit == Decimal("0.04418")
    assert france.unit == "kWh"
    assert (france.ghg_scope, france.ghg_category) == ("2", "Electricity")
    assert france.year == 2024
    assert "Ember" in france.source


def test_the_uk_grid_factor_is_desnz_2024() -> None:
    uk = get_grid_factor("gb")

    assert uk.kgco2e_per_unit == Decimal("0.20705")
    assert uk.year == 2024
    assert uk.source == "DESNZ GHG conversion factors 2024"


def test_every_grid_row_is_a_country_with_a_source() -> None:
    rows = _csv_rows(GRID_INTENSITY_FILE)

    assert grid_countries() == {row["country_alpha2"] for row in rows}
    assert len(rows) == len(grid_countries())
    assert all(row["source"] and row["source_ref"] for row in rows)


def test_unknown_ids_raise_unknown_factor_error() -> None:
    with pytest.raises(UnknownFactorError):
        get_factor("desnz2025:no_such_id")
    with pytest.raises(UnknownFactorError):
        get_grid_factor("AQ")


def test_datasets_are_read_once() -> None:
    assert load_factors() is load_factors()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    for file_name in (*DESNZ_2025_FILES, GRID_INTENSITY_FILE):
        shutil.copy(DATA_DIR / file_name, tmp_path / file_name)
    return tmp_path


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_an_intact_copy_of_the_data_reads_like_the_shipped_one(data_copy: Path) -> None:
    assert dict(read_factor_datasets(data_copy)) == dict(load_factors())


@pytest.mark.parametrize(
    ("file_name", "old", "new", "message"),
    [
        ("desnz_2025.csv", "desnz_id,level1", "id,level1", "expected columns"),
        ("desnz_2025.csv", ",km,0.16725,", ",km,lots,", "is not a number"),
        ("desnz_2025.csv", ",km,0.16725,", ",km,-0.16725,", "positive number"),
        ("desnz_2025.csv", "25_301_3074_4_1", "25_301_3069_4_1", "appears twice"),
        ("desnz_2025.csv", "Scope 3 Cat 6 (business travel)", "Business", "GHG scope"),
        ("desnz_2025_materials.csv", ",tonnes,1199.72542,", ",tonnes,1199.72542,x,", "fields"),
        ("grid_intensity.csv", "FR,FRA,", "FR,DEU,", "not an ISO 3166-1 country"),
        ("grid_intensity.csv", "FR,FRA,France,2024,", "FR,FRA,France,last year,", "not a year"),
    ],
)
def test_a_malformed_file_is_refused_with_its_name(
    data_copy: Path, file_name: str, old: str, new: str, message: str
) -> None:
    _replace_in(data_copy / file_name, old, new)

    with pytest.raises(FactorDataError, match=message) as refused:
        read_factor_datasets(data_copy)
    assert file_name in str(refused.value)


def test_a_missing_file_is_refused(data_copy: Path) -> None:
    (data_copy / GRID_INTENSITY_FILE).unlink()

    with pytest.raises(FactorDataError, match=GRID_INTENSITY_FILE):
        read_factor_datasets(data_copy)
