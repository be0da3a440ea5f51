"""Data versions: a counter per scope that every committing write advances in its own transaction.

A scope is what a read may depend on. Every table carries `account_id` and `mode` (the
catalog and the stock belong to an account and a mode too, see app/catalog/models.py), so:
- `a:<account>:<mode>` covers the rows of one account in one mode;
- `a:<account>` covers the account's own row, which has no mode;
- `*` is advanced by a write whose scope cannot be told; every read depends on it.
A read of (account, mode) depends on those three scopes, and on `epoch`, a random number the
migration wrote, so that a recreated database never repeats the versions of the old one.

The versions advance at the unit of work, whatever the write: `track_data_versions` listens on
a Session class. ORM objects are scoped by their own `account_id` and `mode` (a row without
them, such as a webhook attempt or an order line, by the row its foreign key names); Core
INSERT/UPDATE/DELETE statements by their values or WHERE equalities, or else by the scopes
of the rows they are about to change (one SELECT with the same WHERE); statements we cannot
read (text DML, INSERT … SELECT) advance `*`. A write that moves a row to another account or
mode (an ORM object's changed `account_id`/`mode`, an UPDATE that sets them, a changed foreign
key of a row scoped by its parent) advances the scope it leaves and the one it enters; an
UPDATE setting them to an SQL expression, whose result we cannot tell, advances `*`.
Just before the commit, one statement advances every touched scope, in that same
transaction: a reader sees the new data and the new version together, or neither.

The SELECT before an UPDATE/DELETE sees the rows committed when it runs. Under PostgreSQL's
READ COMMITTED the statement itself may also match a row another transaction commits in the
instant between the two; the UPDATEs here name their rows by primary key, which no concurrent
insert can match. A statement that could should say its account and mode in its WHERE.
"""

import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import BigInteger, Column, ColumnElement, Table, event, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    object_mapper,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, TextClause
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.memo import Memo

GLOBAL_SCOPE = "*"
EPOCH_SCOPE = "epoch"
ACCOUNT_TABLE = "account"  # the tenant table: its rows are scoped by their own id
ACCOUNT_COLUMN = "account_id"
MODE_COLUMN = "mode"
_PENDING = "cg_data_scopes"  # Session.info key: scopes this transaction has touched
_PARENTS = "cg_data_parents"  # Session.info key: rows (table, id) whose scope is still unknown
_INSERTED = "cg_data_inserted"  # Session.info key: scopes of rows Core inserted, by table and id
_WRITING_SQL = ("insert", "update", "delete", "merge", "replace", "upsert", "truncate")


class DataVersion(SQLModel, table=True):
    __tablename__ = "data_version"

    scope: str = Field(primary_key=True, max_length=80)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))


def _mode_text(mode: object) -> str:
    return str(getattr(mode, "value", mode))


def account_scope(account_id: uuid.UUID | str, mode: object) -> str:
    return f"a:{account_id}:{_mode_text(mode)}"


def account_row_scope(account_id: uuid.UUID | str) -> str:
    return f"a:{account_id}"


def read_scopes(account_id: uuid.UUID | str, mode: object) -> tuple[str, ...]:
    """The scopes whose versions a read of one account in one mode depends on."""
    return (
        EPOCH_SCOPE,
        GLOBAL_SCOPE,
        account_row_scope(account_id),
        account_scope(account_id, mode),
    )


async def read_versions(
    source: AsyncEngine | AsyncSession, scopes: Sequence[str]
) -> tuple[int, ...]:
    """The current versions of `scopes` (0 for a scope never written), in one statement: on
    `source`'s own connection, or in a request's read session, so that a query's versions and
    its data come through one connection (and, on SQLite, one snapshot)."""
    table = DataVersion.__table__  # type: ignore[attr-defined]
    statement = select(table.c.scope, table.c.version).where(table.c.scope.in_(scopes))
    if isinstance(source, AsyncSession):
        connection = await source.connection()
        rows = list(await connection.execute(statement))
    else:
        async with source.connect() as connection:
            rows = list(await connection.execute(statement))
    found: dict[str, int] = {scope: version for scope, version in rows}
    return tuple(found.get(scope, 0) for scope in scopes)


