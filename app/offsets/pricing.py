"""Pure pricing: split a mass across a portfolio's bundles and cost it, exactly.

Splitting uses Jefferson's (D'Hondt) apportionment of grams by weight: every bundle gets at
least its lower quota, and adding a gram never takes one from any bundle (house
monotonicity). Each bundle's cost is its grams times its price per tonne, rounded half up to
a minor unit; the total is the sum of the bundle costs, so the parts always add up. Both
steps are monotone in the mass, which lets `largest_mass_within` binary-search by value.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from app.units import GRAMS_PER_TONNE


@dataclass(frozen=True)
class Share:
    """A bundle's place in a portfolio: weight in basis points and price per tonne."""

    key: object
    weight_bp: int
    unit_price_minor: int


@dataclass(frozen=True)
class PricedShare:
    share: Share
    grams: int
    cost_minor: int


def split_grams(total_grams: int, weights: list[int]) -> list[int]:
    """Jefferson apportionment of `total_grams` by `weights`; ties go to the earlier weight."""
    weight_sum = sum(weights)
    grams = [total_grams * weight // weight_sum for weight in weights]  # lower quotas

    def ahead(i: int, j: int) -> bool:
        # w_i/(g_i+1) > w_j/(g_j+1), compared in integers so ties are exact.
        left, right = weights[i] * (grams[j] + 1), weights[j] * (grams[i] + 1)
        return left > right or (left == right and i < j)

    for _ in range(total_grams - sum(grams)):  # fewer grams left than there are bundles
        best = 0
        for candidate in range(1, len(weights)):
            if ahead(candidate, best):
                best = candidate
        grams[best] += 1
    return grams


def cost_minor(grams: int, unit_price_minor: int) -> int:
    exact = Decimal(grams) * unit_price_minor / GRAMS_PER_TONNE
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def price_mass(total_grams: int, shares: list[Share]) -> list[PricedShare]:
    grams = split_grams(total_grams, [share.weight_bp for share in shares])
    return [
        PricedShare(share, share_grams, cost_minor(share_grams, share.unit_price_minor))
        for share, share_grams in zip(shares, grams, strict=True)
    ]


def total_cost(priced: list[PricedShare]) -> int:
    return sum(part.cost_minor for part in priced)


def largest_mass_within(value_minor: int, shares: list[Share]) -> int:
    """The largest whole number of grams whose total cost is at most `value_minor` (0 if none)."""
    if value_minor <= 0:
        return 0
    cheapest = min(share.unit_price_minor for share in shares)
    # Every gram costs at least the cheapest price, less half a minor unit of rounding per
    # bundle, so this bound is never under the answer.
    high = (value_minor + len(shares)) * GRAMS_PER_TONNE // cheapest + 1
    low = 0
    while low < high:
        middle = (low + high + 1) // 2
        if total_cost(price_mass(middle, shares)) <= value_minor:
            low = middle
        else:
            high = middle - 1
    return low
