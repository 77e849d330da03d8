"""Accepts first at SQLite's write lock: what the flag another process raises does to this one's writes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy.engine import Connection

from gateway.store.database import SqliteDatabase
from gateway.store.intake_turn import STALE_SECONDS, IntakeTurn
from gateway.store.store import SqlStore
from tests.integration.direct import message_row


def _insert(conn: Connection, value: int) -> None:
    conn.exec_driver_sql(f"INSERT INTO t VALUES ({value})")


async def test_a_worker_write_waits_while_accepts_wait_and_an_accept_does_not(tmp_path: Path) -> None:
    path = str(tmp_path / "gateway.db")
    database = SqliteDatabase(path, intake_first_seconds=30.0)
    api = IntakeTurn(path)  # the API process's view of the same flag
    try:
        await database.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        await database.write_beside_loop(_insert, 0)  # this process's first turn, long ago
        api.raise_flag()
        handoff = asyncio.create_task(database.write_beside_loop(_insert, 1))
        for _ in range(10):  # an API process keeps its flag up while its accepts wait
            await asyncio.sleep(0.02)
            api.raise_flag()
        assert not handoff.done(), "the hand-off took the lock while accepts waited for it"
        await asyncio.wait_for(database.write_beside_loop(_insert, 2, intake=True), 1.0)
        api.lower_flag()
        await asyncio.wait_for(handoff, 1.0)
        rows = await database.read(lambda conn: [r[0] for r in conn.exec_driver_sql("SELECT x FROM t ORDER BY rowid")])
        assert rows == [0, 2, 1]
    finally:
        api.close()
        await database.close()


async def test_a_claim_waits_while_accepts_wait_then_takes_what_is_due(tmp_path: Path) -> None:
    """A worker's claim is one of the writes that let waiting accepts go first (it holds the write lock
    like a hand-off), and once they have gone it takes the jobs due."""
    path = tmp_path / "gateway.db"
    store = SqlStore.open(f"sqlite:///{path}", sqlite_intake_first=30.0)
    api = IntakeTurn(str(path))
    try:
        await store.migrate()
        first, second = message_row(), message_row()
        await store.accept([first])
        assert [job.id for job in await store.claim_due("worker-a", 10, 30.0)] == [first["id"]]  # its last turn
        await store.accept([second])
        api.raise_flag()
        claim = asyncio.create_task(store.claim_due("worker-a", 10, 30.0))
        for _ in range(10):  # an API process keeps its flag up while its accepts wait
            await asyncio.sleep(0.02)
            api.raise_flag()
        assert not claim.done(), "the claim took the lock while accepts waited for it"
        api.lower_flag()
        assert [job.id for job in await asyncio.wait_for(claim, 1.0)] == [second["id"]]
    finally:
        api.close()
        await store.close()


def test_a_flag_left_up_by_a_dead_process_holds_no_one_back(tmp_path: Path) -> None:
    path = str(tmp_path / "gateway.db")
    api, worker = IntakeTurn(path), IntakeTurn(path)
    try:
        api.raise_flag()
        assert worker.waiting()
        time.sleep(STALE_SECONDS * 1.5)  # the API process was killed while its accepts waited
        assert not worker.waiting()
        api.raise_flag()
        api.lower_flag()
        assert not worker.waiting()
    finally:
        api.close()
        worker.close()


async def test_with_no_priority_no_flag_file_is_kept(tmp_path: Path) -> None:
    database = SqliteDatabase(str(tmp_path / "gateway.db"), intake_first_seconds=0)
    try:
        await database.write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        await database.write_beside_loop(_insert, 1)
        assert not (tmp_path / "gateway.db-intake").exists()
    finally:
        await database.close()
