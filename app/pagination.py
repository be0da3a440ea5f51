"""Keyset pagination, newest first, for Relay connections over any table with `created_at, id`."""

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, tuple_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.db import core_rows
from app.errors import InvalidInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

Row = TypeVar("Row")


@dataclass(frozen=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def size(self) -> int:
        if self.first is not None and self.last is not None:
            raise InvalidInput("Pass either first or last, not both.", "first")
        for name, value in (("first", self.first), ("last", self.last)):
            if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
                raise InvalidInput(f"{name} must be between 0 and {MAX_PAGE_SIZE}.", name)
        if self.last is not None:
            return self.last
        return self.first if self.first is not None else DEFAULT_PAGE_SIZE


@dataclass
class Page(Generic[Row]):
    rows: list[Row]
    total_count: int | None  # None when not asked for
    has_next_page: bool
    has_previous_page: bool
    cursors: list[str] = field(default_factory=list)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    # The JSON `["<isoformat>","<uuid>"]`, spelled out: neither string has a character JSON
    # escapes, and json.dumps was most of the cost of a page's twenty cursors.
    raw = f'["{created_at.isoformat()}","{row_id}"]'
    return base64.urlsafe_b64encode(raw.encode()).decode()


# Our cursors hold a row's creation time, so any real one falls within these years; a forged
# one outside them would overflow PostgreSQL's timestamp range instead of being refused.
_CURSOR_YEARS = range(2000, 9000)
MAX_CURSOR_LENGTH = 200


def decode_cursor(cursor: str, argument: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) inside a cursor we issued, or InvalidInput for anything else."""
    malformed = InvalidInput("Malformed cursor.", argument)
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise malformed
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise malformed from None
    if not (
        isinstance(decoded, list)
        and len(decoded) == 2
        and all(isinstance(part, str) for part in decoded)
    ):
        raise malformed
    try:
        moment, key = datetime.fromisoformat(decoded[0]), uuid.UUID(decoded[1])
    except ValueError:
        raise malformed from None
    # Ours always carry UTC; a naive or far-off one was made up.
    if moment.utcoffset() is None or moment.year not in _CURSOR_YEARS:
        raise malformed
    return moment, key


async def paginate(
    session: AsyncSession,
    statement: SelectOfScalar[Row] | Select[Any],
    model: Any,
    request: PageRequest,
    *,
    count: bool = True,
) -> Page[Any]:
    """One page of `statement`'s rows of `model` (instances, or plain rows), newest first: one
    query whatever the size, and one more for the total when `count`."""
    size = request.size()
    total = None
    if count:
        counted = select(func.count()).select_from(statement.subquery())
        total = int((await session.exec(counted)).one())
    key = tuple_(model.created_at, model.id)
    windowed: Any = statement  # instances or plain rows: the same keyset either way
    if request.after is not None:
        windowed = windowed.where(key < tuple_(*decode_cursor(request.after, "after")))
    if request.before is not None:
        windowed = windowed.where(key > tuple_(*decode_cursor(request.before, "before")))
    backwards = request.last is not None
    order = (
        (model.created_at.asc(), model.id.asc())
        if backwards
        else (model.created_at.desc(), model.id.desc())
    )
    windowed = windowed.order_by(*order).limit(size + 1)
    if isinstance(statement, SelectOfScalar):
        rows = list((await session.exec(windowed)).all())
    else:  # plain rows: through Core, without the ORM's result machinery
        rows = list(await core_rows(session, windowed))
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
        has_next, has_previous = request.before is not None, has_more
    else:
        has_next, has_previous = has_more, request.after is not None
    return Page(
        rows=rows,
        total_count=total,
        has_next_page=has_next,
        has_previous_page=has_previous,
        cursors=[encode_cursor(row.created_at, row.id) for row in rows],
    )
