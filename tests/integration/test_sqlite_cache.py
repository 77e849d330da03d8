"""The SQLite page cache per connection is a setting (sqlite_cache_mib), applied to every connection
the store opens: readers, writers and the accept connection."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Connection

from tests.harness import SMS, running_gateway


def cache_kib(conn: Connection) -> int:
    return -int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())


async def test_every_sqlite_connection_caches_what_the_setting_says(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, {"GATEWAY_SQLITE_CACHE_MIB": "8"}) as gw:
        assert (await gw.post("/v1/messages", SMS)).status == 202  # the accept connection is open
        db = gw.gateway.store.db
        assert await db.read(cache_kib) == 8 * 1024
        assert await db.write(cache_kib) == 8 * 1024
        assert await db.write_beside_loop(cache_kib) == 8 * 1024


async def test_the_default_cache_is_64_mib(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        assert await gw.gateway.store.db.read(cache_kib) == 64 * 1024
