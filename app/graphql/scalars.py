"""The schema's own parsing of Decimal, DateTime and Date: bounded and strict at the edge.

Strawberry's defaults accept `"1e999999"` (then arithmetic on it takes seconds), naive
datetimes (which cannot be compared with stored, zone-aware ones) and years that overflow
when converted to UTC. These replace them for every argument and input field of the schema.
"""

import datetime as dt
from decimal import Decimal

from graphql import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from strawberry.types.scalar import ScalarDefinition, scalar

from app.errors import InvalidInput
from app.units import parse_decimal

# Dates the API can meet in real use; beyond them conversion to UTC or adding a tenure overflows.
MIN_YEAR = 1900
MAX_YEAR = 9000


def _iso_text(value: object, kind: str) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(f"Not an ISO 8601 {kind}: send a string such as {_EXAMPLES[kind]}.")
    return value


_EXAMPLES = {"date": '"2026-01-31"', "datetime": '"2026-01-31T12:00:00Z"'}


def _within_years(year: int, kind: str) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidInput(f"The {kind}'s year must be from {MIN_YEAR} to {MAX_YEAR}.")


def parse_datetime(value: object) -> dt.datetime:
    """An ISO 8601 datetime with a UTC offset (or Z), as an aware UTC datetime."""
    text = _iso_text(value, "datetime")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"Not an ISO 8601 datetime: send a string such as {_EXAMPLES['datetime']}."
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput("A datetime needs a UTC offset or Z, e.g. 2026-01-31T12:00:00Z.")
    _within_years(parsed.year, "datetime")  # first, so converting to UTC cannot overflow
    utc = parsed.astimezone(dt.UTC)
    _within_years(utc.year, "datetime")
    return utc


def parse_date(value: object) -> dt.date:
    text = _iso_text(value, "date")
    try:
        parsed = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"Not an ISO 8601 date: send a string such as {_EXAMPLES['date']}."
        ) from None
    _within_years(parsed.year, "date")
    return parsed


def _isoformat(value: dt.date) -> str:
    return value.isoformat()


def _decimal_literal(node: ValueNode, _variables: object = None) -> Decimal:
    """A literal's own text, never through float: `amount: 1.0000000000000001` stays exact."""
    if isinstance(node, (StringValueNode, IntValueNode, FloatValueNode)):
        return parse_decimal(node.value)
    raise InvalidInput('Send a decimal as a string, e.g. "12.5".')


BoundedDecimal: ScalarDefinition = scalar(
    name="Decimal",
    description='An exact decimal number, sent and returned as a string (e.g. `"12.50"`; '
    "JSON integers are accepted, JSON floats are not, as they may have lost digits). At most "
    "28 significant digits and an exponent within ±40; each field documents its own maximum "
    "and decimal places.",
    serialize=str,
    parse_value=parse_decimal,
    parse_literal=_decimal_literal,
)

AwareDateTime: ScalarDefinition = scalar(
    name="DateTime",
    description="An ISO 8601 date and time with a UTC offset, e.g. `2026-01-31T12:00:00Z`; "
    f"years {MIN_YEAR} to {MAX_YEAR}. Returned in UTC.",
    serialize=_isoformat,
    parse_value=parse_datetime,
)

IsoDate: ScalarDefinition = scalar(
    name="Date",
    description=f"An ISO 8601 calendar date, e.g. `2026-01-31`; years {MIN_YEAR} to {MAX_YEAR}.",
    serialize=_isoformat,
    parse_value=parse_date,
)

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {
    Decimal: BoundedDecimal,
    dt.datetime: AwareDateTime,
    dt.date: IsoDate,
}
