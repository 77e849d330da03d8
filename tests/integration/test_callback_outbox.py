"""The outbox promise: a state change and its event commit together. One that rolls back leaves no
event and no delivery; one that commits is fanned out once, however often the outbox is read."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.domain.webhooks import EVERY_TENANT, event_type, wanted
from gateway.store.schema import events, suppressions, webhook_deliveries, webhook_outbox
from gateway.store.sql.suppressions import add_suppressions
from gateway.store.store import SqlStore
from tests.integration.callback_helpers import endpoint_row


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
        assert await store.create_webhook(endpoint_row(now), 10) is not None

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


async def test_without_a_subscription_the_outbox_is_not_read_and_a_new_one_starts_at_its_creation(
    database_url: str,
) -> None:
    store = SqlStore.open(database_url)

    def position(conn: Any) -> Any:
        return conn.execute(sa.select(webhook_outbox.c.last_event_id, webhook_outbox.c.owner)).all()

    def opt_out(n: int) -> dict[str, Any]:
        return {**_opt_out(time.time()), "value": f"+86138000{n:05d}"}

    try:
        await store.migrate()
        now = time.time()
        for n in range(5):
            assert await store.add_suppressions([opt_out(n)]) == 1
        assert await store.fan_out_events("reader", now, now + 30, 100, {}, 0.0) == 0
        assert await store.db.read(position) == [], "with no subscription the outbox's reader took nothing"

        # A subscription that comes and goes: once it is gone the position stays, the events go on.
        assert await store.create_webhook(endpoint_row(now, "whk_01J000000000000000000FIRST"), 10) is not None
        assert await store.add_suppressions([opt_out(5)]) == 1
        assert await store.fan_out_events("reader", now, now + 30, 100, {}, 0.0) == 1
        [(kept, _)] = await store.db.read(position)
        assert await store.delete_webhook("t1", "whk_01J000000000000000000FIRST")
        for n in range(6, 106):
            assert await store.add_suppressions([opt_out(n)]) == 1
        assert await store.fan_out_events("reader", now + 1, now + 31, 100, {}, 0.0) == 0
        assert await store.db.read(position) == [(kept, "reader")]

        # The next subscription gets what happens after it, read at once (not the 100 events before it).
        assert await store.create_webhook(endpoint_row(now), 10) is not None
        assert await store.add_suppressions([opt_out(106)]) == 1
        assert await store.fan_out_events("reader", now + 2, now + 32, 100, {}, 0.0) == 1
        [claimed] = await store.claim_webhook_deliveries("w1", now + 2, 10, now + 32)
        assert claimed.endpoint_id == "whk_01J0000000000000000000OUTB"
        assert "+8613800000106" in claimed.event["detail"]
        assert await store.db.read(_count(webhook_deliveries)) == 1  # the first one's went with it
    finally:
        await store.close()


async def test_a_second_reader_waits_for_the_first_ones_lease(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        await store.migrate()
        now = time.time()
        await store.create_webhook(endpoint_row(now), 10)
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
        await store.create_webhook(endpoint_row(now), 10)
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


async def test_the_fan_out_gives_each_subscription_the_types_it_chose(database_url: str) -> None:
    """The fan-out is one INSERT ... SELECT: its SQL must name each audit entry's type as the domain's
    event_type does, and keep each subscription to its tenant (or every tenant's entries) and its types."""
    store = SqlStore.open(database_url)
    try:
        await store.migrate()
        now = time.time()
        everything = {**endpoint_row(now), "events": ["*"]}
        chosen = {**endpoint_row(now), "id": "whk_01J0000000000000000000CHSN", "events": ["message.sent", "inbound"]}
        other = {**endpoint_row(now), "id": "whk_01J0000000000000000000OTHR", "tenant_id": "t2", "events": ["*"]}
        for endpoint in (everything, chosen, other):
            await store.create_webhook(endpoint, 10)
        entries = [(kind, None, None) for kind in ("click", "conversion", "suppression.added", "retention")]
        entries += [("status", status, None) for status in ("queued", "sending", "sent", "delivered", "failed")]
        entries += [("inbound.reply", None, intent) for intent in ("opt_out", "opt_in", "help", None)]
        entries += [("number.state_changed", None, None)]

        def entry(tenant: str, kind: str, status: str | None, reason: str | None) -> dict[str, Any]:
            where = {"tenant_id": tenant, "message_id": "m1", "at": now}
            return {**where, "type": kind, "status": status, "reason": reason}

        rows = [entry("t1", *e) for e in entries] + [entry(EVERY_TENANT, "number.state_changed", None, None)]

        def write(conn: Any) -> list[int]:
            return [conn.execute(events.insert().values(**row)).inserted_primary_key[0] for row in rows]

        ids = await store.db.write(write)
        assert await store.fan_out_events("reader", now, now + 30, 100, {}, 0.0) == len(rows)

        def fanned(conn: Any) -> set[tuple[str, int, str]]:
            d = webhook_deliveries
            return {tuple(r) for r in conn.execute(sa.select(d.c.endpoint_id, d.c.event_id, d.c.type))}

        expected = set()
        for event_id, row in zip(ids, rows, strict=True):
            type_ = event_type(row["type"], row["status"], row["reason"])
            for endpoint in (everything, chosen, other):
                mine = row["tenant_id"] in (endpoint["tenant_id"], EVERY_TENANT)
                if type_ is not None and mine and wanted(endpoint["events"], type_):
                    expected.add((endpoint["id"], event_id, type_))
        assert await store.db.read(fanned) == expected
        assert {t for _, _, t in expected} >= {"click", "opt_out", "inbound", "message.sent", "number.state_changed"}
    finally:
        await store.close()
