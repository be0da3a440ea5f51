"""Relay plumbing: global ids to row ids, and pages to connections."""

import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import strawberry
from graphql import FieldNode
from sqlmodel.sql.expression import SelectOfScalar
from strawberry import relay
from strawberry.types.base import get_object_definition
from strawberry.types.nodes import SelectedField

from app import public_ids
from app.accounts.service import Principal
from app.db import plain_rows
from app.errors import InvalidInput
from app.graphql.context import Info
from app.graphql.dataloaders import DataLoaders
from app.graphql.dataloaders.batched import RowsByIdLoader
from app.graphql.plans import plannable, plannable_root, plannable_type_name
from app.graphql.reads import RequestReads
from app.pagination import Page, PageRequest, paginate

NodeT = TypeVar("NodeT", bound=relay.Node)
ConnectionT = TypeVar("ConnectionT")
FilterT = TypeVar("FilterT")
Row = TypeVar("Row")
T = TypeVar("T")


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
    if isinstance(value, relay.GlobalID):
        value = str(value)
    try:
        return public_ids.decode(value, expected_type)
    except ValueError:
        return None


def parse_global_id(value: relay.GlobalID | str, expected_type: str, field: str) -> uuid.UUID:
    """The row id inside a global id of `expected_type`, or InvalidInput naming the field."""
    row_id = row_id_of(value, expected_type)
    if row_id is None:
        raise InvalidInput(f"Not a {expected_type} id.", field)
    return row_id


def map_optional(to_type: Callable[[Row], T], row: Row | None) -> T | None:
    """A row as its GraphQL type, None staying None."""
    return to_type(row) if row is not None else None


def alone_at_root(info: Info) -> bool:
    """Whether the field is its operation's only root selection: no sibling can join a batch
    it starts."""
    selections = info.operation.selection_set.selections
    return info.path.prev is None and len(selections) == 1 and isinstance(selections[0], FieldNode)


async def node_by_id(
    info: Info,
    loader: RowsByIdLoader[Any],
    row_id: uuid.UUID | None,
    to_node: Callable[[Any], NodeT],
) -> NodeT | None:
    """One row through a scoped by-id loader as its node, or None (no such id, or not ours).
    The only field of an operation reads at once, with nothing to batch with."""
    if row_id is None:
        return None
    if alone_at_root(info):
        return map_optional(to_node, await loader.load_alone(row_id))
    return map_optional(to_node, await loader.load(row_id))


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


def nodes_loaded_by(loader_of: Callable[[DataLoaders], Any]) -> Any:
    """A Node type's `resolve_nodes`, through the by-id loader `loader_of` picks from the
    operation's loaders and the type's `from_row` (`node(id:)` and `nodes(ids:)`)."""

    async def resolve_nodes(
        cls: Any, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        return await nodes_by_id(loader_of(info.context.loaders), node_ids, cls.from_row)

    return classmethod(resolve_nodes)


def connection_field(
    connection_type: type[ConnectionT],
    rows_of: Callable[[Principal], SelectOfScalar[Any]],
    model: Any,
    to_node: Callable[[Any], NodeT],
    *,
    description: str,
) -> Any:
    """A root field `(first, after, last, before) -> connection_type` over the rows the
    principal may see, newest first: the one shape of every paged list of the graph."""

    async def resolve(
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> ConnectionT:
        statement = rows_of(info.context.require_principal())
        request = PageRequest(first, after, last, before)
        return await connection(info, connection_type, statement, model, to_node, request)

    resolve.__annotations__["return"] = connection_type
    return strawberry.field(resolver=resolve, description=description)


def filtered_connection_field(
    connection_type: type[ConnectionT],
    filter_type: type[FilterT],
    rows_of: Callable[[Principal, FilterT | None], SelectOfScalar[Any]],
    model: Any,
    to_node: Callable[[Any], NodeT],
    *,
    description: str,
) -> Any:
    """`connection_field` with a `filter: filter_type` argument passed on to `rows_of`."""

    async def resolve(
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: Any = None,
    ) -> ConnectionT:
        statement = rows_of(info.context.require_principal(), filter)
        request = PageRequest(first, after, last, before)
        return await connection(info, connection_type, statement, model, to_node, request)

    resolve.__annotations__.update({"return": connection_type, "filter": filter_type | None})
    return strawberry.field(resolver=resolve, description=description)


async def connection(
    info: Info,
    connection_type: Callable[..., ConnectionT],
    statement: SelectOfScalar[Any],
    model: Any,
    to_node: Callable[[Any], NodeT],
    request: PageRequest,
) -> ConnectionT:
    """One page of a scoped statement as a Relay connection, counted only when asked for;
    its rows are plain (no ORM instances to build): they are only mapped to nodes."""
    page = await read_page(
        info.context.reads, statement, model, request, selects(info, "totalCount")
    )
    return to_connection(connection_type, page, to_node)


async def read_page(
    reads: RequestReads,
    statement: SelectOfScalar[Any],
    model: Any,
    request: PageRequest,
    count: bool,
) -> Page[Any]:
    """One page of a scoped statement's plain rows (no ORM instances to build: they are only
    mapped to nodes), with its total when `count`."""
    async with reads.session() as session:
        return await paginate(session, plain_rows(statement), model, request, count=count)


def plannable_connection(
    field_name: str,
    connection_type: type[ConnectionT],
    node_type: type[relay.Node],
    rows_of: Callable[[Principal], SelectOfScalar[Any]],
    model: Any,
) -> None:
    """Let compiled plans (app/graphql/plans.py) answer the root field `field_name`, a
    `connection_field` (a `filtered_connection_field` only when sent no filter): the same
    statement and page as its resolver, shaped from the connection `to_connection` builds,
    whose nodes are left as the plain rows (the node type's readers read them)."""

    async def read(context: Any, arguments: dict[str, Any], selected: frozenset[str]) -> Any:
        request = PageRequest(
            arguments.get("first"),
            arguments.get("after"),
            arguments.get("last"),
            arguments.get("before"),
        )
        statement = rows_of(context.require_principal())
        page = await read_page(context.reads, statement, model, request, "totalCount" in selected)
        return to_connection(connection_type, page, _as_is)

    plannable_root(field_name, read, frozenset({"first", "after", "last", "before"}))
    plannable(connection_type)
    plannable_type_name(f"{get_object_definition(node_type, strict=True).name}Edge")


def _as_is(row: T) -> T:
    return row


def selects(info: Info, field_name: str) -> bool:
    """Whether the current field's selection asks for `field_name` (fragments included)."""

    def among(selections: Iterable[Any]) -> bool:
        return any(
            selection.name == field_name
            if isinstance(selection, SelectedField)
            else among(selection.selections)
            for selection in selections
        )

    return any(among(field.selections) for field in info.selected_fields)


def to_connection(
    connection_type: Callable[..., ConnectionT],
    page: Page[Any],
    to_node: Callable[[Any], Any],
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
        # Unset only when the selection has no totalCount, so nobody reads it.
        total_count=page.total_count if page.total_count is not None else 0,
    )


plannable(relay.PageInfo)
