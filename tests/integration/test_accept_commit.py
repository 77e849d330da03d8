"""The accept group commit on SQLite: its statements run on the event loop, its commit beside it.
What a campaign system sees when the database is busy elsewhere or a write fails."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gateway.store.store import SqlStore
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


class _HeldSyncs:
    """os.fsync as the gateway calls it, held until released: what was synced, in order."""

    def __init__(self) -> None:
        self.synced: list[str] = []
        self.release = threading.Event()
        self._fsync = os.fsync

    def __call__(self, fd: int) -> None:
        self.release.wait(10)
        self._fsync(fd)
        self.synced.append(os.readlink(f"/proc/self/fd/{fd}"))


async def test_an_accept_is_answered_only_once_the_wal_holding_it_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit itself lets go of the write lock before the disk has it (so the worker's and the next
    accepts' transactions go on meanwhile); the 202 waits for the WAL's sync, as synchronous=FULL did."""
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        syncs = _HeldSyncs()
        monkeypatch.setattr(os, "fsync", syncs)
        post = asyncio.create_task(gw.post("/v1/messages", SMS, key="durable-1"))
        for _ in range(100):  # committed: another process can read it, and write
            await asyncio.sleep(0.01)
            if _rows(db, "SELECT count(*) FROM messages") == 1:
                break
        assert _rows(db, "SELECT count(*) FROM messages") == 1
        with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=0)) as other:
            other.execute("BEGIN IMMEDIATE")  # the write lock is free before the sync
            other.execute("ROLLBACK")
        done, _ = await asyncio.wait([post], timeout=0.3)
        assert done == set(), "a job was acknowledged before its commit was on disk"
        assert syncs.synced == []
        syncs.release.set()
        answer = await post
        assert answer.status == 202
        assert syncs.synced[0] == f"{db}-wal"


async def test_a_click_commit_without_fsync_leaves_the_next_commit_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """links.click_synchronous = NORMAL is the clicks' alone: the accepts that share their connection
    are still synced to disk before they are answered, as at the store's FULL."""
    store = SqlStore.open(f"sqlite:///{tmp_path / 'gateway.db'}", synchronous="FULL")
    try:
        await store.migrate()
        syncs = _HeldSyncs()
        syncs.release.set()
        monkeypatch.setattr(os, "fsync", syncs)
        await store.db.write_beside_loop(lambda conn: conn.exec_driver_sql("SELECT 1"), synchronous="NORMAL")
        assert syncs.synced == []
        await store.db.write_beside_loop(lambda conn: conn.exec_driver_sql("SELECT 1"))
        assert syncs.synced == [f"{tmp_path / 'gateway.db'}-wal"]
    finally:
        await store.close()


async def test_the_wal_is_checkpointed_while_accepts_commit_without_checkpointing_themselves(tmp_path: Path) -> None:
    """The accept connection leaves SQLite's automatic checkpoint to a thread of its own: the WAL must
    still be copied into the database and reused, not grow with everything ever accepted."""
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        text = "Your order has shipped " * 20
        body = {"messages": [{**SMS, "user_id": f"u-{i}", "content": {"text": text}} for i in range(500)]}
        for round_ in range(40):
            answer = await gw.post("/v1/messages/batch", body, key=f"wal-{round_}")
            assert answer.status == 200 and (await answer.json())["accepted"] == 500
        accepted = _rows(db, "SELECT count(*) FROM messages")
        wal_bytes = os.stat(f"{db}-wal").st_size
        written = _rows(db, "PRAGMA page_count") * 4096
    assert accepted == 20_000
    assert wal_bytes < written / 2, f"the WAL holds {wal_bytes} bytes for a {written}-byte database"


async def test_a_wal_that_cannot_be_synced_is_503_and_the_retry_is_answered_from_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails the sync after the commit was written: not known to be on disk, so no 202; the
    campaign system's retry with its key finds the job and is answered as a replay, never a second one."""
    db = tmp_path / "gateway.db"
    async with running_gateway(tmp_path, role="api") as gw:
        fsync = os.fsync

        def failing(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", failing)
        refused = await gw.post("/v1/messages", SMS, key="eio-1")
        monkeypatch.setattr(os, "fsync", fsync)
        retry = await gw.post("/v1/messages", SMS, key="eio-1")
        assert refused.status == 503
        assert refused.headers["Retry-After"] == "5"
        assert (await refused.json(content_type=None))["type"] == "/problems/unavailable"
        assert retry.status == 202
        assert retry.headers.get("Idempotent-Replayed") == "true"
        assert _rows(db, "SELECT count(*) FROM messages") == 1
