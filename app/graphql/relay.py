"""Relay plumbing: global ids to row ids, and pages to connections."""

import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlmodel.sql.expression import SelectOfScalar
from strawberry import relay

from app.db import Database
from app.errors import InvalidInput
from app.pagination import Page, PageRequest, paginate

NodeT = TypeVar("NodeT", bound=relay.Node)
ConnectionT = TypeVar("ConnectionT")


def decode_global_id(value: relay.GlobalID | str) -> relay.GlobalID | None:
    """A global id as sent by a client, or None when it is not one (not base64, no colon)."""
    if isinstance(value, relay.GlobalID):
        return value
    try:
        return relay.GlobalID.from_id(value)
    except ValueError:  # GlobalIDValueError, binascii.Error and UnicodeDecodeError are all one
        return None


def row_id_of(value: relay.GlobalID | str, expected_type: str) -> uuid.UUID | None:
    """The row id inside a global id of `expected_type`, or None for any other value."""
    global_id = decode_global_id(value)
    if global_id is None or global_id.type_name != expected_type:
        return None
    try:
        return uuid.UUID(global_id.node_id)
    except ValueError:
        return None


def parse_global_id(value: relay.GlobalID | str, expected_type: str, field: str) -> uuid.UUID:
    """The row id inside a global id of `expected_type`, or InvalidInput naming the field."""
    row_id = row_id_of(value, expected_type)
    if row_id is None:
        raise InvalidInput(f"Not a {expected_type} id.", field)
    return row_id


async def nodes_by_id(
    loader: Any, node_ids: Iterable[str], to_node: Callable[[Any], NodeT]
) -> list[NodeT | None]:
    """Resolve Relay node ids through a scoped by-id loader; malformed ids resolve to None."""
    ids: list[uuid.UUID | None] = []
    for node_id in node_ids:
        try:
            ids.append(uuid.UUID(node_id))
        except ValueError:
            ids.append(None)
    rows = await loader.load_many([row_id for row_id in ids if row_id is not None])
    by_id = {row.id: row for row in rows if row is not None}
    return [to_node(by_id[row_id]) if row_id in by_id else None for row_id in ids]


async def connection(
    db: Database,
    connection_type: Callable[..., ConnectionT],
    statement: SelectOfScalar[Any],
    model: Any,
    to_node: Callable[[Any], NodeT],
    request: PageRequest,
) -> ConnectionT:
    """One page of a scoped statement as a Relay connection, read in its own session."""
    async with db.session() as session:
        page = await paginate(session, statement, model, request)
    return to_connection(connection_type, page, to_node)


def to_connection(
    connection_type: Callable[..., ConnectionT],
    page: Page[Any],
    to_node: Callable[[Any], NodeT],
) -> ConnectionT:
    edges = [
        relay.Edge(node=to_node(row), cursor=cursor)
        for row, cursor in zip(page.rows, page.cursors, strict=True)
    ]
    return connection_type(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=page.cursors[0] if page.cursors else None,
            end_cursor=page.cursors[-1] if page.cursors else None,
        ),
        total_count=page.total_count,
    )
