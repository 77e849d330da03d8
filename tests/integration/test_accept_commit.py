"""The accept group commit on SQLite: its statements run on the event loop, its commit beside it.
What a campaign system sees when the database is busy elsewhere or a write fails."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from tests.harness import SMS, running_gateway


def _rows(db: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def _accepts_while_locked(
    gw: Any, holder: sqlite3.Connection, count: int, prefix: str, held_seconds: float
) -> list[int]:
    """Single jobs posted while `holder` has the write lock for `held_seconds`: none may be answered
    before it lets go. Their statuses once it has."""
    holder.execute("BEGIN IMMEDIATE")
    try:
        posts = [
            asyncio.create_task(gw.post("/v1/messages", {**SMS, "user_id": f"u-{i}"}, key=f"{prefix}-{i}"))
            for i in range(count)
        ]
        done, _ = await asyncio.wait(posts, timeout=held_seconds)
        assert done == set(), "a job was acknowledged before it could be committed"
    finally:
        holder.execute("COMMIT")
    return [answer.status for answer in await asyncio.gather(*posts)]


async def test_accepts_wait_while_another_process_holds_the_write_lock_then_all_are_stored(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        try:
            # Another process writing: accepts must wait, not fail.
            assert await _accepts_while_locked(gw, holder, 20, "lock", held_seconds=0.5) == [202] * 20
        finally:
            holder.close()
        assert _rows(db, "SELECT count(*) FROM messages") == 20
        assert _rows(db, "SELECT count(*) FROM events WHERE reason = 'accepted'") == 20


async def test_accepts_take_the_write_lock_as_soon_as_a_short_transaction_elsewhere_ends(tmp_path: Path) -> None:
    """The common contention: another process (the worker) holds the lock for a few milliseconds.
    The accepts waiting on it are committed once it is released, none acknowledged before."""
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        try:
            for round_ in range(5):
                assert await _accepts_while_locked(gw, holder, 5, f"r{round_}", held_seconds=0.02) == [202] * 5
        finally:
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
