"""Helpers every store module shares: the dialect's INSERT, the fast executemany, the audit entry."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.store.database import Compilable, Database, compiled_query
from gateway.store.schema import events, message_keys, messages


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def ping(conn: Connection) -> bool:
    return conn.execute(sa.text("SELECT 1")).scalar() == 1


def audit(
    conn: Connection,
    tenant_id: str,
    at: float,
    kind: str,
    reason: str | None,
    detail: str | None = None,
    message_id: str | None = None,
) -> None:
    """One entry in the audit log for an act that is not a status change (no status)."""
    conn.execute(
        events.insert().values(
            tenant_id=tenant_id, message_id=message_id, at=at, type=kind, status=None, reason=reason, detail=detail
        )
    )


def among(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """SQLite: `column IN` the JSON list bound as `name`. One SQL text whatever the list's length,
    so a statement built once is compiled once and prepared once; an expanding IN is rendered, and
    prepared by SQLite, anew for each length (its cost was a tenth of an outcome's writes)."""
    values = sa.select(sa.column("value", sa.String)).select_from(
        sa.func.json_each(sa.bindparam(name, type_=sa.String))
    )
    return column.in_(values.scalar_subquery())


class _AnyOf(sa.sql.expression.ColumnElement[Any]):
    """`column` is one of the list bound as `name`, in one SQL text whatever the list's length."""

    inherit_cache = False  # run through fetch_compiled, which compiles it once per dialect itself
    type = sa.types.NullType()  # rendered as the predicate it is, not compared to a boolean

    def __init__(self, column: sa.ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


@compiles(_AnyOf, "sqlite")
def _any_of_sqlite(element: _AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(among(element.column, element.name), **kw)


@compiles(_AnyOf, "postgresql")
def _any_of_postgresql(element: _AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    values = sa.bindparam(element.name, type_=postgresql.ARRAY(sa.String))
    return compiler.process(element.column == sa.any_(values), **kw)


def any_of(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """`column` among the values bound as `name` (pass them through `listed`), for a statement built
    once and run by fetch_compiled on either store: SQLite reads a JSON list (`among`), PostgreSQL
    an array (`= ANY`), so neither renders the SQL anew for each length of the list."""
    return cast(sa.ColumnElement[bool], _AnyOf(column, name))


class _PartialIndexTerm(sa.sql.expression.ColumnElement[Any]):
    inherit_cache = False  # run through fetch_compiled, which compiles it once per dialect itself
    type = sa.types.NullType()

    def __init__(self, term: sa.ColumnElement[bool]) -> None:
        self.term = term


def partial_index_term(term: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """A partial index's condition (`column IS NOT NULL`), said again in a statement that looks that
    index up by `any_of` on the column: PostgreSQL is told it, to choose the index for a generic
    plan too; SQLite reads `column IN` as implying it and, told it, searched the index by it as a
    range (`column > NULL`: every row of the provider, per receipt) instead of by the list."""
    return cast(sa.ColumnElement[bool], _PartialIndexTerm(term))


@compiles(_PartialIndexTerm, "sqlite")
def _partial_index_term_sqlite(element: _PartialIndexTerm, compiler: SQLCompiler, **kw: Any) -> str:
    return "1"


@compiles(_PartialIndexTerm, "postgresql")
def _partial_index_term_postgresql(element: _PartialIndexTerm, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.term, **kw)


def listed(conn: Connection, values: Iterable[str]) -> Any:
    """Values for a parameter of `any_of`, in the form this store's statement reads them."""
    if conn.dialect.name == "postgresql":
        return list(values)
    return orjson.dumps(list(values)).decode()


def fetch_compiled(conn: Connection, query: Compilable, params: dict[str, Any]) -> sa.CursorResult[*tuple[Any, ...]]:
    """Run a statement built once (every parameter has a default or is in `params`) straight on the
    driver, its SQL compiled once per dialect: no construct, cache key or parameter processing per call."""
    sql, values = compiled_query(query, conn.dialect, params)
    return conn.exec_driver_sql(sql, values)


_COMPILED: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...], dict[str, Any]]] = {}


def executemany_fast(
    conn: Connection, name: str, stmt: Any, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """executemany of a Core statement without SQLAlchemy's per-row parameter processing.

    The statement is compiled once per dialect (so it stays one SQL layer for SQLite and
    PostgreSQL) and rows go to the driver as tuples: on the accept path the per-row work of
    Connection.execute cost more than the insert itself. `columns`: the keys of the rows the
    statement sets (default: all of the first row's); other keys are left out.
    """
    keys = tuple(rows[0] if columns is None else columns)
    cache_key = (conn.dialect.name, name, keys)
    compiled = _COMPILED.get(cache_key)
    if compiled is None:
        done = stmt.compile(dialect=conn.dialect, column_keys=list(keys))
        order = tuple(done.positiontup or ())
        # The statement's own constants (a status it sets, a NULL it writes) are parameters too.
        fixed = {name: done.binds[name].effective_value for name in order if name not in keys}
        compiled = _COMPILED[cache_key] = (str(done), order, fixed)
    sql, order, fixed = compiled
    if fixed:
        rows = [{**fixed, **row} for row in rows]
    conn.exec_driver_sql(sql, _positional(order, rows))


_PLAIN_INSERTS: dict[str, sa.Insert] = {}


def insert_rows(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
) -> None:
    """executemany_fast of a plain INSERT INTO `table`, the statement built once: at a trickle (one row
    a commit, cold caches) building it on every call took nearly what SQLite took to run it."""
    insert = _PLAIN_INSERTS.get(table.name)
    if insert is None:
        insert = _PLAIN_INSERTS[table.name] = table.insert()
    executemany_fast(conn, f"insert-{table.name}", insert, rows, columns)


def _positional(order: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's values in the statement's order; with two or more, the tuples are built in C."""
    if len(order) > 1:
        return list(map(operator.itemgetter(*order), rows))
    return [tuple(row[k] for k in order) for row in rows]


def keyed(tenant_id: str, *named: Any) -> Any:
    """The tenant's messages whose keys meet `named` (conditions on message_keys' columns), found
    through message_keys' indexes: a condition on `messages` for a query that reads `messages`. The
    ids alone (the keys hold the tenant): with the tenant named on `messages` too, SQLite walked every
    message of the tenant and looked each up in the list."""
    ids = sa.select(message_keys.c.message_id).where(message_keys.c.tenant_id == tenant_id, *named)
    return messages.c.id.in_(ids)


def update_with_keys(conn: Connection, message_ids: Sequence[str], where_to: str | None = None, **values: Any) -> None:
    """The same change to messages' rows and to their keys, for the values both hold (an address,
    an idempotency key); with `where_to`, only where the address is that one."""
    for table, message_id in ((message_keys, message_keys.c.message_id), (messages, messages.c.id)):
        query = table.update().where(message_id.in_(list(message_ids)))
        if where_to is not None:
            query = query.where(table.c.to_addr == where_to)
        conn.execute(query.values(**values))


class Room:
    """One concern of the SQL store: its methods run that concern's functions on the database.

    The rooms are put together in gateway.store.store.SqlStore; nothing outside gateway/store runs
    SQL, it calls the Store's methods (gateway.store.port)."""

    db: Database

    async def ping(self) -> bool:
        return await self.db.read(ping)
