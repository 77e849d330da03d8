"""The outbox promise: a state change and its event commit together. One that rolls back leaves no
event and no delivery; one that commits is fanned out once, however often the outbox is read."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.store.schema import events, suppressions, webhook_deliveries
from gateway.store.sql.suppressions import add_suppressions
from gateway.store.store import SqlStore


def _endpoint(now: float) -> dict[str, Any]:
    return {
        "id": "whk_01J0000000000000000000OUTB",
        "tenant_id": "t1",
        "url": "https://93.184.215.14/hooks",
        "events": ["opt_out"],
        "description": None,
        "secret": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "state": "active",
        "created_at": now,
        "updated_at": now,
    }


def _opt_out(now: float) -> dict[str, Any]:
    return {
        "tenant_id": "t1",
        "kind": "address",
        "value": "+8613812345678",
        "reason": "opt_out.reply",
        "source": "inbound:sandbox",
        "created_at": now,
    }


def _count(table: sa.Table) -> Any:
    return lambda conn: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


async def test_a_change_that_rolls_back_emits_nothing_and_one_that_commits_emits_once(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        await store.migrate()
        now = time.time()
        assert await store.create_webhook(_endpoint(now), 10) is not None

        def change_then_fail(conn: Any) -> None:
            assert add_suppressions(conn, [_opt_out(now)]) == 1  # the change and its event, written
            raise RuntimeError("the transaction fails after both were written")

        with pytest.raises(RuntimeError):
            await store.db.write(change_then_fail)
        gaps: dict[int, float] = {}
        assert await store.fan_out_events("reader", time.time(), time.time() + 30, 100, gaps, 0.0) == 0
        for table in (suppressions, events, webhook_deliveries):
            assert await store.db.read(_count(table)) == 0

        assert await store.add_suppressions([_opt_out(now)]) == 1
        for _ in range(3):  # read again and again: fanned out once
            await store.fan_out_events("reader", time.time(), time.time() + 30, 100, gaps, 0.0)
        assert await store.db.read(_count(webhook_deliveries)) == 1
        [claimed] = await store.claim_webhook_deliveries("w1", time.time(), 10, time.time() + 30)
        assert (claimed.type, claimed.event["reason"]) == ("opt_out", "opt_out.reply")
        assert await store.claim_webhook_deliveries("w2", time.time(), 10, time.time() + 30) == []
    finally:
        await store.close()


async def test_a_second_reader_waits_for_the_first_ones_lease(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        await store.migrate()
        now = time.time()
        await store.create_webhook(_endpoint(now), 10)
        await store.add_suppressions([_opt_out(now)])
        assert await store.fan_out_events("first", now, now + 30, 100, {}, 0.0) == 1
        await store.add_suppressions([{**_opt_out(now), "value": "+8613812345679"}])
        assert await store.fan_out_events("second", now + 1, now + 31, 100, {}, 0.0) == 0  # the lease holds
        assert await store.fan_out_events("second", now + 31, now + 61, 100, {}, 0.0) == 1  # taken over
        assert await store.db.read(_count(webhook_deliveries)) == 2
    finally:
        await store.close()


async def test_the_reader_waits_at_an_id_still_being_committed(database_url: str) -> None:
    """PostgreSQL hands out ids before commit: event 1 may commit after event 2. The reader stops at
    the hole until it fills (or has lasted outbox_gap_seconds: a rolled-back transaction's)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: ids commit in order")
    import asyncpg

    store = SqlStore.open(database_url)
    other = await asyncpg.connect(database_url)
    try:
        await store.migrate()
        now = time.time()
        await store.create_webhook(_endpoint(now), 10)
        slow = other.transaction()
        await slow.start()
        await other.execute(
            "INSERT INTO events (tenant_id, at, type, reason) VALUES ('t1', $1, 'suppression.added', 'slow')", now
        )
        await store.add_suppressions([_opt_out(now)])  # id 2, committed first
        gaps: dict[int, float] = {}
        assert await store.fan_out_events("reader", now, now + 30, 100, gaps, 10.0) == 0
        await slow.commit()
        assert await store.fan_out_events("reader", now + 1, now + 31, 100, gaps, 10.0) == 2
        assert await store.db.read(_count(webhook_deliveries)) == 2

        await other.execute("BEGIN")
        await other.execute(
            "INSERT INTO events (tenant_id, at, type, reason) VALUES ('t1', $1, 'suppression.added', 'gone')", now
        )
        await other.execute("ROLLBACK")  # id 3 is a hole for ever
        await store.add_suppressions([{**_opt_out(now), "value": "+8613812345670"}])
        assert await store.fan_out_events("reader", now + 2, now + 32, 100, gaps, 10.0) == 0
        assert await store.fan_out_events("reader", now + 13, now + 43, 100, gaps, 10.0) == 1
        assert await store.db.read(_count(webhook_deliveries)) == 3
    finally:
        await other.close()
        await store.close()
