"""Pure pricing: the split of a mass across bundles, rounding, and the largest mass by value."""

import random

import pytest

from app.offsets.pricing import (
    Share,
    cost_minor,
    largest_mass_within,
    price_mass,
    split_grams,
    total_cost,
)


def test_split_follows_weights_exactly_when_they_divide() -> None:
    assert split_grams(1_000_000, [6000, 4000]) == [600_000, 400_000]
    assert split_grams(10, [5000, 3000, 2000]) == [5, 3, 2]


def test_split_gives_leftover_grams_by_jefferson_priority_and_earlier_ties() -> None:
    assert split_grams(1, [5000, 5000]) == [1, 0]
    assert split_grams(7, [3333, 3333, 3334]) == [2, 2, 3]
    assert split_grams(3, [5000, 2500, 2500]) == [2, 1, 0]


def test_split_never_takes_a_gram_from_a_bundle_when_the_mass_grows() -> None:
    rng = random.Random(7)
    for _ in range(200):
        weights = [rng.randint(1, 10_000) for _ in range(rng.randint(1, 5))]
        previous = [0] * len(weights)
        for grams in range(400):
            split = split_grams(grams, weights)
            assert sum(split) == grams
            assert all(now >= before for now, before in zip(split, previous, strict=True))
            previous = split


@pytest.mark.parametrize(
    ("grams", "price", "expected"),
    [
        (1_000_000, 1000, 1000),  # 1 t at $10.00
        (1, 1000, 0),  # 0.001 cents
        (500, 1000, 1),  # exactly half a cent rounds up
        (499, 1000, 0),
        (1_500_000, 1850, 2775),  # 1.5 t at $18.50
        (333_333, 2500, 833),  # 833.3325 cents
    ],
)
def test_cost_is_rounded_half_up_to_the_minor_unit(grams: int, price: int, expected: int) -> None:
    assert cost_minor(grams, price) == expected


def test_total_is_the_sum_of_the_bundle_costs() -> None:
    shares = [Share("a", 6000, 1000), Share("b", 4000, 2500)]
    priced = price_mass(1_000_000, shares)
    assert [part.grams for part in priced] == [600_000, 400_000]
    assert [part.cost_minor for part in priced] == [600, 1000]
    assert total_cost(priced) == 1600
    for grams in (1, 7, 333_333, 999_999, 1_234_567):
        priced = price_mass(grams, shares)
        assert total_cost(priced) == sum(part.cost_minor for part in priced)
        assert sum(part.grams for part in priced) == grams


@pytest.mark.parametrize("value", [1, 2, 3, 100, 1601, 12_345, 1_000_000_00])
def test_largest_mass_within_a_value_is_the_largest(value: int) -> None:
    shares = [Share("a", 5000, 1500), Share("b", 2000, 24_500), Share("c", 3000, 975)]
    grams = largest_mass_within(value, shares)
    assert total_cost(price_mass(grams, shares)) <= value
    assert total_cost(price_mass(grams + 1, shares)) > value


def test_cost_never_decreases_as_mass_grows() -> None:
    shares = [Share("a", 3333, 1850), Share("b", 3333, 24_500), Share("c", 3334, 975)]
    previous = 0
    for grams in range(0, 20_000, 7):
        cost = total_cost(price_mass(grams, shares))
        assert cost >= previous
        previous = cost


def test_no_mass_for_a_value_below_one_gram() -> None:
    assert largest_mass_within(0, [Share("a", 10_000, 1000)]) == 0
    # One gram at $10/t costs 0.001 cents, rounding to 0: a cent buys 1,499 grams.
    assert largest_mass_within(1, [Share("a", 10_000, 1000)]) == 1499