class SQLiteVersionReader:
    """The versions of an SQLite database, read on the calling thread through a connection of
    its own: a WAL reader never waits for a writer, so the read takes microseconds, where the
    async driver hops to its thread and back for every step of a session. Each read sees what
    was committed when it runs (autocommit), which is all a cache key needs: a query's data,
    read later, can only be newer. `read` answers None when it cannot read at once (the
    database is busy recovering, say): the caller reads the usual way then.

    Between commits the versions are not read again. `PRAGMA data_version` (SQLite's own
    change counter, of the file's shared WAL index) changes on this connection whenever any
    other connection, of this process or another, has committed to the database since it last
    asked; this connection never writes (`query_only`). So while it answers what it answered
    when the versions were read, nothing was committed since and those versions are still the
    current ones. The pragma is asked first: a commit landing between it and the SELECT makes
    the versions newer than the counter, and the next read, seeing the counter move, reads
    them again. It costs about a third of the SELECT, and the SELECT is most of a cache hit's
    database work; measured in bench/README.md."""

    MAX_KEPT = 256  # sets of scopes (one per account and mode) kept between commits

    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(
            path, timeout=0, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA query_only = ON")
        self._data_version: int | None = None
        self._kept: Memo[tuple[str, ...], tuple[int, ...]] = Memo(self.MAX_KEPT)

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> "SQLiteVersionReader | None":
        """A reader for an SQLite file in WAL mode (where readers never block), else None."""
        path = engine.url.database
        if engine.url.get_backend_name() != "sqlite" or not path or path == ":memory:":
            return None
        reader = cls(path)
        if reader._journal_mode() != "wal":
            reader.close()
            return None
        return reader

    def _journal_mode(self) -> str:
        try:
            (mode,) = self._connection.execute("PRAGMA journal_mode").fetchone()
        except sqlite3.Error:
            return ""
        return str(mode).lower()

    def read(self, scopes: Sequence[str]) -> tuple[int, ...] | None:
        scopes = tuple(scopes)
        try:
            (data_version,) = self._connection.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        if data_version != self._data_version:
            self._kept.clear()
            self._data_version = data_version
        elif (kept := self._kept.get(scopes)) is not None:
            return kept
        marks = ", ".join("?" * len(scopes))
        try:
            rows = self._connection.execute(
                f"SELECT scope, version FROM data_version WHERE scope IN ({marks})",  # noqa: S608
                scopes,
            ).fetchall()
        except sqlite3.Error:
            return None
        found: dict[str, int] = dict(rows)
        return self._kept.keep(scopes, tuple(found.get(scope, 0) for scope in scopes))

    def close(self) -> None:
        self._connection.close()


def track_data_versions(session_class: type[Session]) -> None:
    """Make every commit of `session_class` advance the versions of the scopes it wrote."""
    event.listen(session_class, "before_flush", _record_flushed_objects)
    event.listen(session_class, "do_orm_execute", _record_statement)
    event.listen(session_class, "before_commit", _advance_versions)
    event.listen(session_class, "after_transaction_end", _forget_at_the_end)


def _pending(session: Session) -> set[str]:
    pending: set[str] = session.info.setdefault(_PENDING, set())
    return pending


def _forget_at_the_end(session: Session, transaction: SessionTransaction) -> None:
    """Forget the scopes when the outermost transaction ends, committed or not. Not at a
    savepoint's rollback (`after_rollback` fires for those too): the writes made before it
    still commit. Those made inside it may advance their scopes needlessly, which is safe."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
        session.info.pop(_PARENTS, None)
        session.info.pop(_INSERTED, None)


def _scope_columns(table: Any) -> tuple[str, str | None] | None:
    """The columns that tell a row's scope: (account, mode), or (id, None) for an account."""
    columns = table.c
    if ACCOUNT_COLUMN in columns and MODE_COLUMN in columns:
        return ACCOUNT_COLUMN, MODE_COLUMN
    if table.name == ACCOUNT_TABLE and "id" in columns:
        return "id", None
    return None


def _scope_of(account: object, mode: object) -> str | None:
    if account is None:
        return None
    return account_row_scope(str(account)) if mode is None else account_scope(str(account), mode)


def _scoped_parent(table: Any) -> tuple[str, Table] | None:
    """For a row without scope columns: the foreign key naming a row that has them."""
    for foreign_key in sorted(table.foreign_keys, key=lambda fk: fk.parent.name):
        if _scope_columns(foreign_key.column.table) is not None:
            return foreign_key.parent.name, foreign_key.column.table
    return None


def _record_flushed_objects(session: Session, _flush: UOWTransaction, _instances: object) -> None:
    pending = _pending(session)
    parents: dict[Table, set[Any]] = session.info.setdefault(_PARENTS, {})
    for instance in (*session.new, *session.dirty, *session.deleted):
        table: Any = object_mapper(instance).local_table
        if table.name == DataVersion.__tablename__:
            continue
        columns = _scope_columns(table)
        if columns is not None:
            # Before and after this flush: a row moved to another account or mode changes
            # what reads of both scopes see.
            account_column, mode_column = columns
            accounts = _before_and_after(instance, account_column)
            modes = _before_and_after(instance, mode_column) if mode_column else (None, None)
            for account, mode in zip(accounts, modes, strict=True):
                scope = _scope_of(account, mode)
                pending.add(scope if scope is not None else GLOBAL_SCOPE)
            continue
        parent = _scoped_parent(table)
        parent_ids = set(_before_and_after(instance, parent[0])) if parent else {None}
        if parent is None or None in parent_ids:
            pending.add(GLOBAL_SCOPE)
        else:
            parents.setdefault(parent[1], set()).update(parent_ids)


def _before_and_after(instance: object, attribute: str) -> tuple[Any, Any]:
    """An attribute's value as last loaded or flushed, and as it is now (the same unless this
    flush changes it)."""
    now = getattr(instance, attribute, None)
    history = inspect(instance).attrs[attribute].history
    return (history.deleted[0] if history.deleted else now), now


def _record_statement(state: ORMExecuteState) -> None:
    statement = state.statement
    if isinstance(statement, TextClause):
        if statement.text.lstrip().lower().startswith(_WRITING_SQL):
            _pending(state.session).add(GLOBAL_SCOPE)
        return
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = statement.table  # type: ignore[attr-defined]
    if getattr(table, "name", None) == DataVersion.__tablename__:
        return
    _pending(state.session).update(_statement_scopes(state, table))


def _statement_scopes(state: ORMExecuteState, table: Any) -> set[str]:
    columns = _scope_columns(table)
    statement: Any = state.statement
    if columns is None:
        if state.is_insert:
            return _inserted_child_scopes(state.session, table, statement, state.parameters)
        return {GLOBAL_SCOPE}
    account_column, mode_column = columns
    if state.is_insert:
        scopes = set()
        primary = _single_primary_key(table)
        inserted: dict[Any, str] = state.session.info.setdefault(_INSERTED, {}).setdefault(
            table, {}
        )
        for values in _inserted_values(statement, state.parameters):
            mode = values.get(mode_column) if mode_column else None
            scope = _scope_of(values.get(account_column), mode)
            if scope is None or (mode_column and mode is None):
                return {GLOBAL_SCOPE}
            scopes.add(scope)
            if primary is not None and values.get(primary) is not None:
                inserted[values[primary]] = scope
        return scopes or {GLOBAL_SCOPE}
    parameters = state.parameters
    parameter_sets: list[Mapping[str, Any]] = (
        parameters if isinstance(parameters, list) else [cast(Mapping[str, Any], parameters or {})]
    )
    # An UPDATE that sets a scope column moves its rows: their scopes after it count too.
    moves = [
        _scope_assignments(statement, row, columns) if state.is_update else {}
        for row in parameter_sets
    ]
    known = _where_equalities(statement.whereclause)
    if account_column in known and (mode_column is None or mode_column in known):
        before = (known[account_column], known[mode_column] if mode_column else None)
        return {_scope_after(before, move, columns) for move in [{}, *moves]}
    # The scopes of the rows about to change: same WHERE, same transaction, just before.
    query = _scopes_query(table, columns)
    if isinstance(parameters, list):
        # An ORM bulk UPDATE by primary key (one parameter set per row), or a Core executemany
        # whose WHERE is `primary key = :name`.
        if (primary_key := _single_primary_key(table)) is None:
            return {GLOBAL_SCOPE}
        key = _primary_key_parameter(statement.whereclause, table.c[primary_key], primary_key)
        if key is None or any(key not in row for row in parameters):
            return {GLOBAL_SCOPE}
        query = query.add_columns(table.c[primary_key])
        query = query.where(table.c[primary_key].in_([row[key] for row in parameters]))
        rows = {row[-1]: tuple(row[:-1]) for row in state.session.execute(query)}
        scopes = {_scope_after(_pair(row, columns), {}, columns) for row in rows.values()}
        for values, move in zip(parameters, moves, strict=True):
            if move and (row := rows.get(values[key])) is not None:
                scopes.add(_scope_after(_pair(row, columns), move, columns))
        return scopes
    if statement.whereclause is not None:
        query = query.where(statement.whereclause)
    befores = [
        _pair(row, columns) for row in state.session.execute(query.distinct(), parameters or {})
    ]
    return {_scope_after(before, move, columns) for before in befores for move in [{}, *moves]}


# A scope column an UPDATE sets to an SQL expression (not a value): where the row goes is unknown.
_UNKNOWN = object()


def _scope_assignments(
    statement: Any, parameters: Mapping[str, Any], columns: tuple[str, str | None]
) -> dict[str, object]:
    """The values an UPDATE gives the scope columns, for one parameter set: through .values()
    (a bound value, or _UNKNOWN for an SQL expression), or through an execute parameter named
    after the column (Core sets those too, as does the ORM's bulk UPDATE by primary key)."""
    names = [name for name in columns if name is not None]
    assigned: dict[str, object] = {}
    for key, value in (statement._values or {}).items():
        if (name := _column_name(key)) not in names:
            continue
        if isinstance(value, BindParameter):
            assigned[name] = parameters.get(value.key, _bound_value(value))
        else:
            assigned[name] = _UNKNOWN
    assigned.update({name: parameters[name] for name in names if name in parameters})
    return assigned


def _pair(row: Any, columns: tuple[str, str | None]) -> tuple[object, object]:
    return row[0], row[1] if columns[1] is not None else None


def _scope_after(
    before: tuple[object, object], move: Mapping[str, object], columns: tuple[str, str | None]
) -> str:
    """The scope of a row that was in `before` (account, mode) once `move` is applied."""
    account_column, mode_column = columns
    account = move.get(account_column, before[0])
    mode = move.get(mode_column, before[1]) if mode_column else None
    if account is _UNKNOWN or mode is _UNKNOWN or (mode_column and mode is None):
        return GLOBAL_SCOPE
    return _scope_of(account, mode) or GLOBAL_SCOPE


def _single_primary_key(table: Any) -> str | None:
    primary = [column.key for column in table.primary_key.columns]
    return primary[0] if len(primary) == 1 else None


def _inserted_child_scopes(
    session: Session, table: Any, statement: Any, parameters: object
) -> set[str]:
    """Rows without scope columns (order lines) take the scope of a row their foreign keys
    name: known at once when this transaction inserted that row with Core (a create's order),
    else looked up at commit (`_PARENTS`), as for ORM objects."""
    parent = _scoped_parent(table)
    if parent is None:
        return {GLOBAL_SCOPE}
    inserted: dict[Table, dict[Any, str]] = session.info.get(_INSERTED, {})
    known = [
        (foreign_key.parent.name, inserted[foreign_key.column.table])
        for foreign_key in table.foreign_keys
        if foreign_key.column.table in inserted
    ]
    parents: dict[Table, set[Any]] = session.info.setdefault(_PARENTS, {})
    scopes = set()
    for values in _inserted_values(statement, parameters):
        scope = next(
            (
                scopes_by_id[values[column]]
                for column, scopes_by_id in known
                if values.get(column) in scopes_by_id
            ),
            None,
        )
        if scope is not None:
            scopes.add(scope)
        elif (parent_id := values.get(parent[0])) is not None:
            parents.setdefault(parent[1], set()).add(parent_id)
        else:
            return {GLOBAL_SCOPE}
    return scopes


def _primary_key_parameter(where: Any, primary: Any, default: str) -> str | None:
    """The executemany parameter naming each row's primary key: `default` with no WHERE (the
    ORM's bulk UPDATE by primary key), the bound name for `WHERE <primary> = :name`, else
    None (rows this module cannot tell)."""
    if where is None:
        return default
    if (
        isinstance(where, BinaryExpression)
        and where.operator is operators.eq
        and where.left is primary
        and isinstance(where.right, BindParameter)
    ):
        return str(where.right.key)
    return None


def _scopes_query(table: Any, columns: tuple[str, str | None]) -> Any:
    account_column, mode_column = columns
    return select(table.c[account_column], *([table.c[mode_column]] if mode_column else []))


def _scopes_of(rows: Iterable[Any], columns: tuple[str, str | None]) -> set[str]:
    with_mode = columns[1] is not None
    return {_scope_of(row[0], row[1] if with_mode else None) or GLOBAL_SCOPE for row in rows}


def _inserted_values(statement: Any, parameters: object) -> Iterator[Mapping[str, Any]]:
    """Each inserted row's values by column name, from executemany parameters or .values()."""
    if isinstance(parameters, list) and parameters:
        yield from parameters
        return
    if isinstance(parameters, Mapping) and parameters:
        yield parameters
        return
    if getattr(statement, "select", None) is not None:
        yield {}  # INSERT … SELECT: rows we cannot see
        return
    multi = getattr(statement, "_multi_values", ())
    rows = [row for group in multi for row in group] or [getattr(statement, "_values", None) or {}]
    for row in rows:
        yield {_column_name(key): _bound_value(value) for key, value in dict(row).items()}


def _column_name(key: object) -> str:
    return str(getattr(key, "key", key))


def _bound_value(value: object) -> object:
    return value.effective_value if isinstance(value, BindParameter) else value


def _conjuncts(clause: ColumnElement[Any] | None) -> Iterable[ColumnElement[Any]]:
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for part in clause.clauses:
            yield from _conjuncts(part)
    elif clause is not None:
        yield clause


def _where_equalities(clause: ColumnElement[Any] | None) -> dict[str, object]:
    """`column = value` terms the WHERE requires (ANDed at its top level), by column name."""
    known: dict[str, object] = {}
    for term in _conjuncts(clause):
        if isinstance(term, BinaryExpression) and term.operator is operators.eq:
            column, value = term.left, term.right
            if isinstance(column, BindParameter):
                column, value = value, column
            name = getattr(column, "name", None)
            if isinstance(name, str) and isinstance(value, BindParameter):
                bound = _bound_value(value)
                if bound is not None:
                    known[name] = bound
    return known


def _advance_versions(session: Session) -> None:
    session.flush()  # before_commit runs before the commit's own flush: flush first
    pending = _pending(session)
    for parent, ids in session.info.pop(_PARENTS, {}).items():
        pending.update(_scopes_of_rows(session, parent, ids))
    if not pending:
        return
    connection = session.connection()
    connection.execute(_advance_statement(connection, sorted(pending)))
    pending.clear()


def _scopes_of_rows(session: Session, table: Table, ids: set[Any]) -> set[str]:
    """The scopes of parent rows by id (one deleted in this transaction recorded its own)."""
    columns = _scope_columns(table)
    assert columns is not None
    primary = next(iter(table.primary_key.columns))
    return _scopes_of(
        session.execute(_scopes_query(table, columns).where(primary.in_(ids))), columns
    )


def _advance_statement(connection: Connection, scopes: list[str]) -> Any:
    """One upsert for all scopes, in a fixed order so concurrent commits never deadlock."""
    table = DataVersion.__table__  # type: ignore[attr-defined]
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table).values([{"scope": s, "version": 1} for s in scopes])
    return statement.on_conflict_do_update(
        index_elements=[table.c.scope], set_={"version": table.c.version + 1}
    )
