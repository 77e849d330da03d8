"""Bringing an existing database up to this build's schema, on SQLite and PostgreSQL alike.

Additive changes (a new table, a new nullable or defaulted column, a new index) are found by
comparing the tables in schema.py with the live database, so a release that adds a column needs no
hand-written step and an operator's upgrade is `gateway migrate` (or simply a start). Changes that
are not additive (a backfill, a rename, a changed type) are numbered steps in STEPS, run once each,
in order, after the additive pass, and recorded in `schema_version`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.schema import (
    BYTEWISE,
    KEY_COLUMNS,
    MESSAGES_FILLFACTOR,
    MOVED_MESSAGE_INDEXES,
    PROVIDER_REF_INDEXES,
    SCHEMA_VERSION,
    metadata,
    schema_version,
)

# Any constant shared by every process of every build: concurrent starts migrate one at a time.
_POSTGRES_MIGRATION_LOCK = 0x6477_6D69_6772  # "dwmigr"


def _events_index_by_message_without_clicks(conn: Connection) -> None:
    # The additive pass has made ix_events_message_not_click; the index it replaces held every click too.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_events_message_id"))


def _queue_indexes_of_waiting_jobs_only(conn: Connection) -> None:
    # The additive pass has made ix_messages_waiting_due and ix_messages_handing_off; the index they
    # replace held every message by status.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_messages_due"))


def _bytewise_strings_and_fewer_index_entries_per_message(conn: Connection) -> None:
    # The additive pass has made ix_messages_tenant_failed_updated, of failures only.
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_messages_tenant_status_updated"))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_attempts_message_id"))
    # Same names, now partial: dropped before the collation's change would rebuild them, made again
    # from the schema after it.
    for name in PROVIDER_REF_INDEXES:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))
    if conn.dialect.name == "postgresql":
        _bytewise_strings(conn)
        # Pages written from now on keep room for their rows' next versions; those full already stay so.
        conn.execute(sa.text(f"ALTER TABLE messages SET (fillfactor = {MESSAGES_FILLFACTOR})"))
    indexes = {str(index.name): index for table in metadata.tables.values() for index in table.indexes}
    for name in PROVIDER_REF_INDEXES:
        indexes[name].create(conn)


def _bytewise_strings(conn: Connection) -> None:
    """Every String column of the schema COLLATE "C" (SQLite compares bytewise already). A changed
    collation keeps each row as it is: PostgreSQL rebuilds the indexes on these columns (holding the
    table's lock meanwhile), it does not rewrite the tables."""
    collations = {
        (table, column): collation
        for table, column, collation in conn.execute(
            sa.text(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            )
        )
    }
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        changes = [
            f"ALTER COLUMN {preparer.format_column(column)} TYPE {column.type.compile(dialect=conn.dialect)}"
            for column in table.columns
            if type(column.type) is sa.String and collations.get((table.name, column.name), BYTEWISE) != BYTEWISE
        ]
        if changes:
            conn.execute(sa.text(f"ALTER TABLE {preparer.format_table(table)} {', '.join(changes)}"))


# Every message's keys, as accept writes them, from the messages' rows (a backfill).
_KEYS = ", ".join(KEY_COLUMNS)
KEYS_OF_MESSAGES = f"INSERT INTO message_keys (message_id, {_KEYS}) SELECT id, {_KEYS} FROM messages"


def _lookup_keys_in_their_own_table(conn: Connection) -> None:
    # The additive pass has made message_keys (empty, with its indexes); every message's keys go
    # there, and the indexes of `messages` that held them go.
    conn.execute(sa.text(KEYS_OF_MESSAGES))
    for name in MOVED_MESSAGE_INDEXES:
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {name}"))


def _keys_released_by_their_expiry(conn: Connection) -> None:
    # The additive pass has added message_keys.idempotency_expires_at (empty) and its index of held
    # keys: each held key's expiry, from its message's row.
    conn.execute(
        sa.text(
            "UPDATE message_keys SET idempotency_expires_at ="
            " (SELECT idempotency_expires_at FROM messages WHERE messages.id = message_keys.message_id)"
            " WHERE idempotency_key IS NOT NULL"
        )
    )


# version -> the step that brings version-1 to version. Version 1 is the first published schema.
STEPS: dict[int, Callable[[Connection], None]] = {
    2: _events_index_by_message_without_clicks,
    3: _queue_indexes_of_waiting_jobs_only,
    4: _bytewise_strings_and_fewer_index_entries_per_message,
    5: _lookup_keys_in_their_own_table,
    6: _keys_released_by_their_expiry,
}


class SchemaError(Exception):
    """The database cannot be brought to this build's schema; the message says why and what to do."""


def migrate(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_MIGRATION_LOCK})
    existing = set(sa.inspect(conn).get_table_names())
    # Tables this database has never had, with their indexes. Named rather than checked for one by one
    # (create_all's default): on PostgreSQL that was a round trip per table at every start.
    missing = [table for table in metadata.sorted_tables if table.name not in existing]
    metadata.create_all(conn, tables=missing, checkfirst=False)
    current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
    if current is None:
        current = SCHEMA_VERSION if "messages" not in existing else 0
        if current:
            conn.execute(schema_version.insert().values(version=current, applied_at=time.time()))
    if current > SCHEMA_VERSION:
        raise SchemaError(
            f"the database is at schema version {current}, newer than this build's {SCHEMA_VERSION}: "
            "run the newer build (downgrades are not supported)"
        )
    _add_missing_columns_and_indexes(conn, existing)
    for version in range(current + 1, SCHEMA_VERSION + 1):
        step = STEPS.get(version)
        if step is not None:
            step(conn)
        conn.execute(schema_version.insert().values(version=version, applied_at=time.time()))
    return SCHEMA_VERSION


def _add_missing_columns_and_indexes(conn: Connection, existing: set[str]) -> None:
    inspector = sa.inspect(conn)
    preparer = conn.dialect.identifier_preparer
    analysed = conn.dialect.name == "sqlite" and bool(
        conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
    )
    tables = [table for table in metadata.sorted_tables if table.name in existing]
    if not tables:
        return  # a new database: create_all made everything (and no filter would mean every table)
    # Every table's columns and indexes read at once: PostgreSQL answers each in one query, where
    # asking table by table took two round trips per table at every start.
    names = [table.name for table in tables]
    columns = inspector.get_multi_columns(filter_names=names)
    indexes = inspector.get_multi_indexes(filter_names=names)
    for table in tables:
        present = {column["name"] for column in columns[(None, table.name)]}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable and column.server_default is None:
                raise SchemaError(
                    f"cannot add {table.name}.{column.name} to a table that has rows: a new column must be "
                    "nullable or have a server default"
                )
            definition = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {definition}"))
        named = {index["name"] for index in indexes[(None, table.name)]}
        for index in table.indexes:
            if index.name not in named:
                index.create(conn)
                if analysed:
                    # Knowing every index but this one, SQLite's planner may take it for the most
                    # selective of all (seen: the delivery log's newest page went from 3 ms to 1 s).
                    conn.execute(sa.text(f"ANALYZE {preparer.quote(str(index.name))}"))
