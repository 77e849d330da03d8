"""Accepting jobs: the insert behind the accept group commit, idempotency keys decided in it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.domain.recipients import CHANNEL_CHOSEN
from gateway.store.batcher import Committed, GroupCommitter
from gateway.store.records import CHANNEL_CHOICE, AcceptOutcome
from gateway.store.schema import KEY_COLUMNS, events, message_keys, messages
from gateway.store.sql.common import (
    Room,
    any_of,
    executemany_fast,
    fetch_compiled,
    insert_rows,
    listed,
    update_with_keys,
)
from gateway.store.wakeups import notify_work

# Built once: a single job's commit (a trickle's) spent more building these than running them. One
# equality on tenant plus IN on keys, so the unique index serves it (a row-value IN over both columns
# makes SQLite scan the table).
_KEY_OWNERS = sa.select(message_keys.c.message_id, message_keys.c.idempotency_key).where(
    message_keys.c.tenant_id == sa.bindparam("tenant_id"),
    any_of(message_keys.c.idempotency_key, "keys"),
)
# A job's keys, from the columns of its row (its id is the key row's message_id): a reused idempotency
# key loses here, before the job's row is written.
_KEY_SOURCES = ("id", *KEY_COLUMNS)
_KEY_VALUES: dict[str, Any] = {
    "message_id": sa.bindparam("id"),
    **{column: sa.bindparam(column) for column in KEY_COLUMNS},
}
_KEY_INSERTS = {
    name: insert(message_keys)
    .values(_KEY_VALUES)
    .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_KEY_TAKEOVER = message_keys.insert().values(_KEY_VALUES)  # a key whose retention ran out, taken by a new job


def insert_accepted(conn: Connection, rows: Sequence[dict[str, Any]], now: float) -> list[AcceptOutcome]:
    """Insert accepted jobs' keys in one statement, their rows in another, and their events (each job's
    status, a recipient's job's channel choice too) in a third; a reused idempotency key loses to the
    stored row."""
    # A recipient's job's row carries its choice under a key that is no column: the insert names the
    # columns, so the rows go as they are (no copy of each without that key).
    columns = [key for key in rows[0] if key != CHANNEL_CHOICE]
    executemany_fast(conn, "accept-keys", _KEY_INSERTS[conn.dialect.name], rows, _KEY_SOURCES)
    outcomes = [AcceptOutcome("accepted", row) for row in rows]
    owner = _key_owners(conn, rows)
    lost = [
        i for i, row in enumerate(rows) if owner.get((row["tenant_id"], row["idempotency_key"]), row["id"]) != row["id"]
    ]
    # Every job whose keys were written (all of them, but for one whose key is taken) is written whole.
    taken = {rows[i]["id"] for i in lost}
    kept = [row for row in rows if row["id"] not in taken] if taken else rows
    if kept:
        insert_rows(conn, messages, kept, columns)
    if lost:
        _settle_taken_keys(conn, rows, lost, owner, outcomes, columns, now)
    accepted = [o.row for o in outcomes if o.kind == "accepted"]
    if accepted:
        entries = []
        for r in accepted:
            entries.append(
                {
                    "tenant_id": r["tenant_id"],
                    "message_id": r["id"],
                    "at": r["created_at"],
                    "type": "status",
                    "status": r["status"],
                    "reason": r["reason"] or "accepted",  # a held-out job says why
                    "detail": None,
                }
            )
            if CHANNEL_CHOICE in r:
                entries.append(_choice_event(r, r[CHANNEL_CHOICE]))
        # One statement for both kinds (the same columns): a second one cost a statement per commit.
        insert_rows(conn, events, entries)
        notify_work(conn)  # one notification per commit, however many jobs it carried
    return outcomes


def _key_owners(conn: Connection, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(tenant, idempotency key) -> the message that holds the key, for the keys the rows name."""
    keys_by_tenant: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["idempotency_key"] is not None:
            keys_by_tenant[row["tenant_id"]].add(row["idempotency_key"])
    # Only ids first: nearly every key is new, and whole rows are needed just for the rest.
    owner: dict[tuple[str, str], str] = {}
    for tenant_id, keys in keys_by_tenant.items():
        params = {"tenant_id": tenant_id, "keys": listed(conn, sorted(keys))}
        for message_id, key in fetch_compiled(conn, _KEY_OWNERS, params):
            owner[(tenant_id, key)] = message_id
    return owner


def _settle_taken_keys(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    lost: Sequence[int],
    owner: dict[tuple[str, str], str],
    outcomes: list[AcceptOutcome],
    columns: Sequence[str],
    now: float,
) -> None:
    """A job whose key another message holds: a replay of it, a mismatch, or (the key's retention has
    run out) the key's new holder."""
    holders = {owner[(rows[i]["tenant_id"], rows[i]["idempotency_key"])] for i in lost}
    existing = {
        r["id"]: dict(r) for r in conn.execute(sa.select(messages).where(messages.c.id.in_(holders))).mappings()
    }
    stale: list[int] = []
    for i in lost:
        row = rows[i]
        found = existing[owner[(row["tenant_id"], row["idempotency_key"])]]
        if found["idempotency_expires_at"] is not None and found["idempotency_expires_at"] < now:
            stale.append(i)
        elif found["request_hash"] == row["request_hash"]:
            outcomes[i] = AcceptOutcome("replay", found)
        else:
            outcomes[i] = AcceptOutcome("mismatch", found)
    if stale:
        # The retention window of the old key has passed: it may be used again.
        old_holders = [owner[(rows[i]["tenant_id"], rows[i]["idempotency_key"])] for i in stale]
        update_with_keys(conn, old_holders, idempotency_key=None)
        executemany_fast(conn, "accept-key-takeover", _KEY_TAKEOVER, [rows[i] for i in stale], _KEY_SOURCES)
        insert_rows(conn, messages, [rows[i] for i in stale], columns)


def _choice_event(row: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": row["tenant_id"],
        "message_id": row["id"],
        "at": row["created_at"],
        "type": CHANNEL_CHOSEN,
        "status": None,
        "reason": f"recipient.{choice['order_by']}",
        "detail": orjson.dumps(choice).decode(),
    }


class AcceptRoom(Room):
    _accepts: GroupCommitter[dict[str, Any], AcceptOutcome]
    work_available: asyncio.Event

    async def accept(self, rows: Sequence[dict[str, Any]]) -> list[AcceptOutcome]:
        """Commit jobs durably (together with whatever else is being accepted right now)."""
        return await self._accepts.submit_many(rows)

    async def accept_one(self, row: dict[str, Any]) -> AcceptOutcome:
        return await self._accepts.submit(row)

    async def _flush_accepts(self, rows: list[dict[str, Any]]) -> Committed[list[AcceptOutcome]]:
        """Answered once on disk (the group committer waits); the next accepts' transaction may begin
        meanwhile. An in-process worker may claim them at once: nothing is sent before its own
        `sending` mark is on disk, and that sync covers these commits too."""
        committed = await self.db.commit_beside_loop(insert_accepted, rows, time.time(), intake=True)
        self.work_available.set()
        return committed
