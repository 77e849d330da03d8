"""Idempotency keys let go once their retention has passed (the gateway's minute loop), on both stores."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from gateway.store.migrations import migrate
from gateway.store.schema import message_keys, messages, schema_version
from gateway.store.store import SqlStore
from tests.integration.direct import TENANT, message_row


async def _keys(store: SqlStore) -> dict[str, tuple[Any, Any]]:
    """Each message's key as its row holds it and as message_keys does."""

    def read(conn: Any) -> dict[str, tuple[Any, Any]]:
        held = dict(conn.execute(sa.select(message_keys.c.message_id, message_keys.c.idempotency_key)).all())
        return {
            row.id: (row.idempotency_key, held[row.id])
            for row in conn.execute(sa.select(messages.c.id, messages.c.idempotency_key))
        }

    return await store.db.read(read)


async def _accepted(store: SqlStore, now: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Three jobs: one under a key past its retention, one under a key held, one without a key."""
    past = message_row(now - 7200, idempotency_key="k-past", request_hash="a", idempotency_expires_at=now - 60)
    held = message_row(now, idempotency_key="k-held", request_hash="b", idempotency_expires_at=now + 3600)
    keyless = message_row(now)
    for row in (past, held, keyless):
        assert (await store.accept_one(row)).kind == "accepted"
    return past, held, keyless


async def test_keys_past_their_retention_are_released_and_held_ones_kept(database_url: str) -> None:
    store = SqlStore.open(database_url)
    await store.migrate()
    try:
        now = time.time()
        past, held, keyless = await _accepted(store, now)

        assert await store.release_idempotency_keys() == 1
        assert await _keys(store) == {
            past["id"]: (None, None),
            held["id"]: ("k-held", "k-held"),
            keyless["id"]: (None, None),
        }
        assert await store.find_by_idempotency_key(TENANT, "k-held") is not None
        assert await store.release_idempotency_keys() == 0  # nothing left to release

        # The released key is free: a new job takes it as its own, not as a replay of the old one.
        again = message_row(now, idempotency_key="k-past", request_hash="c", idempotency_expires_at=now + 3600)
        assert (await store.accept_one(again)).kind == "accepted"
        found = await store.find_by_idempotency_key(TENANT, "k-past")
        assert found is not None and found["id"] == again["id"]
        # The held key still answers with its first job.
        replay = message_row(now, idempotency_key="k-held", request_hash="b", idempotency_expires_at=now + 3600)
        outcome = await store.accept_one(replay)
        assert (outcome.kind, outcome.row["id"]) == ("replay", held["id"])
    finally:
        await store.close()


async def test_a_version_5_database_gets_each_held_keys_expiry_and_releases_it(database_url: str) -> None:
    store = SqlStore.open(database_url)
    await store.migrate()
    try:
        now = time.time()
        past, held, keyless = await _accepted(store, now)

        def make_it_version_5(conn: Any) -> None:
            conn.execute(sa.text("DROP INDEX ix_message_keys_held_until"))
            conn.execute(sa.text("ALTER TABLE message_keys DROP COLUMN idempotency_expires_at"))
            conn.execute(schema_version.delete())
            conn.execute(schema_version.insert().values(version=5, applied_at=now))

        await store.db.write(make_it_version_5)
        assert await store.db.write(migrate) == 6
        expiries = await store.db.read(
            lambda conn: dict(
                conn.execute(sa.select(message_keys.c.message_id, message_keys.c.idempotency_expires_at)).all()
            )
        )
        assert expiries == {
            past["id"]: past["idempotency_expires_at"],
            held["id"]: held["idempotency_expires_at"],
            keyless["id"]: None,
        }
        assert await store.release_idempotency_keys() == 1
        assert (await _keys(store))[past["id"]] == (None, None)
    finally:
        await store.close()
