"""Two writes that wait on each other's rows: PostgreSQL ends one of them (deadlock detected), and the
store runs the ended one again instead of failing the work that asked for it. Both writes land."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.store.database import open_database
from gateway.store.schema import secrets


async def test_a_deadlocked_write_is_run_again_and_both_land(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: its transactions never wait on each other's rows")
    db = open_database(database_url)
    runs: Counter[str] = Counter()

    def crossing(first: str, second: str) -> Any:
        def write(conn: Connection) -> None:
            runs[first] += 1
            _touch(conn, first)
            conn.execute(sa.text("SELECT pg_sleep(0.3)"))  # the other write now holds its first row
            _touch(conn, second)

        return write

    try:
        await db.write(lambda conn: conn.execute(secrets.insert(), [_secret("a"), _secret("b")]))
        await asyncio.gather(db.write(crossing("a", "b")), db.write(crossing("b", "a")))
        assert sorted(runs.values()) == [1, 2]  # one of the two was ended and ran again
        values = await db.read(lambda conn: dict(conn.execute(sa.select(secrets.c.name, secrets.c.value)).all()))
        assert values == {"a": "touched by a and b", "b": "touched by a and b"}
    finally:
        await db.close()


def _secret(name: str) -> dict[str, Any]:
    return {"name": name, "value": "touched by", "created_at": 0.0}


def _touch(conn: Connection, name: str) -> None:
    conn.execute(secrets.update().where(secrets.c.name == name).values(value="touched by a and b"))
