"""Text and JSON from clients: refused when no database can store them as sent."""

import pytest

from app.countries import country_alpha2
from app.errors import InvalidInput
from app.text import MAX_JSON_INTEGER, check_json, clean_text, readable_json


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfff", "\x00"])
def test_nul_and_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        clean_text(text, "description", max_length=512)


def test_text_is_trimmed_and_bounded() -> None:
    assert clean_text("  Acme  ", "name", max_length=10) == "Acme"
    with pytest.raises(InvalidInput, match="must not be empty"):
        clean_text("   ", "name", max_length=10)
    with pytest.raises(InvalidInput, match="at most 3 characters"):
        clean_text("abcd", "name", max_length=3)
    assert clean_text("", "description", max_length=3, required=False) == ""


DEEP: list[object] = [1]
for _ in range(20):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    "value",
    [
        {"n": float("nan")},
        {"n": float("inf")},
        {"n": 18446744073709551616},
        {"n": -(2**53)},
        {"k\x00": 1},
        {"\ud800": 1},
        {"s": "a\x00"},
        {"deep": DEEP},
        {"set": {1, 2}},
    ],
)
def test_metadata_must_round_trip_on_both_databases(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_json(value, "metadata")


def test_ordinary_metadata_passes() -> None:
    check_json({"customer": "c-1", "n": MAX_JSON_INTEGER, "x": 1.5, "tags": ["a", None, True]}, "m")


def test_stored_json_that_old_code_let_in_still_reads_back() -> None:
    assert readable_json({"n": 18446744073709551616, "f": float("nan"), "ok": [1, "a"]}) == {
        "n": "18446744073709551616",
        "f": None,
        "ok": [1, "a"],
    }


@pytest.mark.parametrize(
    ("code", "alpha2"), [("GB", "GB"), ("uk", "GB"), ("UK", "GB"), ("fra", "FR"), (" de ", "DE")]
)
def test_one_country_normaliser_agrees_on_uk(code: str, alpha2: str) -> None:
    assert country_alpha2(code) == alpha2


@pytest.mark.parametrize("code", ["ZZ", "FRANCE", "", "ÅÅ", "\x00\x00"])
def test_unknown_countries_are_refused(code: str) -> None:
    with pytest.raises(InvalidInput):
        country_alpha2(code, "country")
