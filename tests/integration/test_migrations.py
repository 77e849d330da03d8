"""Upgrading a database made by an older build: nothing lost, new columns, indexes and tables added."""

from __future__ import annotations

from pathlib import Path

from gateway.store.schema import MESSAGES_FILLFACTOR, MOVED_MESSAGE_INDEXES, SCHEMA_VERSION
from tests.harness import SMS, running_gateway
from tests.processes import gateway_command


def _make_it_old(database_url: str) -> None:
    """What an older build left behind: no `tz` column, one index and one table missing, no version row,
    the events' index by message of schema version 1 (clicks in it), the queue's index of schema
    version 2 (every message by status), of version 3 the attempts' index by message and, on
    PostgreSQL, identifiers in the database's collation, and of version 4 the lookup keys' indexes on
    `messages` (no message_keys)."""
    statements = [
        "DROP TABLE message_keys",
        "CREATE UNIQUE INDEX uq_messages_tenant_idempotency ON messages (tenant_id, idempotency_key)",
        "CREATE INDEX ix_messages_tenant_id ON messages (tenant_id, id)",
        *(
            f"CREATE INDEX ix_messages_tenant_{name} ON messages (tenant_id, {column}, id)"
            for name, column in (("campaign", "campaign"), ("to", "to_addr"), ("user", "user_id"))
        ),
        "CREATE INDEX ix_attempts_message_id ON attempts (message_id)",
        *(
            statement
            for table in ("messages", "attempts", "receipts")
            for statement in (
                f"DROP INDEX ix_{table}_provider_ref",
                f"CREATE INDEX ix_{table}_provider_ref ON {table} (provider, provider_message_id)",
            )
        ),
        "DROP INDEX ix_messages_tenant_status",
        "DROP INDEX ix_events_message_not_click",
        "CREATE INDEX ix_events_message_id ON events (message_id)",
        "DROP INDEX ix_messages_waiting_due",
        "DROP INDEX ix_messages_handing_off",
        "CREATE INDEX ix_messages_due ON messages (status, next_attempt_at)",
        "ALTER TABLE messages DROP COLUMN tz",
        "ALTER TABLE api_keys DROP COLUMN last_used_at",
        "DROP TABLE conversions",
        "DELETE FROM schema_version",
    ]
    postgresql_only = [
        *(
            f'ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR({length}) COLLATE "default"'
            for table, column, length in _BYTEWISE_AFTER_UPGRADE
        ),
        "ALTER TABLE messages RESET (fillfactor)",
    ]
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            for statement in statements:
                conn.execute(statement)
        return
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            for statement in statements + postgresql_only:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.get_event_loop_policy().new_event_loop().run_until_complete(run())


# Columns an older build left in the database's collation: an id, a name users list by, a key of
# another table.
_BYTEWISE_AFTER_UPGRADE = [("messages", "id", 32), ("messages", "campaign", 128), ("attempts", "message_id", 32)]


async def _collations(database_url: str) -> dict[tuple[str, str], str | None]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'character varying'"
        )
    finally:
        await conn.close()
    return {(row["table_name"], row["column_name"]): row["collation_name"] for row in rows}


async def _columns(database_url: str, table: str) -> set[str]:
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)
    finally:
        await conn.close()
    return {row["column_name"] for row in rows}


async def _indexes(database_url: str, table: str) -> set[str]:
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = ?", (table,))}
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", table)
    finally:
        await conn.close()
    return {row["indexname"] for row in rows}


async def _index_condition(database_url: str, name: str) -> str:
    """The WHERE of an index's definition, as the database states it ("" for a full index)."""
    if database_url.startswith("sqlite"):
        definition = await _scalar(database_url, f"SELECT sql FROM sqlite_master WHERE name = '{name}'")
    else:
        definition = await _scalar(database_url, f"SELECT indexdef FROM pg_indexes WHERE indexname = '{name}'")
    return str(definition).partition(" WHERE ")[2]


async def _messages_options(database_url: str) -> object:
    """The storage options of `messages` on PostgreSQL (None when it has none)."""
    return await _scalar(database_url, "SELECT reloptions FROM pg_class WHERE relname = 'messages'")


async def _scalar(database_url: str, query: str) -> object:
    if database_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            row = conn.execute(query).fetchone()
            return row[0] if row else None
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


