"""The accept group commit on SQLite: its statements run on the event loop, its commit beside it.
What a campaign system sees when the database is busy elsewhere or a write fails."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from tests.harness import SMS, running_gateway


def _rows(db: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_accepts_wait_while_another_process_holds_the_write_lock_then_all_are_stored(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another process writing: accepts must wait, not fail
        try:
            posts = [
                asyncio.create_task(gw.post("/v1/messages", {**SMS, "user_id": f"u-{i}"}, key=f"lock-{i}"))
                for i in range(20)
            ]
            done, _ = await asyncio.wait(posts, timeout=0.5)
            assert done == set(), "a job was acknowledged before it could be committed"
        finally:
            holder.execute("COMMIT")
            holder.close()
        answers = await asyncio.gather(*posts)
        assert [a.status for a in answers] == [202] * 20
        assert _rows(db, "SELECT count(*) FROM messages") == 20
        assert _rows(db, "SELECT count(*) FROM events WHERE reason = 'accepted'") == 20


async def test_accepts_take_the_write_lock_as_soon_as_a_short_transaction_elsewhere_ends(tmp_path: Path) -> None:
    """The common contention: another process (the worker) holds the lock for a few milliseconds.
    The accepts waiting on it are committed once it is released, none acknowledged before."""
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        for round_ in range(5):
            holder.execute("BEGIN IMMEDIATE")
            try:
                posts = [
                    asyncio.create_task(gw.post("/v1/messages", {**SMS, "user_id": f"u-{i}"}, key=f"r{round_}-{i}"))
                    for i in range(5)
                ]
                done, _ = await asyncio.wait(posts, timeout=0.02)
                assert done == set(), "a job was acknowledged before it could be committed"
            finally:
                holder.execute("COMMIT")
            assert [a.status for a in await asyncio.gather(*posts)] == [202] * 5
        holder.close()
        assert _rows(db, "SELECT count(*) FROM messages") == 25
        assert _rows(db, "SELECT count(*) FROM events WHERE reason = 'accepted'") == 25


async def test_a_batch_whose_insert_fails_is_answered_500_stores_nothing_and_the_next_is_accepted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages WHEN NEW.campaign = 'boom'"
                " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        single = await gw.post("/v1/messages", {**SMS, "campaign": "boom"}, key="boom-1")
        # One request's items share one transaction: the good item is not stored without the other.
        batch = await gw.post("/v1/messages/batch", {"messages": [{**SMS, "campaign": "boom"}, SMS]})
        for answer in (single, batch):
            assert answer.status == 500
            assert answer.content_type == "application/problem+json"
        assert _rows(db, "SELECT count(*) FROM messages") == 0
        assert _rows(db, "SELECT count(*) FROM events") == 0

        with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as conn:
            conn.execute("DROP TRIGGER refuse_boom")
        retry = await gw.post("/v1/messages", {**SMS, "campaign": "boom"}, key="boom-1")
        assert retry.status == 202
        assert retry.headers.get("Idempotent-Replayed") is None
        assert _rows(db, "SELECT count(*) FROM messages") == 1