async def _old_database(tmp_path: Path, database_url: str) -> str:
    async with running_gateway(tmp_path, database_url=database_url) as gw:
        first = await gw.post("/v1/messages", {**SMS, "campaign": "before-upgrade"})
        message_id = (await first.json())["id"]
        await gw.wait_status(message_id, {"delivered"})
    if database_url.startswith("postgresql"):  # as a new database is made
        options = await _messages_options(database_url)
        assert options == [f"fillfactor={MESSAGES_FILLFACTOR}"]
    await _to_thread(_make_it_old, database_url)
    assert "tz" not in await _columns(database_url, "messages")
    assert "ix_events_message_id" in await _indexes(database_url, "events")
    assert "ix_messages_due" in await _indexes(database_url, "messages")
    assert "ix_attempts_message_id" in await _indexes(database_url, "attempts")
    assert set(MOVED_MESSAGE_INDEXES) <= await _indexes(database_url, "messages")
    assert await _index_condition(database_url, "ix_messages_provider_ref") == ""
    if database_url.startswith("postgresql"):
        collations = await _collations(database_url)
        assert [collations[(t, c)] for t, c, _ in _BYTEWISE_AFTER_UPGRADE] == [None, None, None]
        assert await _messages_options(database_url) is None
    return message_id


async def _to_thread(fn: object, *args: object) -> None:
    import asyncio

    await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]


async def test_an_old_database_is_upgraded_at_start_and_keeps_its_messages(tmp_path: Path, database_url: str) -> None:
    message_id = await _old_database(tmp_path, database_url)
    async with running_gateway(tmp_path, database_url=database_url) as gw:
        old = await (await gw.get(f"/v1/messages/{message_id}")).json()
        assert (old["status"], old["campaign"], old["tz"]) == ("delivered", "before-upgrade", None)
        new = await gw.post("/v1/messages", {**SMS, "tz": "Asia/Shanghai"})
        assert new.status == 202, await new.text()
        stored = await (await gw.get(f"/v1/messages/{(await new.json())['id']}")).json()
        assert stored["tz"] == "Asia/Shanghai"
        await gw.wait_status(stored["id"], {"delivered"})  # claimed through the new queue index
        conversion = await gw.post(
            "/v1/conversions", {"event": "purchase", "event_id": "order-1", "message_id": message_id, "value": 5}
        )
        assert conversion.status in (200, 201), await conversion.text()
        listed = await (await gw.get("/v1/messages?status=delivered")).json()
        assert message_id in [m["id"] for m in listed["data"]]
        # Found by its keys, moved to message_keys by the upgrade.
        by_campaign = await (await gw.get("/v1/messages?campaign=before-upgrade")).json()
        assert [m["id"] for m in by_campaign["data"]] == [message_id]
        by_address = await (await gw.get("/v1/messages", params={"to": SMS["to"]})).json()
        assert message_id in [m["id"] for m in by_address["data"]]
    moved = set(MOVED_MESSAGE_INDEXES)
    assert not moved & await _indexes(database_url, "messages")
    assert {name.replace("messages", "message_keys") for name in moved} <= await _indexes(database_url, "message_keys")
    assert {"tz"} <= await _columns(database_url, "messages")
    indexes = await _indexes(database_url, "events")
    assert "ix_events_message_not_click" in indexes and "ix_events_message_id" not in indexes
    queue_indexes = await _indexes(database_url, "messages")
    assert {"ix_messages_waiting_due", "ix_messages_handing_off"} <= queue_indexes
    assert "ix_messages_due" not in queue_indexes
    assert {"last_used_at"} <= await _columns(database_url, "api_keys")
    assert "ix_attempts_message_id" not in await _indexes(database_url, "attempts")
    # Rows without the provider's id (or, for receipts, every one matched at once) are left out.
    tables = ("messages", "attempts", "receipts")
    conditions = [await _index_condition(database_url, f"ix_{table}_provider_ref") for table in tables]
    assert [c.strip("()").lower() for c in conditions] == [
        "provider_message_id is not null",
        "provider_message_id is not null",
        "message_id is null",
    ]
    if database_url.startswith("postgresql"):
        collations = await _collations(database_url)
        assert [collations[(t, c)] for t, c, _ in _BYTEWISE_AFTER_UPGRADE] == ["C", "C", "C"]
        assert set(collations.values()) == {"C"}, "every String column, not only those made old"
        options = await _messages_options(database_url)
        assert options == [f"fillfactor={MESSAGES_FILLFACTOR}"]
    assert await _scalar(database_url, "SELECT max(version) FROM schema_version") == SCHEMA_VERSION


async def test_the_migrate_command_upgrades_and_refuses_a_newer_schema(tmp_path: Path, database_url: str) -> None:
    await _old_database(tmp_path, database_url)
    upgraded = gateway_command(database_url, "migrate")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"schema version {SCHEMA_VERSION}"
    assert "tz" in await _columns(database_url, "messages")
    again = gateway_command(database_url, "migrate")
    assert again.returncode == 0 and again.stdout.strip() == f"schema version {SCHEMA_VERSION}"

    await _scalar(database_url, f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION + 1}, 0)")
    newer = gateway_command(database_url, "migrate")
    assert newer.returncode == 2
    assert f"newer than this build's {SCHEMA_VERSION}" in newer.stderr
    served = gateway_command(database_url, "serve")
    assert served.returncode == 2 and "downgrades are not supported" in served.stderr
